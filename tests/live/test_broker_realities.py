"""The live trader against what FYERS really does (issue 10), one scripted scenario at a time.

The broker's own square-off closing our positions, a stop refused because the price has
already crossed it, a market exit left standing by the broker's price protection, the
square-off begun early enough to finish before the broker's, and positions of an earlier
session that the broker closed while the trader was away.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from scripted import DATE, OPEN, PLAN, S, ScriptedBroker, at, enter, leg_of, new_trader, placed, poll

from tfl.core.events import AlertRaised, ClosedByBroker, OrderPlaced, SquareOffStarted, StopMoved
from tfl.core.orders import Leg, OrderRequest, OrderStatus
from tfl.domain import Bias, ExitReason
from tfl.live.broker import Fill, OrderUpdate, StopCrossedError
from tfl.live.execution import Execution
from tfl.live.journal import MemoryJournal, read_events
from tfl.live.runtime import squareoff_start
from tfl.live.trader import Trader
from tfl.settings import SettingsError, check_squareoff_lead, squareoff_lead_needed
from tfl.timeutil import epoch_of_ist


def alerting() -> tuple[Trader, ScriptedBroker, list[tuple[str, str]]]:
    sent: list[tuple[str, str]] = []
    t, b = new_trader()
    t.alert = lambda level, msg: sent.append((level, msg))
    return t, b, sent


def long_aaa(t: Trader, b: ScriptedBroker, hhmm: str = "09:50") -> str:
    """A 100-share long in AAA whose stop (99.0) rests at the broker; returns the stop's tag."""
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at(hhmm))
    poll(t, at(hhmm))
    stop = t.state.legs["AAA"][Leg.STOP]
    assert b.book[stop].status == "PENDING"
    return stop


def journalled(t: Trader) -> list[object]:
    return [ev for _, ev in read_events(t.journal)]


def causes(t: Trader) -> list[str]:
    return [ev.cause for ev in journalled(t) if isinstance(ev, AlertRaised)]


# ---------------------------------------------------------------------- the broker's own square-off


@pytest.mark.parametrize("cancel_first", [True, False])
def test_the_brokers_own_square_off_is_booked_as_eod_and_nothing_is_sent_for_it(cancel_first: bool) -> None:
    """FYERS' risk system cancels our stop and sells the shares itself (an order that is not
    ours): the fill is booked as the position's EOD exit with an alert that says the broker
    did it; no exit or stop is sent for shares the broker no longer holds."""
    t, b, sent = alerting()
    stop = long_aaa(t, b)
    rms = Fill("RMS-1", "B900", "", "AAA", -1, 100, 100.4, at("15:16"))
    b.fill_list.append(rms)  # the broker's books: the position is gone
    b.book[stop] = dataclasses.replace(b.book[stop], status="CANCELLED")
    cancelled = OrderUpdate(stop, b.book[stop].broker_id, "CANCELLED", 0, "cancelled by RMS")
    b.events += [cancelled, rms] if cancel_first else [rms, cancelled]
    poll(t, at("15:16"))
    assert "AAA" not in t.state.book.positions
    trade = t.state.book.trades[-1]
    assert trade.exit_reason is ExitReason.EOD and trade.exit_price == 100.4 and trade.qty == 100
    closed = [ev for ev in journalled(t) if isinstance(ev, ClosedByBroker)]
    assert len(closed) == 1 and not closed[0].estimated
    assert "BROKER_SQUARED_OFF" in causes(t)
    assert any("broker's own square-off" in m for _, m in sent)
    assert placed(b, Leg.EXIT) == 0 and placed(b, Leg.STOP) == 1  # nothing sent for it
    assert not t.state.reduce_only and not t.state.anomalies
    assert b.positions().get("AAA", 0) == 0
    poll(t, at("15:17"))  # reported again: booked once
    assert len(t.state.book.trades) == 1


def test_a_position_closed_by_an_order_that_is_not_ours_before_the_square_off_is_booked_and_stops_entries() -> None:
    t, b, sent = alerting()
    stop = long_aaa(t, b)
    hand = Fill("HAND-1", "B901", "", "AAA", -1, 40, 100.9, at("11:02"))
    b.fill_list.append(hand)
    b.events.append(hand)
    poll(t, at("11:02"))
    pos = t.state.book.positions["AAA"]
    assert pos.qty == 60  # the broker holds 60: so does the journal
    assert "CLOSED_OUTSIDE" in causes(t) and t.state.reduce_only
    assert any(level == "CRITICAL" for level, _ in sent)
    # The stop is brought down to the shares that are left, never more than the broker holds.
    assert t.state.orders[stop].request.qty == 60
    assert placed(b, Leg.EXIT) == 0


# ---------------------------------------------------------------------- crossed stops


def test_a_protective_stop_refused_because_the_price_crossed_it_becomes_a_market_exit_at_once() -> None:
    t, b, _ = alerting()

    def refuse_stops(req: OrderRequest) -> None:
        if leg_of(req.client_id) is Leg.STOP:
            raise StopCrossedError("RMS: trigger price for sell stop order should be less than LTP")

    b.on_place = refuse_stops
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at("09:50"))
    poll(t, at("09:50"))  # the entry fills, the price is already below the stop: refused
    assert placed(b, Leg.STOP) == 1  # asked once, never again
    exits = [o for o in b.book.values() if leg_of(o.tag) is Leg.EXIT]
    assert len(exits) == 1 and exits[0].qty == 100 and exits[0].type == "MARKET"
    assert t.state.exit_pending["AAA"][0] is ExitReason.STOP
    t.retry(at("09:50") + 10)
    t.retry(at("09:50") + 20)
    assert placed(b, Leg.STOP) == 1 and placed(b, Leg.EXIT) == 1  # no retry loop
    b.fill(exits[0].tag, 100, 98.7, at("09:50") + 2)
    poll(t, at("09:50") + 2)
    assert t.state.book.trades[-1].exit_reason is ExitReason.STOP and not t.state.book.positions


def test_a_stop_move_refused_because_the_price_crossed_it_cancels_the_stop_then_exits() -> None:
    t, b, _ = alerting()
    stop = long_aaa(t, b)

    def crossed(tag: str, ts: int, **kw: object) -> None:
        raise StopCrossedError("RMS: trigger price for sell stop order should be less than LTP")

    b.modify = crossed  # type: ignore[method-assign, assignment]
    n = t.state.orders[stop].modifications + 1
    t.decide([StopMoved(stop, n, 101.5, None)], at("10:30"))  # the ratchet, above the price now
    calls = [c[:2] for c in b.calls]
    assert ("cancel", stop) in calls
    exit_tag = next(o.tag for o in b.book.values() if leg_of(o.tag) is Leg.EXIT)
    assert calls.index(("cancel", stop)) < calls.index(("place", exit_tag))  # never both able to sell
    assert b.book[stop].status == "CANCELLED" and b.book[exit_tag].qty == 100
    assert "STOP_CROSSED" in causes(t)


# ---------------------------------------------------------------------- unfilled exits


def test_an_exit_left_standing_while_the_symbol_trades_is_sent_again_with_an_alert() -> None:
    t, b, sent = alerting()
    long_aaa(t, b)
    t.real_broker = True
    start = at("15:13")
    traded = {"AAA": start}
    t.last_tick = traded.get
    t.square_off(start)
    first = next(o for o in b.book.values() if leg_of(o.tag) is Leg.EXIT)
    for s in (10, 20):  # not yet: FYERS' protected price may still fill
        traded["AAA"] = start + s
        t.retry(start + s)
    assert placed(b, Leg.EXIT) == 1
    traded["AAA"] = start + 29
    t.retry(start + 30)
    assert b.book[first.tag].status == "CANCELLED"
    again = [o for o in b.book.values() if leg_of(o.tag) is Leg.EXIT and o.status == "PENDING"]
    assert len(again) == 1 and again[0].qty == 100 and again[0].tag[-1] == "1"
    assert "EXIT_UNFILLED" in causes(t)
    assert any("not filled" in m for _, m in sent)


def test_an_exit_is_not_sent_again_while_its_symbol_does_not_trade() -> None:
    t, b, _ = alerting()
    long_aaa(t, b)
    t.real_broker = True
    start = at("15:13")
    t.last_tick = lambda symbol: start - 5  # no trade since the exit went out (a frozen symbol)
    t.square_off(start)
    for s in range(10, 121, 10):
        t.retry(start + s)
    assert placed(b, Leg.EXIT) == 1 and "EXIT_UNFILLED" not in causes(t)


# ---------------------------------------------------------------------- the square-off's timing


def test_the_early_square_off_stops_entries_and_exits_each_position_right_after_its_own_cancels() -> None:
    t, b, _ = alerting()
    stop = long_aaa(t, b)
    late_entry = enter(t, qty=50, setup="14:45")  # an entry still resting for the 15:00 bar
    t.square_off(at("15:13"))
    assert any(isinstance(ev, SquareOffStarted) for ev in journalled(t))
    exit_tag = next(o.tag for o in b.book.values() if leg_of(o.tag) is Leg.EXIT)
    order = [c[:2] for c in b.calls if c[0] in ("cancel", "place")]
    tail = order[order.index(("cancel", stop)) :]
    assert tail[:2] == [("cancel", stop), ("place", exit_tag)]  # the exit before other cancels
    assert ("cancel", late_entry) in tail[2:]
    assert t.state.exit_pending["AAA"][0] is ExitReason.EOD
    # An entry that fills after the square-off began is exited at once, not protected.
    b.book[late_entry] = dataclasses.replace(b.book[late_entry], status="PENDING")
    b.fill(exit_tag, 100, 100.8, at("15:13") + 1)
    poll(t, at("15:13") + 1)
    assert not t.state.book.positions and t.state.book.trades[-1].exit_reason is ExitReason.EOD
    t.square_off(at("15:13") + 5)  # once a day
    assert sum(isinstance(ev, SquareOffStarted) for ev in journalled(t)) == 1


def test_the_square_off_starts_its_lead_before_the_brokers_own_or_the_bar_whichever_is_first() -> None:
    lead = S.live.squareoff_lead_seconds
    assert squareoff_start(PLAN, S, 0) is None  # replay: at the bar, exactly as the backtest
    assert squareoff_start(PLAN, S, lead) == at("15:15") - lead
    half_day = dataclasses.replace(PLAN, squareoff_ts=at("12:15"))
    assert squareoff_start(half_day, S, lead) == at("12:15") - lead


def test_the_square_off_lead_is_checked_against_the_full_book_at_the_rate_limit() -> None:
    check_squareoff_lead(S)  # the defaults are consistent
    big = S.replace({"risk.max_positions": 100})
    assert squareoff_lead_needed(big) > S.live.squareoff_lead_seconds
    with pytest.raises(SettingsError, match=r"live\.squareoff_lead_seconds.*100 positions"):
        check_squareoff_lead(big)
    check_squareoff_lead(big.replace({"live.squareoff_lead_seconds": squareoff_lead_needed(big)}))


# ---------------------------------------------------------------------- an earlier session's positions


def yesterday_with_a_position(broker: ScriptedBroker) -> MemoryJournal:
    """A journal whose previous session (the day before DATE) ended with AAA open."""
    journal = MemoryJournal()
    day = DATE - dt.timedelta(days=1)
    plan = dataclasses.replace(
        PLAN,
        date=day,
        open_ts=OPEN - 86400,
        last_bar_ts=PLAN.last_bar_ts - 86400,
        squareoff_ts=PLAN.squareoff_ts - 86400,
    )
    t = Trader(S, journal, Execution(broker, plan.open_ts), plan)
    t.load()
    t.open_session(plan.open_ts, Bias.LONGS, "test", {"AAA": 100.0})
    t.gate.reconciled = t.gate.feed_fresh = True
    s_ts = plan.open_ts + 900
    from tfl.core.events import Allocated
    from tfl.core.orders import OrderType, client_id
    from tfl.domain import Side

    cid = client_id(day, "AAA", s_ts, Leg.ENTRY)
    t.decide(
        [
            Allocated(cid, "AAA", Side.LONG, 101.0, 99.0, 100, 101.0, 200.0, 80.0, s_ts, s_ts + 900, None),
            OrderPlaced(cid, Leg.ENTRY, "AAA", 1, OrderType.STOP, 100, 101.0, None, None, s_ts),
        ],
        s_ts + 900,
    )
    broker.fill(cid, 100, 101.0, s_ts + 1000)
    t.facts(t.execution.facts(broker.poll()), s_ts + 1000)
    assert "AAA" in t.state.book.positions and t.state.working  # it died with its stop resting
    return journal


@pytest.mark.parametrize("broker_holds", [False, True])
def test_an_earlier_sessions_position_is_corrected_from_the_broker_and_never_traded(broker_holds: bool) -> None:
    broker = ScriptedBroker()
    journal = yesterday_with_a_position(broker)
    if not broker_holds:
        broker.fill_list.clear()  # the broker squared it off that afternoon
    broker.book.clear()  # DAY orders are gone from today's order book
    broker.calls.clear()
    sent: list[tuple[str, str]] = []
    t = Trader(S, journal, Execution(broker, OPEN), PLAN, alert=lambda lv, m: sent.append((lv, m)))
    t.load()
    t.settle_earlier(OPEN, {"AAA": 100.5})
    t.open_session(OPEN, Bias.LONGS, "test", {"AAA": 100.5})
    from tfl.live.reconcile import reconcile

    t.gate.feed_fresh = True
    reconcile(t, OPEN)
    sent_orders = [c for c in broker.calls if c[0] in ("place", "cancel", "modify")]
    assert not [c for c in sent_orders if c[0] != "place" or leg_of(str(c[1])) is not Leg.STOP]
    yesterday = (DATE - dt.timedelta(days=1)).strftime("%y%m%d")
    old_orders = [r for r in t.state.orders.values() if r.request.client_id.startswith(yesterday)]
    assert [r.status for r in old_orders if r.leg is Leg.STOP] == [OrderStatus.EXPIRED]
    if broker_holds:
        # The broker still holds the shares: they are real, TFL's journal owns them, so they
        # are protected and squared off like any position; the operator is told at once.
        assert "CARRIED_HELD" in causes(t)
        assert "AAA" in t.state.book.positions and len(sent_orders) == 1
    else:
        t.on_slot(at("15:15"), [], [])  # the square-off: still nothing for those shares
        assert not [c for c in broker.calls if c[0] in ("place", "cancel", "modify")]
        assert not t.state.working
        assert "AAA" not in t.state.book.positions
        trade = t.state.book.trades[-1]
        assert trade.exit_reason is ExitReason.EOD and trade.exit_price == 100.5
        assert trade.exit_ts == epoch_of_ist(DATE - dt.timedelta(days=1), 15 * 60 + 15)
        assert "CARRIED_CLOSED" in causes(t) and not t.state.reduce_only


# ---------------------------------------------------------------------- what an independent review found


def test_a_crossed_stop_whose_exit_is_refused_too_is_asked_once_a_step_not_in_a_burst() -> None:
    from tfl.live.broker import BrokerError

    t, b, _ = alerting()

    def refuse(req: OrderRequest) -> None:
        if leg_of(req.client_id) is Leg.STOP:
            raise StopCrossedError("RMS: trigger price for sell stop order should be less than LTP")
        if leg_of(req.client_id) is Leg.EXIT:
            raise BrokerError("RED: market orders are not allowed for this scrip")

    b.on_place = refuse
    cid = enter(t, qty=100)
    b.fill(cid, 100, 101.0, at("09:50"))
    poll(t, at("09:50"))
    assert (placed(b, Leg.STOP), placed(b, Leg.EXIT)) == (1, 1)  # one of each, not 36 of each
    t.retry(at("09:50") + 10)
    assert placed(b, Leg.STOP) + placed(b, Leg.EXIT) <= 4  # the next retry asks again, once
    assert "UNCOVERED" in causes(t)  # and the bare shares are alerted


def test_a_same_day_restart_books_a_close_by_an_order_not_ours_before_protecting_anything() -> None:
    from scripted import restart

    t, b = new_trader()
    stop = long_aaa(t, b)
    # The process dies; meanwhile FYERS' risk system (or a hand) cancels the stop and sells.
    b.book[stop] = dataclasses.replace(b.book[stop], status="CANCELLED")
    b.fill_list.append(Fill("B900/7", "B900", "", "AAA", -1, 100, 100.4, at("11:00")))
    assert b.positions().get("AAA", 0) == 0
    b.calls.clear()
    again = restart(t, b)
    assert placed(b, Leg.STOP) == 0 and placed(b, Leg.EXIT) == 0  # nothing for shares not held
    assert "AAA" not in again.state.book.positions
    assert again.state.book.trades[-1].exit_reason is ExitReason.MANUAL


def test_an_earlier_sessions_position_partly_closed_by_the_broker_keeps_only_what_it_holds() -> None:
    broker = ScriptedBroker()
    journal = yesterday_with_a_position(broker)
    broker.fill_list.append(Fill("B901/1", "B901", "", "AAA", -1, 60, 100.2, OPEN - 60000))  # 40 left
    broker.book.clear()
    t = Trader(S, journal, Execution(broker, OPEN), PLAN)
    t.load()
    t.settle_earlier(OPEN, {"AAA": 100.5})
    assert t.state.book.positions["AAA"].qty == 40 == broker.positions()["AAA"]
    assert "CARRIED_HELD" in causes(t)


def test_an_exit_left_standing_is_sent_again_a_few_times_then_kept_working() -> None:
    t, b, _ = alerting()
    long_aaa(t, b)
    t.real_broker = True
    start = at("14:00")
    traded = {"AAA": start}
    t.last_tick = traded.get
    t.square_off(start)  # an early square-off, to have an exit working far from 15:15
    for s in range(10, 601, 10):
        traded["AAA"] = start + s - 1
        t.retry(start + s)
    working = [o for o in b.book.values() if leg_of(o.tag) is Leg.EXIT and o.status == "PENDING"]
    assert len(working) == 1  # never left with nothing working
    assert placed(b, Leg.EXIT) == 4  # the first and three more, then it stays
    assert "EXIT_STANDING" in causes(t)


def test_no_exit_is_cancelled_for_sending_again_right_before_the_brokers_square_off() -> None:
    t, b, _ = alerting()
    long_aaa(t, b)
    t.real_broker = True
    start = at("15:14") + 20
    t.last_tick = lambda symbol: start + 25
    t.square_off(start)
    t.retry(start + 31)  # 15:14:51: a cancel now could not be followed by a new exit
    assert placed(b, Leg.EXIT) == 1 and not any(c[0] == "cancel" and leg_of(str(c[1])) is Leg.EXIT for c in b.calls)


def test_an_entry_refused_because_the_price_gapped_through_its_trigger_goes_in_at_market_as_the_backtest() -> None:
    """FYERS refuses a buy stop whose trigger is already below the last price (a gap up at the
    bar's open). The backtest fills that entry at the open, so live enters at market at once,
    with the same allocation; the position gets its stop as usual."""
    t, b, _ = alerting()

    def gap(req: OrderRequest) -> None:
        if leg_of(req.client_id) is Leg.ENTRY and req.type.value == "STOP":
            raise StopCrossedError("RMS: trigger price for buy stop order should be higher than LTP")

    b.on_place = gap
    first = enter(t, qty=100)  # decided at the 09:45 boundary for the 09:45 bar
    assert t.state.orders[first].status is OrderStatus.REJECTED
    market = [o for o in b.book.values() if leg_of(o.tag) is Leg.ENTRY and o.type == "MARKET"]
    assert len(market) == 1 and market[0].qty == 100 and market[0].tag[-1] == "1"
    b.fill(market[0].tag, 100, 101.6, at("09:45") + 1)
    poll(t, at("09:45") + 1)
    pos = t.state.book.positions["AAA"]
    assert pos.qty == 100 and pos.entry_price == 101.6 and pos.stop == 99.0
    assert placed(b, Leg.STOP) == 1


def test_a_gapped_entry_is_not_chased_once_its_bar_is_over() -> None:
    t, b, _ = alerting()
    b.on_place = None
    cid = enter(t, qty=100)
    from tfl.core.events import OrderReported
    from tfl.core.orders import Report
    from tfl.live.broker import STOP_CROSSED

    # The refusal reaches the trader only after the entry's bar has ended (a late socket report).
    t.facts([OrderReported(cid, Report.REJECTED, reason=f"{STOP_CROSSED}trigger below LTP")], at("10:01"))
    assert placed(b, Leg.ENTRY) == 1 and "AAA" not in t.state.book.positions


def test_an_exit_larger_than_a_position_the_broker_shrank_is_withdrawn_and_the_rest_exited() -> None:
    t, b, _ = alerting()
    long_aaa(t, b)
    start = at("15:13")
    t.square_off(start)
    first = next(o for o in b.book.values() if leg_of(o.tag) is Leg.EXIT)
    hand = Fill("HAND-9", "B909", "", "AAA", -1, 60, 100.9, start + 2)  # 60 sold by an order not ours
    b.fill_list.append(hand)
    b.events.append(hand)
    poll(t, start + 2)
    assert t.state.book.positions["AAA"].qty == 40
    assert b.book[first.tag].status == "CANCELLED"  # it would have sold 100 of 40
    t.retry(start + 10)
    working = [o for o in b.book.values() if leg_of(o.tag) is Leg.EXIT and o.status == "PENDING"]
    assert [o.qty for o in working] == [40]


def test_tfl_trade_refuses_a_square_off_lead_too_short_for_the_book_and_makes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tfl.cli.main import main

    monkeypatch.setenv("TFL_RISK__MAX_POSITIONS", "100")
    monkeypatch.chdir(tmp_path)
    code = main(["trade", "--world", "live", "--data", "d", "--journal", "j.sqlite"])
    assert code == 2
    assert "live.squareoff_lead_seconds" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_nothing_is_sent_from_the_brokers_own_square_off_time_on() -> None:
    """At a real broker, from 15:15 an order would be a delivery trade: a position still open
    then (its exits refused) gets no new order; the alert says the broker's own square-off
    closes it. Cancels still go."""
    t, b, _ = alerting()
    stop = long_aaa(t, b)
    t.real_broker = True
    b.calls.clear()
    t.on_slot(at("15:15"), [], [])  # the square-off comes only now (say the process was late)
    assert ("cancel", stop) in [c[:2] for c in b.calls]
    assert placed(b, Leg.EXIT) == 0 and placed(b, Leg.STOP) == 0
    assert "AFTER_BROKER_SQUARE_OFF" in causes(t)
    t.retry(at("15:15") + 10)
    t.retry(at("15:15") + 20)
    assert placed(b, Leg.EXIT) == 0 and placed(b, Leg.STOP) == 0
