"""Every trading rule on small hand-built bar sequences, with expected prices worked out
by hand from the strategy page (slippage 0.05%, target 10R, breakeven +0.1R at 1R,
ATR trail 4.0 / aggressive 1.0 at 5R for longs)."""

from __future__ import annotations

import dataclasses

import pytest

from tfl.backtest.signals import prepare_symbol
from tfl.domain import Bias, ExitReason, RejectReason, Side
from tfl.settings import Settings

from builders import SESSION, daily_series, frame, hhmm_of, intraday, run

SLIP = 0.0005


def quiet(price: float, start: str, end: str = "15:15") -> list[tuple[str, float, float, float, float]]:
    """Doji bars (no colour, no pattern) from ``start`` to ``end`` inclusive."""
    times = SESSION[SESSION.index(start) : SESSION.index(end) + 1]
    return [(t, price, price + 0.1, price - 0.1, price) for t in times]


# The basic long: green, one red, green setup, then bar T triggers the buy-stop.
BASE = [
    ("09:15", 104.0, 105.2, 103.8, 105.0),
    ("09:30", 105.0, 105.1, 104.5, 104.6),  # red
    ("09:45", 104.6, 105.3, 104.4, 105.2),  # green setup bar: pattern high 105.3, low 104.4
    ("10:00", 105.2, 105.8, 105.0, 105.6),  # T: high >= 105.3 -> fill 105.3 * 1.0005
]
FILL = 105.3 * (1 + SLIP)
R = FILL - 104.4


def wilder_atr(bars: list[tuple[float, float, float]], n: int = 14) -> list[float]:
    """Oracle: ATR written out plainly from the definition (first TR = high - low)."""
    trs, out, prev_c, avg = [], [], None, None
    for h, lo, c in bars:
        tr = h - lo if prev_c is None else max(h - lo, abs(h - prev_c), abs(lo - prev_c))
        trs.append(tr)
        if len(trs) == n:
            avg = sum(trs) / n
        elif len(trs) > n:
            avg = (avg * (n - 1) + tr) / n  # type: ignore[operator]
        out.append(avg if avg is not None else float("nan"))
        prev_c = c
    return out


def atr_at(bars: list[tuple[str, float, float, float, float]], hhmm: str) -> float:
    s = intraday("X", bars)
    seq = list(zip(s.high.tolist(), s.low.tolist(), s.close.tolist(), strict=True))
    atrs = wilder_atr(seq)
    idx = len(s) - len(bars) + [b[0] for b in bars].index(hhmm)
    return atrs[idx]


def one_trade(bars, **kw):  # type: ignore[no-untyped-def]
    res = run([frame("X", bars, **kw)])
    assert len(res.trades) == 1, res.trades
    return res.trades[0]


def test_basic_long_entry_and_eod_at_the_1515_open() -> None:
    bars = [*BASE, *quiet(105.6, "10:15", "15:00"), ("15:15", 106.0, 106.2, 90.0, 106.1)]
    t = one_trade(bars)
    assert t.side is Side.LONG
    assert hhmm_of(t.setup_ts) == "09:45" and hhmm_of(t.entry_ts) == "10:00"
    assert t.entry_price == pytest.approx(FILL, abs=1e-9)
    assert t.initial_stop == 104.4
    assert t.r == pytest.approx(R, abs=1e-9)
    # Square-off happens at the 15:15 open, before any stop check (the low of 90 is ignored).
    assert t.exit_reason is ExitReason.EOD and hhmm_of(t.exit_ts) == "15:15"
    assert t.exit_price == pytest.approx(106.0 * (1 - SLIP), abs=1e-9)


def reds_then_green(n: int) -> list[tuple[str, float, float, float, float]]:
    bars = [("09:15", 104.0, 105.2, 103.8, 105.0)]
    p = 105.0
    for i in range(n):
        bars.append((SESSION[1 + i], p, p + 0.05, p - 0.15, p - 0.1))
        p -= 0.1
    bars.append((SESSION[1 + n], p, p + 0.35, p - 0.05, p + 0.3))
    t_open = p + 0.3
    bars.append((SESSION[2 + n], t_open, 105.2, t_open - 0.05, t_open + 0.1))
    return [*bars, *quiet(t_open + 0.1, SESSION[3 + n])]


def test_run_of_nine_gives_a_setup_and_ten_does_not() -> None:
    t = one_trade(reds_then_green(9))
    assert hhmm_of(t.setup_ts) == "11:45" and hhmm_of(t.entry_ts) == "12:00"
    assert t.entry_price == pytest.approx(105.05 * (1 + SLIP))  # highest high of the run
    res = run([frame("X", reds_then_green(10))])
    assert res.trades == [] and res.rejections == []


def test_doji_breaks_a_run() -> None:
    bars = [
        ("09:15", 104.0, 105.2, 103.8, 105.0),
        ("09:30", 105.0, 105.9, 103.0, 104.6),  # red, with a low of 103.0
        ("09:45", 104.6, 104.8, 104.4, 104.6),  # doji: breaks the run
        ("10:00", 104.6, 104.7, 104.3, 104.4),  # red: a run of 1 starts here
        ("10:15", 104.4, 104.9, 104.35, 104.8),  # green setup
        ("10:30", 104.8, 105.0, 104.7, 104.9),  # T
        *quiet(104.9, "10:45"),
    ]
    t = one_trade(bars)
    assert hhmm_of(t.setup_ts) == "10:15"
    # The pattern is the last red and the setup bar only: not the 103.0 low before the doji.
    assert t.initial_stop == 104.3
    assert t.entry_price == pytest.approx(104.9 * (1 + SLIP))


def test_gap_entry_fills_at_the_open() -> None:
    bars = [*BASE[:3], ("10:00", 106.0, 106.3, 105.9, 106.2), *quiet(106.2, "10:15")]
    t = one_trade(bars)
    assert t.entry_price == pytest.approx(106.0 * (1 + SLIP))
    assert t.r == pytest.approx(106.0 * (1 + SLIP) - 104.4)


def test_no_trigger_means_the_setup_expires() -> None:
    bars = [
        *BASE[:3],
        ("10:00", 105.2, 105.29, 105.0, 105.25),
        ("10:15", 105.25, 106.0, 105.2, 105.9),
        *quiet(105.9, "10:30"),
    ]
    res = run([frame("X", bars)])
    assert res.trades == []


def test_entry_bar_stop_is_taken_on_the_entry_bar() -> None:
    bars = [*BASE[:3], ("10:00", 105.2, 105.8, 104.0, 104.2), *quiet(104.2, "10:15")]
    t = one_trade(bars)
    assert t.exit_ts == t.entry_ts
    assert t.exit_reason is ExitReason.STOP
    assert t.exit_price == pytest.approx(104.4 * (1 - SLIP))


def test_entry_bar_checks_only_the_stop_not_the_target() -> None:
    bars = [*BASE[:3], ("10:00", 105.2, 130.0, 105.0, 105.6), *quiet(105.6, "10:15")]
    t = one_trade(bars)
    # The entry bar's high passes the 10R target, but only the stop is checked there. After
    # its close the aggressive trail sits just under 130, so the next bar gaps through it.
    assert hhmm_of(t.exit_ts) == "10:15"
    assert t.exit_reason is ExitReason.TRAIL
    assert t.exit_price == pytest.approx(105.6 * (1 - SLIP))


def test_stop_is_assumed_before_target_in_one_bar() -> None:
    target = FILL + 10 * R
    bars = [*BASE, ("10:15", 105.6, target + 1.0, 104.0, 110.0), *quiet(110.0, "10:30")]
    t = one_trade(bars)
    assert t.exit_reason is ExitReason.STOP
    assert t.exit_price == pytest.approx(104.4 * (1 - SLIP))


def test_target_fills_without_slippage() -> None:
    target = FILL + 10 * R
    bars = [*BASE, ("10:15", 105.6, target + 0.5, 105.5, target), *quiet(target, "10:30")]
    t = one_trade(bars)
    assert t.exit_reason is ExitReason.TARGET
    assert t.exit_price == pytest.approx(target, abs=1e-9)  # max(target, open), no slippage


def test_target_gap_fills_at_the_open() -> None:
    target = FILL + 10 * R
    bars = [*BASE, ("10:15", target + 2.0, target + 3.0, target + 1.0, target + 2.5), *quiet(target, "10:30")]
    t = one_trade(bars)
    assert t.exit_reason is ExitReason.TARGET and t.exit_price == pytest.approx(target + 2.0)


def test_gap_through_the_stop_exits_at_the_open() -> None:
    bars = [*BASE, ("10:15", 103.0, 103.5, 102.5, 103.2), *quiet(103.2, "10:30")]
    t = one_trade(bars)
    assert t.exit_reason is ExitReason.STOP
    assert t.exit_price == pytest.approx(103.0 * (1 - SLIP))


def test_breakeven_moves_the_stop_and_counts_as_trail() -> None:
    be_bar = ("10:15", 105.6, FILL + 1.05 * R, 105.5, 106.0)  # best reaches 1R
    bars = [*BASE, be_bar, ("10:30", 106.0, 106.1, 105.3, 105.5), *quiet(105.5, "10:45")]
    t = one_trade(bars)
    stop = FILL + 0.1 * R
    # The ATR trail (high - 4 ATR) is far below breakeven here, so breakeven is the stop.
    assert FILL + 1.05 * R - 4 * atr_at(bars, "10:15") < stop
    assert t.exit_reason is ExitReason.TRAIL
    assert t.exit_price == pytest.approx(stop * (1 - SLIP), abs=1e-9)


def test_atr_trail_ratchets_and_never_loosens() -> None:
    # A wide pattern (low 102.0) so R is large and the 4-ATR trail binds before 5R.
    base = [BASE[0], ("09:30", 105.0, 105.1, 102.0, 104.6), BASE[2], BASE[3]]
    r = FILL - 102.0
    up = [("10:15", 105.6, 110.0, 105.5, 109.8), ("10:30", 109.8, 114.0, 109.6, 113.9)]
    down = [("10:45", 113.9, 112.0, 111.0, 111.5)]  # a lower high must not loosen the stop
    bars = [*base, *up, *down, ("11:00", 111.5, 111.7, 100.0, 100.5), *quiet(100.5, "11:15")]
    t = one_trade(bars)
    assert FILL + 5 * r > 114.0  # not yet aggressive: k = 4
    trail = max(110.0 - 4 * atr_at(bars, "10:15"), 114.0 - 4 * atr_at(bars, "10:30"))
    assert trail > FILL + 0.1 * r  # the trail, not breakeven, is the stop
    looser = 112.0 - 4 * atr_at(bars, "10:45")
    assert looser < trail
    assert t.exit_reason is ExitReason.TRAIL
    assert t.exit_price == pytest.approx(trail * (1 - SLIP), abs=1e-9)


def test_aggressive_trail_after_5r() -> None:
    high = FILL + 6 * R
    bars = [
        *BASE,
        ("10:15", 105.6, high, 105.5, high - 0.2),
        ("10:30", high - 0.2, high - 0.1, 100.0, 101.0),
        *quiet(101.0, "10:45"),
    ]
    t = one_trade(bars)
    stop = max(FILL + 0.1 * R, high - 1.0 * atr_at(bars, "10:15"))
    assert stop > high - 4.0 * atr_at(bars, "10:15")
    assert t.exit_price == pytest.approx(stop * (1 - SLIP), abs=1e-9)


def test_half_session_closes_at_the_last_bar_close() -> None:
    bars = [*BASE, *quiet(105.6, "10:15", "12:00"), ("12:15", 105.6, 105.9, 105.5, 105.8)]
    t = one_trade(bars)
    assert t.exit_reason is ExitReason.EOD and hhmm_of(t.exit_ts) == "12:15"
    assert t.exit_price == pytest.approx(105.8 * (1 - SLIP))


def test_no_entry_on_the_last_bar_of_a_short_session() -> None:
    bars = [
        *quiet(105.0, "09:15", "11:30"),
        ("11:45", 105.0, 105.1, 104.5, 104.6),
        ("12:00", 104.6, 105.3, 104.4, 105.2),
        ("12:15", 105.2, 106.0, 105.0, 105.8),
    ]  # the session ends at 12:15
    assert run([frame("X", bars)]).trades == []
    assert len(run([frame("X", [*bars, *quiet(105.8, "12:30")])]).trades) == 1  # a normal day: taken


def test_squareoff_time_does_not_cut_the_data() -> None:
    s = Settings().replace({"strategy.squareoff_time": "15:00"})
    bars = [*BASE, *quiet(105.6, "10:15")]
    f = frame("X", bars, settings=s)
    assert hhmm_of(int(f.bars.ts[-1])) == "15:15"  # the 15:15 bar still feeds the indicators
    t = run([f], settings=s).trades[0]
    assert t.exit_reason is ExitReason.EOD and hhmm_of(t.exit_ts) == "15:00"


def test_no_entry_on_the_1515_bar() -> None:
    bars = [
        *quiet(105.0, "09:15", "14:30"),
        ("14:45", 105.0, 105.1, 104.5, 104.6),
        ("15:00", 104.6, 105.3, 104.4, 105.2),
        ("15:15", 105.2, 106.0, 105.0, 105.8),
    ]
    assert run([frame("X", bars)]).trades == []


def test_the_previous_sessions_rsi_is_used_not_todays() -> None:
    import numpy as np

    from tfl.timeutil import epoch_of_ist

    from builders import TEST_DAY

    bars = [*BASE, *quiet(105.6, "10:15")]
    rising = daily_series("X", True)
    # Today's daily row crashes the RSI; a bar of today must not see it.
    crash = dataclasses.replace(
        rising,
        ts=np.append(rising.ts, epoch_of_ist(TEST_DAY, 0)),
        open=np.append(rising.open, 10.0),
        high=np.append(rising.high, 80.0),
        low=np.append(rising.low, 5.0),
        close=np.append(rising.close, 10.0),
        volume=np.append(rising.volume, 1e6),
    )
    assert len(run([frame("X", bars, daily=crash)]).trades) == 1
    leaky = prepare_symbol(intraday("X", bars), crash, Settings(), leak=True)
    assert run([leaky]).trades == []  # what the classic leak would have done
    # And the other way round: yesterday's RSI is low, today's row is a rally: no long.
    falling = daily_series("X", False)
    rally = dataclasses.replace(
        falling,
        ts=np.append(falling.ts, epoch_of_ist(TEST_DAY, 0)),
        open=np.append(falling.open, 500.0),
        high=np.append(falling.high, 600.0),
        low=np.append(falling.low, 400.0),
        close=np.append(falling.close, 600.0),
        volume=np.append(falling.volume, 1e6),
    )
    assert run([frame("X", bars, daily=rally)]).trades == []


def test_bias_filters_sides() -> None:
    f = frame("X", [*BASE, *quiet(105.6, "10:15")])
    assert run([f], Bias.SHORTS).trades == []
    assert run([f], Bias.NO_TRADES).trades == []
    assert len(run([f], Bias.LONGS).trades) == 1


SHORT_BASE = [
    ("09:15", 96.0, 96.2, 94.8, 95.0),
    ("09:30", 95.0, 95.5, 94.9, 95.4),  # green
    ("09:45", 95.4, 95.6, 94.7, 94.8),  # red setup: pattern low 94.7, high 95.6
    ("10:00", 94.8, 94.9, 94.2, 94.4),  # T: low <= 94.7 -> sell at 94.7 * (1 - slip)
]


def test_short_mirror_entry_stop_and_eod() -> None:
    t = one_trade([*SHORT_BASE, *quiet(94.4, "10:15")], rising=False)
    fill = 94.7 * (1 - SLIP)
    assert t.side is Side.SHORT and t.entry_price == pytest.approx(fill)
    assert t.initial_stop == 95.6 and t.r == pytest.approx(95.6 - fill)
    assert t.exit_reason is ExitReason.EOD and t.exit_price == pytest.approx(94.4 * (1 + SLIP))
    stopped = one_trade([*SHORT_BASE, ("10:15", 94.4, 96.0, 94.3, 95.9), *quiet(95.9, "10:30")], rising=False)
    assert stopped.exit_reason is ExitReason.STOP and stopped.exit_price == pytest.approx(95.6 * (1 + SLIP))


def test_one_position_per_symbol_judged_at_the_start_of_the_bar() -> None:
    # A second setup completes while the first position is still open: POSITION_OPEN.
    bars = [
        *BASE,
        ("10:15", 105.6, 105.7, 105.2, 105.3),
        ("10:30", 105.3, 105.9, 105.25, 105.8),
        ("10:45", 105.8, 106.5, 105.7, 106.4),
        *quiet(106.4, "11:00"),
    ]
    res = run([frame("X", bars)])
    assert len(res.trades) == 1
    assert [(r.reason, hhmm_of(r.ts)) for r in res.rejections] == [(RejectReason.POSITION_OPEN, "10:45")]


def zigzag_daily(symbol: str, down: float):  # type: ignore[no-untyped-def]
    """Rising daily closes with a down day every third day: a bigger ``down`` means a lower RSI."""
    d = daily_series(symbol, True)
    closes = []
    c = 100.0
    for i in range(len(d)):
        c = c - down if i % 3 == 2 else c + 2.0
        closes.append(c)
    import numpy as np

    arr = np.array(closes)
    return dataclasses.replace(d, open=arr, high=arr + 1, low=arr - 1, close=arr)


def test_priority_order_by_rsi_when_slots_are_scarce() -> None:
    from tfl.indicators.streaming import RSI

    s = Settings().replace({"risk.max_positions": 1})
    dailies = {"AAA": zigzag_daily("AAA", 0.9), "BBB": zigzag_daily("BBB", 0.2), "CCC": zigzag_daily("CCC", 0.5)}
    rsis = {}
    for sym, d in dailies.items():
        r = RSI(14)
        for c in d.close.tolist():
            r.update(c)
        rsis[sym] = r.value
    assert all(v > 75 for v in rsis.values())
    frames = [frame(sym, [*BASE, *quiet(105.6, "10:15")], daily=d, settings=s) for sym, d in dailies.items()]
    res = run(frames, settings=s)
    best = max(rsis, key=lambda k: rsis[k])
    assert [t.symbol for t in res.trades] == [best]
    assert sorted((r.symbol, r.reason) for r in res.rejections) == sorted(
        (sym, RejectReason.MAX_POSITIONS) for sym in rsis if sym != best
    )


def test_resized_to_the_risk_budget() -> None:
    s = Settings().replace(
        {"risk.risk_per_trade_pct": 0.5, "risk.open_risk_budget_pct": 0.75, "risk.max_position_pct": 100.0}
    )
    frames = [
        frame(sym, [*BASE, *quiet(105.6, "10:15")], daily=zigzag_daily(sym, d), settings=s)
        for sym, d in (("AAA", 0.2), ("BBB", 1.0))
    ]
    res = run(frames, settings=s)
    by = {t.symbol: t for t in res.trades}
    eq = s.backtest.capital
    planned_rps = FILL - 104.4
    assert by["AAA"].qty == int(0.005 * eq // planned_rps)  # first (higher RSI): the full 0.5%
    assert by["BBB"].qty == int((0.0075 * eq - by["AAA"].qty * planned_rps) // planned_rps)  # what is left


def test_resized_to_cash() -> None:
    from tfl.costs import CostModel
    from tfl.strategy.sizing import cash_needed

    s = Settings().replace(
        {"risk.max_position_pct": 60.0, "risk.risk_per_trade_pct": 5.0, "risk.open_risk_budget_pct": 100.0}
    )
    frames = [
        frame(sym, [*BASE, *quiet(105.6, "10:15")], daily=zigzag_daily(sym, d), settings=s)
        for sym, d in (("AAA", 0.2), ("BBB", 1.0))
    ]
    res = run(frames, settings=s)
    by = {t.symbol: t for t in res.trades}
    cost = CostModel(s.costs)
    eq = s.backtest.capital
    assert by["AAA"].qty == int(0.6 * eq // FILL)
    cash_left = eq - cash_needed(Side.LONG, by["AAA"].qty, FILL, cost, 1.0)
    q = by["BBB"].qty
    assert cash_needed(Side.LONG, q, FILL, cost, 1.0) <= cash_left < cash_needed(Side.LONG, q + 1, FILL, cost, 1.0)
    assert q < int(0.6 * eq // FILL)


def test_insufficient_cash_rejects_when_nothing_fits() -> None:
    s = Settings().replace(
        {"risk.max_position_pct": 100.0, "risk.risk_per_trade_pct": 50.0, "risk.open_risk_budget_pct": 100.0}
    )
    frames = [
        frame(sym, [*BASE, *quiet(105.6, "10:15")], daily=zigzag_daily(sym, d), settings=s)
        for sym, d in (("AAA", 0.2), ("BBB", 1.0))
    ]
    res = run(frames, settings=s)
    assert [t.symbol for t in res.trades] == ["AAA"]
    assert [(r.symbol, r.reason) for r in res.rejections] == [("BBB", RejectReason.INSUFFICIENT_CASH)]


# ----------------------------------------------------------------- allocation modes and the risk guard


def test_reserve_mode_a_setup_that_does_not_trigger_still_holds_its_reservation() -> None:
    """AAA (higher RSI) does not trigger but reserved the last slot, so BBB is rejected in
    reserve mode; the strategy page's bar rule gives the slot to BBB."""
    no_trigger = [*BASE[:3], ("10:00", 105.2, 105.29, 105.0, 105.25), *quiet(105.25, "10:15")]
    trigger = [*BASE, *quiet(105.6, "10:15")]
    for allocation, expected in (("reserve", []), ("bar", ["BBB"])):
        s = Settings().replace({"risk.max_positions": 1, "risk.allocation": allocation})
        frames = [
            frame("AAA", no_trigger, daily=zigzag_daily("AAA", 0.2), settings=s),
            frame("BBB", trigger, daily=zigzag_daily("BBB", 0.9), settings=s),
        ]
        res = run(frames, settings=s)
        assert [t.symbol for t in res.trades] == expected, allocation
        if allocation == "reserve":
            assert [(r.symbol, r.reason) for r in res.rejections] == [("BBB", RejectReason.MAX_POSITIONS)]


def test_reserve_mode_exits_during_the_bar_free_nothing_for_that_bar() -> None:
    """AAA stops out during 10:15 while BBB triggers in the same bar: the bar rule lets BBB use
    the freed slot, the reservation rule (sized at the 10:00 close) does not."""
    aaa = [*BASE, ("10:15", 105.6, 105.7, 104.0, 104.2), *quiet(104.2, "10:30")]
    bbb = [
        *quiet(105.0, "09:15", "09:15"),
        ("09:30", 105.0, 105.15, 104.95, 105.1),
        ("09:45", 105.1, 105.12, 104.9, 105.0),
        ("10:00", 105.0, 105.2, 104.95, 105.15),  # setup for 10:15
        ("10:15", 105.15, 105.5, 105.1, 105.4),
        *quiet(105.4, "10:30"),
    ]
    for allocation, expected in (("reserve", ["AAA"]), ("bar", ["AAA", "BBB"])):
        s = Settings().replace({"risk.max_positions": 1, "risk.allocation": allocation})
        frames = [frame("AAA", aaa, settings=s), frame("BBB", bbb, settings=s)]
        res = run(frames, settings=s)
        assert sorted(t.symbol for t in res.trades) == expected, allocation


def test_a_missing_next_bar_expires_the_setup() -> None:
    bars = [*BASE[:3], *quiet(105.6, "10:15")]  # no 10:00 bar: the 10:15 bar is not "the next bar"
    bars[3] = ("10:15", 105.2, 105.8, 105.0, 105.6)
    assert run([frame("X", bars)]).trades == []


def test_daily_loss_limit_flattens_at_the_next_bar_and_stops_entries() -> None:
    s = Settings().replace({"risk.daily_loss_limit_pct": 0.1, "risk.risk_per_trade_pct": 1.0})
    # The position loses more than 0.1% of equity by the 10:15 close (without reaching its stop).
    bars = [
        *BASE,
        ("10:15", 105.6, 105.7, 104.5, 104.6),
        ("10:30", 104.7, 104.8, 104.6, 104.7),
        # a fresh setup later in the day must not be taken
        ("10:45", 104.7, 104.75, 104.45, 104.5),
        ("11:00", 104.5, 105.0, 104.48, 104.9),
        ("11:15", 104.9, 106.0, 104.85, 105.9),
        *quiet(105.9, "11:30"),
    ]
    res = run([frame("X", bars, settings=s)], settings=s)
    assert len(res.trades) == 1
    t = res.trades[0]
    assert t.exit_reason is ExitReason.KILL_SWITCH and hhmm_of(t.exit_ts) == "10:30"
    assert t.exit_price == pytest.approx(104.7 * (1 - SLIP))
    # The later setup did trigger (11:15 reaches its 105.0 high): recorded, with the reason.
    assert [(r.reason, hhmm_of(r.ts)) for r in res.rejections] == [(RejectReason.DAILY_LOSS_LIMIT, "11:15")]


def test_a_bar_that_opens_beyond_the_target_fills_the_target_at_the_open() -> None:
    """The limit order rests at the target; a bar that opens above it fills it at the open, even
    if the same bar later falls to the stop: the fill model's path starts at the open."""
    target = FILL + 10 * R
    bars = [*BASE, ("10:15", target + 1.0, target + 1.5, 104.0, 104.2), *quiet(104.2, "10:30")]
    t = one_trade(bars)
    assert t.exit_reason is ExitReason.TARGET
    assert t.exit_price == pytest.approx(target + 1.0)  # the open, no slippage (a limit order)


def test_a_flatten_waits_for_the_symbols_next_bar() -> None:
    """A market exit decided at a close fills at the symbol's next bar: if the symbol has no bar
    in the next slot, it fills at the open of the one after (what a live market order does)."""
    s = Settings().replace({"risk.daily_loss_limit_pct": 0.1})
    bars = [*BASE, ("10:15", 105.6, 105.7, 104.5, 104.6), ("10:45", 104.0, 104.8, 103.9, 104.7), *quiet(104.7, "11:00")]
    # Another symbol ticks at 10:30, so the market has a 10:30 bar; X does not.
    other = frame("Y", quiet(50.0, "09:15"), settings=s)
    res = run([frame("X", bars, settings=s), other], settings=s)
    (t,) = res.trades
    assert t.exit_reason is ExitReason.KILL_SWITCH and hhmm_of(t.exit_ts) == "10:45"
    assert t.exit_price == pytest.approx(104.0 * (1 - SLIP))
