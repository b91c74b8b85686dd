"""The live trader's safety promises, one hand-scripted broker scenario at a time.

Never more shares sold than held; never a position without a stop or an exit; an odd fact
handled even when the process died right after it; no decision re-derived differently
after a restart; no order left waiting forever.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from scripted import ScriptedBroker, at, bar, enter, leg_of, legs, new_trader, placed, poll, restart

from tfl.core.events import AlertRaised, Filled, OrderPlaced, ReduceOnly
from tfl.core.orders import MAX_ATTEMPTS, Leg, OrderRecord, OrderRequest, OrderStatus
from tfl.domain import HaltReason
from tfl.live.broker import BrokerError, BrokerOrder, BrokerTimeoutError, Fill, OrderUpdate
from tfl.live.trader import UNLISTED_GRACE_SECONDS, Trader


class DiedError(Exception):
    """The process dying in the middle of a step."""


def alerting_trader() -> tuple[Trader, ScriptedBroker, list[str]]:
    """A scripted trader whose alerts are kept, to be checked."""
    sent: list[str] = []
    t, b = new_trader()
    t.alert = lambda level, msg: sent.append(msg)
    return t, b, sent


def open_position(t: Trader, b: ScriptedBroker, price: float, hhmm: str) -> None:
    """A 100-share long in AAA, its entry filled whole at ``hhmm`` (its stop placed)."""
    cid = enter(t, qty=100)
    b.fill(cid, 100, price, at(hhmm))
    poll(t, at(hhmm))


def assert_covered(t: Trader, b: ScriptedBroker, *, exiting: bool | None = False) -> None:
    """The journal holds what the broker holds, and the broker's working orders protect all of
    it and never sell more: stops of its whole size, or (``exiting``) market exits for all of
    it, or (None) both, for different shares (a stop given back after an exit was refused)."""
    held = b.positions().get("AAA", 0)
    pos = t.state.book.positions.get("AAA")
    stray = t.state.book.stray.get("AAA", (0, 0.0))[0]
    assert (pos.qty if pos else 0) + stray == held
    selling = [o for o in b.working("AAA") if o.side == -1]
    stops = sum(o.qty - o.filled for o in selling if o.type == "STOP")
    exits = sum(o.qty - o.filled for o in selling if o.type == "MARKET")
    targets = [o.qty - o.filled for o in selling if o.type == "LIMIT"]
    assert stops + exits == held, (stops, exits, held)
    assert all(q <= held for q in targets)
    if exiting is not None:
        assert (stops if exiting else exits) == 0, (stops, exits)


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
    open_position(t, b, 101.05, "09:47")
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


def _over_fill_with_positions_unreadable(t: Trader, b: ScriptedBroker) -> None:
    """An entry over-filled by 7 shares, reported while the broker's positions cannot be read
    (so the 7 stray shares are not flattened yet)."""
    cid = enter(t, qty=100)
    failures = [1]

    def flaky() -> None:
        if failures:
            failures.pop()
            raise BrokerTimeoutError("positions: no answer")

    b.on_positions = flaky
    b.fill(cid, 107, 101.05, at("09:47"))
    poll(t, at("09:47"))
    assert not failures  # the positions really could not be read


def test_stray_shares_are_flattened_at_the_next_step_when_the_broker_could_not_be_asked() -> None:
    t, b = new_trader()
    _over_fill_with_positions_unreadable(t, b)
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
    assert placed(b, Leg.FLATTEN) == 0


def test_a_restart_does_not_re_derive_a_boundarys_levels_after_a_fill_moved_r() -> None:
    """The process dies after the 10:00 decisions were journalled but before SLOT; meanwhile
    the rest of the entry filled at another price (R changed). The restart carries the
    journalled decisions out instead of deriving different ones under the same keys."""

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
    t, b, sent = alerting_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 107, 101.05, at("09:47"))
    poll(t, at("09:47"))
    t2 = restart(t, b, alert=lambda level, msg: sent.append(msg))  # the restart handles today's facts again
    t2.after_restart(at("09:48"))
    over = [m for m in sent if "over-fill" in m]
    assert len(over) == 1
    assert len([r for r in t2.journal.records() if r.kind == AlertRaised.KIND]) == 1
    assert [e for e in t2.journal.records() if e.kind == OrderPlaced.KIND and e.data["leg"] == "E"]


def test_a_late_entry_fill_after_the_position_closed_reopens_it_under_fresh_tags() -> None:
    """The stop closed a 50-share position; then 50 more of the entry, traded before its cancel,
    are reported. The reopened position gets a new stop and later a new target, under tags
    that were never used (the old ones are closed at the broker: reusing them would fail)."""
    t, b = new_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 50, 101.0, at("09:50"))
    poll(t, at("09:50"))
    s0 = t.state.legs["AAA"][Leg.STOP]
    t.on_slot(at("10:00"), [bar("09:45")], [])  # the entry's bar is over: cancelled; a target placed
    b.fill(s0, 50, 99.0, at("10:02"))
    poll(t, at("10:02"))
    assert not t.state.book.positions
    b.fill(cid, 50, 101.2, at("09:59"))  # crossed the cancel
    poll(t, at("10:03"))
    t.on_slot(at("10:15"), [bar("10:00")], [])
    assert [a.kind.value for a in t.state.anomalies] == ["LATE_FILL"]
    assert_covered(t, b)
    working = sorted(o.tag for o in b.working("AAA"))
    assert len(working) == 2 and s0 not in working
    assert {t.state.orders[tag].leg for tag in working} == {Leg.STOP, Leg.TARGET}


@pytest.mark.parametrize("one_poll", [True, False])
def test_a_late_entry_fill_heard_after_the_square_off_is_exited_not_protected(one_poll: bool) -> None:
    """The rest of an entry traded at 15:14:59 and is reported after the 15:15 square-off,
    in the same poll as the square-off exit's fill or before it: it is exited at once."""
    t, b = new_trader()
    cid = enter(t, qty=100, setup="14:45")
    b.fill(cid, 50, 101.0, at("15:05"))
    poll(t, at("15:05"))
    t.on_slot(at("15:15"), [bar("15:00")], [])
    (x0,) = legs(t, Leg.EXIT)
    b.fill(cid, 50, 101.0, at("15:15") - 1)
    if not one_poll:
        poll(t, at("15:15") + 1)
    b.fill(x0.request.client_id, 50, 101.3, at("15:15") + 2)
    poll(t, at("15:15") + 3)
    assert t.state.book.positions["AAA"].qty == 50
    assert_covered(t, b, exiting=True)


def test_a_square_off_exit_that_no_longer_fits_is_replaced_by_one_for_the_shares_held() -> None:
    """30 of the stop's 100 had filled unseen; the square-off cancels the stop (which brings
    that fill in) and so its exit for 100 would sell 30 shares too many: it is withdrawn and
    an exit for the 70 held goes instead."""
    t, b = new_trader()
    open_position(t, b, 101.0, "09:50")
    b.fill(t.state.legs["AAA"][Leg.STOP], 30, 99.0, at("15:14"), report=False)
    t.on_slot(at("15:15"), [bar("15:00")], [])
    assert [(e.request.qty, e.status) for e in legs(t, Leg.EXIT)] == [
        (100, OrderStatus.CANCELLED),
        (70, OrderStatus.ACCEPTED),
    ]
    assert not [c for c in b.calls if c[0] == "place" and c[2] == 100 and t.state.orders[str(c[1])].leg is Leg.EXIT]
    assert_covered(t, b, exiting=True)


def _refusing_modifications(b: ScriptedBroker) -> list[str]:
    """Make the broker refuse every stop modification; returns the tags it refused."""
    refused: list[str] = []

    def refuse(tag: str, ts: int, **kw: object) -> object:
        refused.append(tag)
        raise BrokerError("RMS: modification not allowed")

    b.modify = refuse  # type: ignore[method-assign]
    return refused


def test_a_refused_stop_resize_keeps_the_stop_alerts_and_is_tried_again() -> None:
    """The broker refuses to resize the stop after the rest of the entry fills. The stop it
    has is kept (cancelling it to replace it could leave nothing), the journal believes the
    broker's size, not the one it asked for, an alert says 50 shares are uncovered (once a
    slot), and each retry asks again, with one request; once the broker agrees, the whole
    position is covered."""
    t, b, sent = alerting_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 50, 101.0, at("09:47"))
    poll(t, at("09:47"))
    (s0,) = legs(t, Leg.STOP)
    resizable = b.modify
    refused = _refusing_modifications(b)
    b.fill(cid, 50, 101.0, at("09:48"))
    poll(t, at("09:48"))
    assert refused == [s0.request.client_id]  # the refusal really happened
    assert s0.working and s0.remaining == 50 == b.book[s0.request.client_id].qty
    assert [m for m in sent if "refused to change the stop" in m and "50 of 100" in m]
    assert [o.tag for o in b.working("AAA")] == [s0.request.client_id]
    for k in range(1, 7):
        t.retry(at("09:48") + 10 * k)
    assert refused == [s0.request.client_id] * 7  # one request per retry
    assert len([m for m in sent if "refused to change the stop" in m]) == 1
    b.modify = resizable  # type: ignore[method-assign]
    t.retry(at("09:50"))
    assert s0.remaining == 100
    assert_covered(t, b)


def test_a_refused_stop_move_keeps_the_stop_and_is_asked_again() -> None:
    """The breakeven move is refused (the price is already through the new level). The stop
    at its old level stays (the position is never left without one), an alert, and the move
    stays unconfirmed: the next boundary asks again, and the broker takes it then."""
    t, b, sent = alerting_trader()
    open_position(t, b, 101.0, "09:47")
    (s0,) = legs(t, Leg.STOP)
    movable = b.modify
    refused = _refusing_modifications(b)
    t.on_slot(at("10:00"), [bar("09:45", 100.5, 103.5, 100.4, 100.6)], [])  # 1R reached: breakeven
    assert refused == [s0.request.client_id]
    level = t.state.book.positions["AAA"].stop
    assert level > 99.0 and s0.working and b.book[s0.request.client_id].trigger == 99.0
    assert s0.confirmed < s0.modifications
    assert [m for m in sent if "refused to change the stop" in m]
    assert_covered(t, b)
    b.modify = movable  # type: ignore[method-assign]
    t.on_slot(at("10:15"), [bar("10:00", 101.6, 101.8, 101.5, 101.7)], [])
    assert b.book[s0.request.client_id].trigger == level and s0.confirmed == s0.modifications
    assert_covered(t, b)


def _stop_filled_unseen_then_entry_rest_reported(t: Trader, b: ScriptedBroker) -> OrderRecord:
    """Entry of 100 half filled, its stop (50) filled at the broker but not reported yet, then
    the entry's other 50 reported (to be polled): the stop will be resized to 100."""
    cid = enter(t, qty=100)
    b.fill(cid, 50, 101.0, at("09:47"))
    poll(t, at("09:47"))
    (s0,) = legs(t, Leg.STOP)
    b.fill(s0.request.client_id, 50, 99.0, at("09:55"), report=False)
    b.fill(cid, 50, 101.0, at("09:54"))
    return s0


def test_a_stop_that_filled_before_its_resize_is_seen_as_done() -> None:
    """The stop (50) filled unseen; the rest of the entry is reported first and the stop is
    resized to 100, which the broker refuses: the order is done. Its fill is booked, the
    journal stops believing in 50 more shares of stop, and the 50 held get a new stop."""
    t, b = new_trader()
    s0 = _stop_filled_unseen_then_entry_rest_reported(t, b)
    poll(t, at("09:55"))
    assert s0.filled == 50 and s0.status is OrderStatus.CANCELLED
    assert t.state.book.positions["AAA"].qty == 50
    assert_covered(t, b)
    b.events.append(b.fill_list[1])  # the stop's fill report arrives at last: nothing new
    b.events.append(OrderUpdate(s0.request.client_id, b.book[s0.request.client_id].broker_id, "FILLED", 50))
    poll(t, at("09:56"))
    assert_covered(t, b)
    assert not t.state.anomalies


def _crash_after_journalling_a_poll(t: Trader, ts: int) -> Trader:
    """The poll's facts reach the journal, then the process dies before it reacts to them."""
    ex = t.execution
    for f in ex.facts(ex.poll()):
        t.record(f, ts)
    t.journal.flush()
    b = ex.broker
    assert isinstance(b, ScriptedBroker)
    return restart(t, b)


def test_a_stop_resize_lost_in_a_crash_is_made_after_the_restart() -> None:
    t, b = new_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 50, 101.0, at("09:47"))
    poll(t, at("09:47"))
    b.fill(cid, 50, 101.0, at("09:48"))
    t2 = _crash_after_journalling_a_poll(t, at("09:48"))
    assert t2.state.book.positions["AAA"].qty == 100
    assert_covered(t2, b)


def test_an_extra_exit_lost_in_a_crash_is_sent_after_the_restart() -> None:
    t, b = new_trader()
    cid = enter(t, qty=100, setup="14:45")
    b.fill(cid, 50, 101.0, at("15:05"))
    poll(t, at("15:05"))
    t.on_slot(at("15:15"), [bar("15:00")], [])
    b.fill(cid, 50, 101.0, at("15:15") + 1)
    t2 = _crash_after_journalling_a_poll(t, at("15:16"))
    assert_covered(t2, b, exiting=True)


def test_a_target_left_working_by_a_crash_after_its_stop_filled_is_cancelled() -> None:
    """The stop closed the position; the process died before cancelling the target, which
    would otherwise sell shares the broker no longer holds."""
    t, b = new_trader()
    open_position(t, b, 101.0, "09:47")
    t.on_slot(at("10:00"), [bar("09:45")], [])
    (target,) = legs(t, Leg.TARGET)
    b.fill(t.state.legs["AAA"][Leg.STOP], 100, 99.0, at("10:05"))
    t2 = _crash_after_journalling_a_poll(t, at("10:05"))
    assert t2.state.orders[target.request.client_id].status is OrderStatus.CANCELLED
    assert b.working("AAA") == [] and b.positions() == {}


def test_stray_shares_are_not_written_off_while_a_fill_is_on_the_wire() -> None:
    """An over-fill's 7 extra shares wait for the next step to be flattened; by then the stop
    has sold the 100 of the position, its fill not yet reported. The broker's fills are read
    before its positions are compared: the 7 shares are flattened, not written off."""
    t, b, sent = alerting_trader()
    _over_fill_with_positions_unreadable(t, b)
    b.fill(t.state.legs["AAA"][Leg.STOP], 100, 99.0, at("09:59"), report=False)
    t.on_slot(at("10:00"), [bar("09:45")], [])
    (flatten,) = legs(t, Leg.FLATTEN)
    assert flatten.status is OrderStatus.ACCEPTED and flatten.request.qty == 7
    assert not [m for m in sent if "does not hold" in m]
    b.fill(flatten.request.client_id, 7, 99.0, at("10:01"))
    poll(t, at("10:01"))
    assert b.positions() == {} and not t.state.book.stray and not t.state.book.positions
    assert t.close_session(at("15:30"))


@pytest.mark.parametrize(
    ("status", "reason", "alert"),
    [
        ("REJECTED", "RMS: margin shortfall", "EXIT order for AAA rejected"),
        ("CANCELLED", "cancelled by the exchange", "the broker ended the EXIT order for AAA"),
    ],
)
def test_an_exit_the_broker_ends_after_accepting_it_gets_the_stop_back_and_an_alert(
    status: str, reason: str, alert: str
) -> None:
    """The square-off's exit is accepted, then rejected by the RMS or cancelled by the
    exchange (market protection): the shares are not left bare, a stop comes back at once,
    an alert says what happened, and the next retry (seconds later, not the next boundary,
    which is after the close) cancels that stop and exits them again."""
    t, b, sent = alerting_trader()
    open_position(t, b, 101.0, "09:50")
    t.on_slot(at("15:15"), [bar("15:00")], [])
    (x0,) = legs(t, Leg.EXIT)
    o = b.book[x0.request.client_id]
    b.book[x0.request.client_id] = dataclasses.replace(o, status=status)
    b.events.append(OrderUpdate(x0.request.client_id, o.broker_id, status, 0, reason))
    poll(t, at("15:15") + 5)
    assert x0.status is OrderStatus(status)
    assert [m for m in sent if alert in m]
    assert_covered(t, b)
    t.retry(at("15:15") + 15)
    assert_covered(t, b, exiting=True)
    assert [x.status for x in legs(t, Leg.EXIT)] == [OrderStatus(status), OrderStatus.ACCEPTED]


def _rejecting_exits(b: ScriptedBroker, *, also_on_the_socket: bool = False) -> None:
    def reject(req: OrderRequest) -> None:
        if leg_of(req.client_id) is Leg.EXIT:
            if also_on_the_socket:
                b.events.append(OrderUpdate(req.client_id, "B77", "REJECTED", 0, "RMS: margin shortfall"))
            raise BrokerError("RMS: margin shortfall")

    b.on_place = reject


def _the_stop_sells_30_then_70(t: Trader, b: ScriptedBroker) -> None:
    """The position's stop sells 30 of its 100 shares, then the rest: the broker's working
    orders cover exactly what is left in between, and the book ends flat."""
    stop = t.state.legs["AAA"][Leg.STOP]
    b.fill(stop, 30, 99.0, at("15:16"))
    poll(t, at("15:16"))
    assert_covered(t, b)
    b.fill(stop, 70, 98.9, at("15:17"))
    poll(t, at("15:17"))
    assert b.positions() == {} and not t.state.book.positions and not t.state.anomalies


def test_a_stop_given_back_after_a_rejected_exit_gets_no_exit_beside_it() -> None:
    """The square-off's exit is rejected, the stop comes back, and then it partly fills: the
    rest is still the stop's to sell. An exit beside it would sell the same shares twice."""
    t, b = new_trader()
    open_position(t, b, 101.0, "09:50")
    _rejecting_exits(b)
    t.on_slot(at("15:15"), [bar("15:00")], [])
    b.on_place = None
    assert [e.status for e in legs(t, Leg.EXIT)] == [OrderStatus.REJECTED]
    _the_stop_sells_30_then_70(t, b)


def test_a_rejected_exit_is_not_sent_again_in_the_same_step() -> None:
    """Two exits work for one position (the square-off's, and one for shares a late fill
    added); the second is rejected. Its shares get a stop, not a burst of new exits that the
    broker would refuse again; the next boundary exits them."""
    t, b, sent = alerting_trader()
    cid = enter(t, qty=100, setup="14:45")
    b.fill(cid, 50, 101.0, at("15:05"))
    poll(t, at("15:05"))
    t.on_slot(at("15:15"), [bar("15:00")], [])
    b.fill(cid, 50, 101.0, at("15:15") + 1)  # crossed the cancel
    _rejecting_exits(b)
    poll(t, at("15:16"))
    b.on_place = None
    assert [e.status for e in legs(t, Leg.EXIT)] == [OrderStatus.ACCEPTED, OrderStatus.REJECTED]
    assert len([m for m in sent if "EXIT order for AAA rejected" in m]) == 1
    assert_covered(t, b, exiting=None)
    t.on_slot(at("15:30"), [bar("15:15")], [])
    assert_covered(t, b, exiting=True)


def _square_off_with_the_stop_cancel_unanswered_and_the_exit_refused(t: Trader, b: ScriptedBroker) -> None:
    """A 100-share long reaches the square-off; the stop's cancel gets no answer (it may
    still be live) and the exit is refused."""
    open_position(t, b, 101.0, "09:50")

    def no_answer(tag: str) -> None:
        raise BrokerTimeoutError("cancel: no answer")

    b.on_cancel = no_answer
    _rejecting_exits(b)
    t.on_slot(at("15:15"), [bar("15:00")], [])


def test_a_stop_whose_cancel_is_unanswered_is_not_doubled() -> None:
    """At the square-off the stop's cancel gets no answer (it may still be live) and the exit
    is rejected: the stop is left to protect the position, no second one is placed."""
    t, b = new_trader()
    _square_off_with_the_stop_cancel_unanswered_and_the_exit_refused(t, b)
    (stop,) = legs(t, Leg.STOP)
    assert stop.status is OrderStatus.PENDING_CANCEL
    assert_covered(t, b)
    b.on_cancel = b.on_place = None
    t.on_slot(at("15:30"), [bar("15:15")], [])  # the cancel is asked again and the exit retried
    assert_covered(t, b, exiting=True)


def _fills_unreadable_once(b: ScriptedBroker) -> list[int]:
    """The broker's fills cannot be read the next time they are asked for; returns a list
    that is emptied when that happened."""
    readable = b.fills
    failures = [1]

    def flaky() -> list[Fill]:
        if failures:
            failures.pop()
            raise BrokerTimeoutError("tradebook: no answer")
        return readable()

    b.fills = flaky  # type: ignore[method-assign]
    return failures


def test_a_stop_is_not_written_off_when_its_fills_cannot_be_read() -> None:
    """The stop filled unseen and its resize is refused; the broker says FILLED but its fills
    cannot be read just then. The journal does not call the stop over without its fills (it
    would forget the shares sold and protect shares that are gone); the next step settles it."""
    t, b = new_trader()
    s0 = _stop_filled_unseen_then_entry_rest_reported(t, b)
    failures = _fills_unreadable_once(b)
    poll(t, at("09:55"))
    assert not failures  # the fills really could not be read
    assert s0.status is not OrderStatus.CANCELLED
    assert not [o for o in b.working("AAA") if o.side == -1 and o.qty > b.positions()["AAA"]]
    t.on_slot(at("10:00"), [bar("09:45")], [])
    assert_covered(t, b)


def test_a_rejection_told_twice_is_alerted_once_and_is_no_contradiction() -> None:
    """The placement is answered with an error and the order socket reports the same
    rejection: one alert, and no reduce-only."""
    t, b, sent = alerting_trader()
    open_position(t, b, 101.0, "09:50")
    _rejecting_exits(b, also_on_the_socket=True)
    t.on_slot(at("15:15"), [bar("15:00")], [])
    poll(t, at("15:15") + 2)
    assert len([m for m in sent if "EXIT order for AAA rejected" in m]) == 1
    assert not t.state.reduce_only and not t.state.anomalies
    assert_covered(t, b)


def _stops_ended_on_placement(b: ScriptedBroker) -> Callable[[OrderRequest, int], BrokerOrder]:
    """Make the exchange cancel every stop as it is placed (a trigger outside its price band);
    returns the broker's own placement, to restore."""
    real = b.place

    def place(req: OrderRequest, ts: int) -> BrokerOrder:
        o = real(req, ts)
        if leg_of(req.client_id) is Leg.STOP:
            o = dataclasses.replace(o, status="CANCELLED", reason="trigger outside the price band")
            b.book[req.client_id] = o
        return o

    b.place = place  # type: ignore[method-assign]
    return real


def test_a_stop_the_broker_ends_as_it_is_placed_is_replaced_once_a_step_and_alerted() -> None:
    """Each stop is cancelled by the exchange as it is placed. One replacement per step, never
    a burst that uses up every attempt at once and exits; the bare shares are alerted once,
    asked about again a few seconds later, and covered as soon as the broker takes a stop."""
    t, b, sent = alerting_trader()
    real = _stops_ended_on_placement(b)
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at("09:47"))
    poll(t, at("09:47"))
    assert placed(b, Leg.STOP) == 2 and not legs(t, Leg.EXIT)
    t.retry(at("09:47") + 10)
    t.retry(at("09:47") + 20)
    assert placed(b, Leg.STOP) == 4
    assert len([m for m in sent if "100 AAA shares have no stop or exit" in m]) == 1
    b.place = real  # type: ignore[method-assign]
    t.retry(at("09:47") + 30)
    assert placed(b, Leg.STOP) == 5
    assert_covered(t, b)


def test_with_every_stop_attempt_used_and_exits_refused_the_shares_are_asked_about_one_order_a_step() -> None:
    """Stops ended on placement until no attempt is left, and the exits that follow refused:
    at most one order per step reaches the broker, each refusal is alerted, and the bare
    shares once per slot; nothing raises."""
    t, b, sent = alerting_trader()
    _stops_ended_on_placement(b)
    _rejecting_exits(b)
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at("09:47"))
    poll(t, at("09:47"))
    per_step = []
    for k in range(1, 61):
        before = len(b.calls)
        t.retry(at("09:47") + 10 * k)
        per_step.append(len(b.calls) - before)
    assert max(per_step) == 1
    assert placed(b, Leg.STOP) == MAX_ATTEMPTS
    exits = legs(t, Leg.EXIT)
    assert exits and all(x.status is OrderStatus.REJECTED for x in exits)
    assert len([m for m in sent if "EXIT order for AAA rejected" in m]) == 1  # one slot: once
    assert len([m for m in sent if "every stop for AAA was refused or ended" in m]) == 1
    assert len([m for m in sent if "have no stop or exit" in m]) == 1  # ten minutes inside one slot: once


def test_a_stop_being_cancelled_that_sells_is_not_doubled_by_an_exit() -> None:
    """The square-off's stop cancel is unanswered and its exit refused; then that stop (still
    live) sells 30. Its other 70 are still the stop's to sell: no exit for them beside it."""
    t, b = new_trader()
    _square_off_with_the_stop_cancel_unanswered_and_the_exit_refused(t, b)
    b.on_place = None
    assert t.state.orders[t.state.legs["AAA"][Leg.STOP]].status is OrderStatus.PENDING_CANCEL
    _the_stop_sells_30_then_70(t, b)


def test_a_filled_stop_whose_move_is_refused_while_its_fills_are_unreadable_is_not_kept_as_a_phantom() -> None:
    """The stop filled unseen; the breakeven move is refused (the order is done) while the
    broker's fills cannot be read. The journal does not go on believing in the stop (and the
    position): within a step or two it books the fill, and the target is cancelled before it
    can sell shares the broker no longer holds."""
    t, b = new_trader()
    open_position(t, b, 101.0, "09:47")
    t.on_slot(at("10:00"), [bar("09:45")], [])
    (s0,) = legs(t, Leg.STOP)
    (target,) = legs(t, Leg.TARGET)
    b.fill(s0.request.client_id, 100, 99.0, at("10:10"), report=False)
    failures = _fills_unreadable_once(b)
    t.on_slot(at("10:15"), [bar("10:00", 101.0, 103.5, 100.9, 103.0)], [])  # 1R: breakeven
    assert not failures  # the fills really could not be read
    t.retry(at("10:15") + 10)
    t.on_slot(at("10:30"), [bar("10:15", 103.0, 103.2, 102.8, 103.0)], [])
    assert s0.filled == 100 and not t.state.book.positions and b.positions() == {}
    assert t.state.orders[target.request.client_id].status is OrderStatus.CANCELLED
    assert b.working("AAA") == []


@pytest.mark.parametrize("unreachable", ["its order", "the broker"])
def test_a_stop_never_sent_before_a_crash_and_unreadable_after_it_is_sent_within_seconds(unreachable: str) -> None:
    """The process died after journalling the stop and before sending it; after the restart
    the broker cannot be asked whether it has it (its order book, or the whole broker, so
    that the reconciliation fails). The shares are alerted at once, and the next retry
    (seconds later, not the next boundary) asks again and sends the stop."""

    class Crash:
        def hit(self, where: str) -> None:
            if where == "journal:INTENT":
                raise DiedError(where)

    t, b = new_trader()
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at("09:47"))
    t.crash = Crash()  # type: ignore[assignment]
    with pytest.raises(DiedError):
        poll(t, at("09:47"))
    real_lookup, real_orders = b.order_by_tag, b.orders
    failures = [1, 1]

    def flaky(tag: str) -> BrokerOrder | None:
        if Leg(tag[10]) is Leg.STOP and failures:
            failures.pop()
            raise BrokerTimeoutError("orderbook: no answer")
        return real_lookup(tag)

    def down() -> list[BrokerOrder]:
        if failures:
            failures.clear()
            raise BrokerTimeoutError("orderbook: no answer")
        return real_orders()

    if unreachable == "its order":
        b.order_by_tag = flaky  # type: ignore[method-assign]
    else:
        b.orders = down  # type: ignore[method-assign]
    sent: list[str] = []
    t2 = restart(t, b, alert=lambda level, msg: sent.append(msg))
    assert not failures  # the broker really could not be asked
    assert b.working("AAA") == []
    assert [m for m in sent if "100 AAA shares have no stop or exit" in m or "cannot reconcile" in m]
    t2.retry(at("09:47") + 10)
    assert t2.gate.reconciled
    assert_covered(t2, b)


def test_a_square_off_exit_waits_for_an_unanswered_stop_cancel_and_follows_its_answer() -> None:
    """At the square-off the stop's cancel gets no answer: the stop may still sell, so the
    exit is not sent beside it (both could fill: the account would end up short). The next
    retry asks again; once the broker confirms the cancel, the exit goes."""
    t, b = new_trader()
    open_position(t, b, 101.0, "09:50")

    def no_answer(tag: str) -> None:
        raise BrokerTimeoutError("cancel: no answer")

    b.on_cancel = no_answer
    t.on_slot(at("15:15"), [bar("15:00")], [])
    stop = t.state.orders[t.state.legs["AAA"][Leg.STOP]]
    assert stop.status is OrderStatus.PENDING_CANCEL
    assert_covered(t, b)
    t.retry(at("15:15") + 10)
    assert_covered(t, b)
    b.on_cancel = None
    t.retry(at("15:15") + 20)
    assert stop.status is OrderStatus.CANCELLED
    assert_covered(t, b, exiting=True)


def test_a_square_off_exit_is_not_sent_for_shares_a_stop_sold_unseen() -> None:
    """The stop sold all 100 shares at 15:14, unreported; at the square-off its cancel's
    answer says FILLED while the broker's fills cannot be read. No exit goes out for shares
    the broker no longer holds; the next retry books the fill and the book is flat."""
    t, b = new_trader()
    open_position(t, b, 101.0, "09:50")
    b.fill(t.state.legs["AAA"][Leg.STOP], 100, 99.0, at("15:14"), report=False)
    failures = _fills_unreadable_once(b)
    t.on_slot(at("15:15"), [bar("15:00")], [])
    assert not failures  # the fills really could not be read
    assert placed(b, Leg.EXIT) == 0
    t.retry(at("15:15") + 10)
    assert b.positions() == {} and not t.state.book.positions and b.working("AAA") == []
    assert placed(b, Leg.EXIT) == 0


def test_a_stop_whose_placement_got_no_answer_is_not_replaced_while_the_order_book_may_lag() -> None:
    """A stop's placement times out and the broker's order book does not list it yet: it is
    not written off (and doubled) at the next retry, only after the grace period."""
    t, b, sent = alerting_trader()
    real_place = b.place

    def lost_answer(req: OrderRequest, ts: int) -> BrokerOrder:
        if leg_of(req.client_id) is Leg.STOP and placed(b, Leg.STOP) == 0:
            b.calls.append(("place", req.client_id, req.qty))
            raise BrokerTimeoutError("place: no answer")
        return real_place(req, ts)

    b.place = lost_answer  # type: ignore[method-assign]
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at("09:47"))
    poll(t, at("09:47"))
    (s0,) = legs(t, Leg.STOP)
    assert s0.status is OrderStatus.UNKNOWN
    for k in range(1, UNLISTED_GRACE_SECONDS // 10):
        t.retry(at("09:47") + 10 * k)
    assert legs(t, Leg.STOP) == [s0] and s0.status is OrderStatus.UNKNOWN
    assert [m for m in sent if "100 AAA shares have no stop or exit" in m]
    t.retry(at("09:47") + 10 + UNLISTED_GRACE_SECONDS)
    assert s0.status is OrderStatus.CANCELLED
    assert_covered(t, b)


def test_exits_refused_after_the_square_off_are_tried_again_without_ever_leaving_the_shares_bare() -> None:
    """The RMS refuses every exit after the square-off. Each retry cancels the stop given back
    and tries the exit again; a refused exit gets a stop back at once. When the attempts run
    out the last stop stays: the shares are never left without one."""
    t, b, sent = alerting_trader()
    open_position(t, b, 101.0, "09:50")
    _rejecting_exits(b)
    t.on_slot(at("15:15"), [bar("15:00")], [])
    for k in range(1, 50):
        t.retry(at("15:15") + 10 * k)
        assert_covered(t, b)
    exits = legs(t, Leg.EXIT)
    assert len(exits) > 1 and all(x.status is OrderStatus.REJECTED for x in exits)
    calls = len(b.calls)
    t.retry(at("15:25"))
    assert len(b.calls) == calls  # nothing left to try: no churn
    assert not [m for m in sent if "have no stop or exit" in m]


def test_a_refused_stop_shrink_is_asked_again_at_each_retry() -> None:
    """The target sells 30 of 100 and the stop's shrink to 70 is refused: a stop for more
    shares than are held is unsettled (if it triggered, the account would go short), so each
    retry asks again until the broker takes it."""
    t, b, sent = alerting_trader()
    open_position(t, b, 101.0, "09:47")
    t.on_slot(at("10:00"), [bar("09:45")], [])
    shrinkable = b.modify
    refused = _refusing_modifications(b)
    b.fill(t.state.legs["AAA"][Leg.TARGET], 30, 104.0, at("10:03"))
    poll(t, at("10:03"))
    for k in range(1, 4):
        t.retry(at("10:03") + 10 * k)
    assert len(refused) == 4  # the first ask and one per retry
    assert len([m for m in sent if "refused to change the stop" in m]) == 1
    b.modify = shrinkable  # type: ignore[method-assign]
    t.retry(at("10:03") + 40)
    assert_covered(t, b)


def test_a_square_off_cancel_of_a_stop_not_listed_yet_does_not_let_an_exit_beside_it() -> None:
    """A stop's placement got no answer, though the broker took it; its order book lists it
    only 40 s later. The square-off cannot cancel what it cannot see: the stop is not
    written off as never sent (an exit beside it would sell the shares twice); it stays
    live until the book lists it, then it is cancelled and the exit follows."""
    t, b = new_trader()
    hidden: dict[str, int] = {}
    now = [at("15:14") + 40]
    real_place, lookup = b.place, b.order_by_tag

    def lost_answer(req: OrderRequest, ts: int) -> BrokerOrder:
        o = real_place(req, ts)
        if leg_of(req.client_id) is Leg.STOP and not hidden:
            hidden[req.client_id] = now[0] + 40
            raise BrokerTimeoutError("place: no answer")
        return o

    def lagging(tag: str) -> BrokerOrder | None:
        return None if tag in hidden and now[0] < hidden[tag] else lookup(tag)

    b.place, b.order_by_tag = lost_answer, lagging  # type: ignore[method-assign]
    cid = enter(t, qty=100, setup="14:45")
    b.fill(cid, 100, 101.0, now[0])
    poll(t, now[0])
    assert [s.status for s in legs(t, Leg.STOP)] == [OrderStatus.UNKNOWN]
    now[0] = at("15:15")
    t.on_slot(now[0], [bar("15:00")], [])
    assert_covered(t, b)  # the hidden stop alone
    now[0] = at("15:15") + 30
    t.retry(now[0])
    assert_covered(t, b, exiting=True)


def test_exits_refused_after_a_halt_are_tried_less_and_less_often_and_the_last_stop_stays() -> None:
    """The kill switch at 11:00 and the RMS refuses every exit, for hours. The exit is tried
    again after 10 s, 20 s, 40 s ... (at most 5 minutes apart), one refusal alert per slot;
    the shares keep a stop throughout, even at each boundary's flatten and once every
    attempt is used."""
    t, b, sent = alerting_trader()
    open_position(t, b, 101.0, "10:50")
    _rejecting_exits(b)
    t.on_slot(at("11:00"), [bar("10:45")], [])
    t.halt(at("11:00"), HaltReason.KILL_SWITCH)
    first_ten_minutes = 0
    for k in range(1, 6 * 60 * 4):
        ts = at("11:00") + 10 * k
        if ts % 900 == at("11:00") % 900:
            t.on_slot(ts, [bar(dt_hhmm(ts - 900))], [])
        else:
            t.retry(ts)
        assert_covered(t, b)
        if ts == at("11:10"):
            first_ten_minutes = placed(b, Leg.EXIT)
    assert first_ten_minutes <= 7  # 10, 20, 40, 80, 160, 300 s: not sixty tries
    # Tried to the end: every stop attempt used, and every exit but the one a last stop keeps back.
    assert len(legs(t, Leg.STOP)) == MAX_ATTEMPTS and len(legs(t, Leg.EXIT)) >= MAX_ATTEMPTS - 1
    slots = {e for e in range(at("11:00"), at("15:00") + 1, 900)}
    assert len([m for m in sent if "EXIT order for AAA rejected" in m]) <= len(slots)


def dt_hhmm(ts: int) -> str:
    """The IST clock time (HH:MM) of a market timestamp of the scripted day."""
    minutes = (ts - at("00:00")) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
