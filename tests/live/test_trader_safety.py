"""The live trader's safety promises, one hand-scripted broker scenario at a time.

Never more shares sold than held; never a position without a stop or an exit; an odd fact
handled even when the process died right after it; no decision re-derived differently
after a restart; no order left waiting forever.
"""

from __future__ import annotations

import pytest
from scripted import at, bar, enter, legs, new_trader, poll, restart

from tfl.core.events import AlertRaised, Filled, OrderPlaced, ReduceOnly
from tfl.core.orders import Leg, OrderStatus
from tfl.domain import HaltReason
from tfl.live.broker import BrokerTimeoutError


def test_forty_partial_fills_resize_one_stop_and_never_exit() -> None:
    """FYERS reports one fill per exchange trade: forty pieces of one entry give one stop,
    resized in place to the whole position, and no market exit."""
    t, b = new_trader()
    cid = enter(t, qty=4000)
    for _ in range(40):
        b.fill(cid, 100, 101.05, at("09:47"))
    poll(t, at("09:47"))
    assert t.state.book.positions["AAA"].qty == 4000
    stops = legs(t, Leg.STOP)
    assert len(stops) == 1 and stops[0].request.qty == 4000
    assert [o.qty for o in b.working("AAA") if o.tag == stops[0].request.client_id] == [4000]
    assert not legs(t, Leg.EXIT)


def test_fills_one_poll_at_a_time_resize_the_same_stop() -> None:
    t, b = new_trader()
    cid = enter(t, qty=300)
    for k in range(3):
        b.fill(cid, 100, 101.05, at("09:47") + k)
        poll(t, at("09:47") + k)
    (stop,) = legs(t, Leg.STOP)
    assert stop.request.qty == 300 and stop.confirmed == stop.modifications == 2
    assert [c for c in b.calls if c[0] == "modify"] == [("modify", stop.request.client_id, 99.0, q) for q in (200, 300)]


def test_a_partly_filled_market_exit_is_not_doubled_by_a_stop() -> None:
    """The square-off's exit fills in two trades: between them no protective stop is placed for
    the shares the exit is still selling (both could fill: a short position)."""
    t, b = new_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.05, at("09:47"))
    poll(t, at("09:47"))
    t.on_slot(at("15:15"), [bar("15:00")], [])
    (x,) = legs(t, Leg.EXIT)
    b.fill(x.request.client_id, 40, 101.4, at("15:16"))
    poll(t, at("15:16"))
    assert not [o for o in b.working("AAA") if o.tag != x.request.client_id]  # only the exit works
    b.fill(x.request.client_id, 60, 101.4, at("15:17"))
    poll(t, at("15:17"))
    assert not t.state.book.positions and not t.state.book.stray and b.positions() == {}


def test_a_late_fill_while_the_position_is_exiting_is_exited_too() -> None:
    """At 15:15 the entry had filled 50 of 100: the square-off cancels it and exits 50, but the
    other 50 had filled on the wire. Those shares get an exit of their own; the book ends flat."""
    t, b = new_trader()
    cid = enter(t, qty=100, setup="14:45")
    b.fill(cid, 50, 101.0, at("15:05"))
    poll(t, at("15:05"))
    t.on_slot(at("15:15"), [bar("15:00")], [])
    b.fill(cid, 50, 101.0, at("15:15") + 1)  # crossed the cancel: reported after it
    poll(t, at("15:16"))
    exits = legs(t, Leg.EXIT)
    assert sorted(e.request.qty for e in exits) == [50, 50]
    for e in exits:
        b.fill(e.request.client_id, 50, 101.3, at("15:16"))
    poll(t, at("15:16"))
    assert not t.state.book.positions and b.positions() == {}
    assert [a.kind.value for a in t.state.anomalies] == ["LATE_FILL"]


def test_an_odd_fill_is_handled_after_a_crash_that_came_right_after_it() -> None:
    """An over-fill is journalled, then the process dies before alerting or flattening. The
    restart alerts once, goes reduce-only, and flattens the extra shares the broker holds."""
    t, b = new_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 107, 101.05, at("09:47"))
    ex = t.execution
    for f in ex.facts(ex.poll()):  # the facts reach the journal; then the process dies
        t.record(f, at("09:47"))
    t.journal.flush()
    assert not [r for r in t.journal.records() if r.kind == "ALERT"]
    t2 = restart(t, b)
    events = [r.kind for r in t2.journal.records()]
    assert events.count("ALERT") == 1 and "REDUCE_ONLY" in events
    (flatten,) = legs(t2, Leg.FLATTEN)
    assert flatten.request.qty == 7 and flatten.status is not OrderStatus.INTENT
    b.fill(flatten.request.client_id, 7, 101.0, at("09:48"))
    poll(t2, at("09:48"))
    assert not t2.state.book.stray and b.positions() == {"AAA": 100}


def test_stray_shares_are_flattened_at_the_next_step_when_the_broker_could_not_be_asked() -> None:
    t, b = new_trader()
    cid = enter(t, qty=100)
    failures = [1]

    def flaky() -> None:
        if failures:
            failures.pop()
            raise BrokerTimeoutError("positions: no answer")

    b.on_positions = flaky
    b.fill(cid, 107, 101.05, at("09:47"))
    poll(t, at("09:47"))
    (flatten,) = legs(t, Leg.FLATTEN)
    assert flatten.status is OrderStatus.INTENT  # not sent: the broker's positions were not known
    t.on_slot(at("10:00"), [bar("09:45")], [])
    assert flatten.status is OrderStatus.ACCEPTED  # sent at the next step
    b.fill(flatten.request.client_id, 7, 101.0, at("10:01"))
    poll(t, at("10:01"))
    assert not t.state.book.stray


def test_a_phantom_over_fill_twice_in_a_day_is_corrected_twice() -> None:
    """A fill report counted as 107 when the broker filled 100, twice in one symbol: the broker
    does not hold the extra shares, so nothing is sent and the journal is corrected, each time."""
    t, b = new_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.05, at("09:46"), report=False)
    t.facts([Filled("F1", cid, 107, 101.05, at("09:46"), at("09:45"))], at("09:46"))  # 7 phantom shares bought
    assert not t.state.book.stray
    stop = t.state.legs["AAA"][Leg.STOP]
    b.fill(stop, 100, 100.0, at("10:05"), report=False)
    t.facts([Filled("F2", stop, 107, 100.0, at("10:05"), at("10:00"))], at("10:05"))  # 7 phantom shares sold
    assert not t.state.book.stray and not t.state.book.positions
    assert len([r for r in t.journal.records() if r.kind == "CORRECT"]) == 2
    assert not [c for c in b.calls if c[0] == "place" and str(c[1])[10] == "F"]


def test_a_restart_does_not_re_derive_a_boundarys_levels_after_a_fill_moved_r() -> None:
    """The process dies after the 10:00 decisions were journalled but before SLOT; meanwhile
    the rest of the entry filled at another price (R changed). The restart carries the
    journalled decisions out instead of deriving different ones under the same keys."""

    class DiedError(Exception):
        """The process dying in the middle of the step."""

    t, b = new_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 50, 101.0, at("09:50"))
    poll(t, at("09:50"))

    def cross(tag: str) -> None:
        if tag == cid:
            b.fill(cid, 50, 101.4, at("10:00"), report=False)
            raise DiedError

    b.on_cancel = cross
    high = bar("09:45", 100.5, 103.5, 100.4, 103.0)  # reaches 1R: breakeven
    with pytest.raises(DiedError):
        t.on_slot(at("10:00"), [high], [])
    b.on_cancel = None
    t2 = restart(t, b)
    t2.on_slot(at("10:00"), [high], [])  # no JournalConflictError
    assert t2.state.last_slot == at("10:00")
    assert t2.state.book.positions["AAA"].qty == 100
    assert [s.request.qty for s in legs(t2, Leg.STOP) if s.working] == [100]


def test_an_order_that_never_reached_the_broker_is_cancelled_not_left_waiting() -> None:
    t, b = new_trader()

    def lost(req: object) -> None:
        raise BrokerTimeoutError("no answer")

    b.on_place = lost
    cid = enter(t, qty=100)
    b.on_place = None
    assert t.state.orders[cid].status is OrderStatus.UNKNOWN
    t.halt(at("09:50"), HaltReason.KILL_SWITCH)
    assert t.state.orders[cid].status is OrderStatus.CANCELLED
    assert cid not in t.state.working


def test_no_entry_goes_out_once_an_odd_fill_has_stopped_entries() -> None:
    """A fill in the same step reveals an over-fill: the step's entry orders are not sent."""
    t, b = new_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 107, 101.05, at("09:47"))
    poll(t, at("09:47"))
    assert t.state.reduce_only
    late = enter(t, qty=10, setup="10:00")
    assert t.state.orders[late].status is OrderStatus.CANCELLED
    assert not [c for c in b.calls if c[:2] == ("place", late)]
    assert [r for r in t.journal.records() if r.kind == ReduceOnly.KIND]


def test_every_alert_is_sent_once() -> None:
    sent: list[str] = []
    t, b = new_trader()
    t.alert = lambda level, msg: sent.append(msg)
    cid = enter(t, qty=100)
    b.fill(cid, 107, 101.05, at("09:47"))
    poll(t, at("09:47"))
    t2 = restart(t, b)
    t2.alert = lambda level, msg: sent.append(msg)
    t2.after_restart(at("09:48"))
    over = [m for m in sent if "over-fill" in m]
    assert len(over) == 1
    assert len([r for r in t2.journal.records() if r.kind == AlertRaised.KIND]) == 1
    assert [e for e in t2.journal.records() if e.kind == OrderPlaced.KIND and e.data["leg"] == "E"]
