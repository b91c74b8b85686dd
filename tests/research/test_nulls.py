"""The random-entry null model: matching checked on enumerable hand-built bars, a planted edge
found, random trades on a random walk not flagged, determinism, the p-value's bounds, and an end to
end run on the shared data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfl.backtest.metrics import daily_equity
from tfl.backtest.run import BacktestRequest, run_backtest
from tfl.costs import CostModel
from tfl.data.bars import BarSeries
from tfl.data.market import load_market
from tfl.domain import ExitReason, Side
from tfl.research import nulls
from tfl.research.nulls import (
    NullModelError,
    actual_daily_returns,
    null_p_value,
    random_entry_nulls,
    random_trades,
    session_sharpe,
)
from tfl.settings import Settings
from tfl.strategy.book import Trade
from tfl.timeutil import date_to_day, day_to_date, epoch_of_ist

from builders import series

S = Settings()
SLIP = S.costs.slippage_pct / 100.0
COST = CostModel(S.costs)
SESSION_MINUTES = [555 + 15 * i for i in range(25)]  # 09:15 .. 15:15


def _min(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _fill(raw: float, buy: bool) -> float:
    """A slipped market fill, written out independently of the module."""
    return raw * (1.0 + SLIP) if buy else raw * (1.0 - SLIP)


def _trade(symbol: str, side: Side, entry_ts: int, entry_raw: float, exit_ts: int, exit_raw: float, qty: int) -> Trade:
    """A trade as the book would record it: slipped fills, itemised charges of the cost model."""
    long = side is Side.LONG
    ep, xp = _fill(entry_raw, long), _fill(exit_raw, not long)
    return Trade(
        symbol,
        side,
        entry_ts - 900,
        entry_ts,
        ep,
        qty,
        exit_ts,
        xp,
        ExitReason.STOP,
        ep * 0.99,
        ep * 0.01,
        50.0,
        COST.charges(qty * ep, long),
        COST.charges(qty * xp, not long),
    )


# --------------------------------------------------------------------------- matching, enumerated

D = [dt.date(2024, 3, d) for d in (4, 5, 6, 7, 11, 12)]
# D[4] is not a session of the run; D[5] is, but its 09:30 bar is its last (no entry there).
TINY_BARS = {
    D[0]: ["09:15", "09:30", "09:45", "10:00", "10:15", "15:15"],
    D[1]: ["09:15", "09:30", "10:00", "10:15", "10:30", "15:15"],  # 09:45 missing
    D[2]: ["09:15", "09:45", "10:00", "15:15"],  # no 09:30
    D[3]: ["09:15", "09:30", "09:45"],  # ends early: no square-off bar
    D[4]: ["09:15", "09:30", "09:45", "10:00"],
    D[5]: ["09:15", "09:30"],
}
TINY_SESSIONS = [date_to_day(d) for d in (D[0], D[1], D[2], D[3], D[5])]


def _open(d: dt.date, hhmm: str) -> float:
    return 100.0 + 10.0 * D.index(d) + _min(hhmm) / 100.0


def _tiny_bars() -> BarSeries:
    rows = []
    for d, times in TINY_BARS.items():
        for t in times:
            o = _open(d, t)
            rows.append((d, t, o, o + 1.0, o - 1.0, o + 0.25, 1000.0))
    return series("AAA", rows)


def _ts(d: dt.date, hhmm: str) -> int:
    return epoch_of_ist(d, _min(hhmm))


TINY_TRADES = [
    _trade("AAA", Side.LONG, _ts(D[0], "09:30"), 105.0, _ts(D[0], "10:00"), 106.0, 100),  # 2 bars
    _trade("AAA", Side.SHORT, _ts(D[0], "10:00"), 106.0, _ts(D[0], "15:15"), 109.0, 37),  # squared off
    _trade("AAA", Side.LONG, _ts(D[1], "10:15"), 116.0, _ts(D[1], "10:15"), 115.0, 5),  # stopped in its entry bar
]
# Every possible random trade of each actual: entry (date, time) -> (exit time stamp, raw exit price).
TINY_EXPECTED = [
    {
        (D[0], "09:30"): (_ts(D[0], "10:00"), _open(D[0], "10:00")),
        (D[1], "09:30"): (_ts(D[1], "10:15"), _open(D[1], "10:15")),  # two of the session's bars later
        (D[3], "09:30"): (_ts(D[3], "10:00"), _open(D[3], "09:45") + 0.25),  # clipped: last bar's close
    },
    {
        (D[0], "10:00"): (_ts(D[0], "15:15"), _open(D[0], "15:15")),
        (D[1], "10:00"): (_ts(D[1], "10:30"), _open(D[1], "10:30")),
        (D[2], "10:00"): (_ts(D[2], "15:15"), _open(D[2], "15:15")),  # clipped at the square-off bar
    },
    {
        (D[0], "10:15"): (_ts(D[0], "15:15"), _open(D[0], "15:15")),  # one bar (not zero) later
        (D[1], "10:15"): (_ts(D[1], "10:30"), _open(D[1], "10:30")),
    },
]


def test_matching_enumerated_exactly() -> None:
    n = 300
    rt = random_trades(TINY_TRADES, {"AAA": _tiny_bars()}, TINY_SESSIONS, S, n, seed=7)
    assert rt.entry_ts.shape == (n, 3)
    assert rt.symbols == ("AAA", "AAA", "AAA")
    assert rt.side.tolist() == [1, -1, 1]
    assert rt.holding.tolist() == [2, 2, 1]
    by_ts = {_ts(d, t): (d, t) for d, times in TINY_BARS.items() for t in times}
    for j, (actual, expected) in enumerate(zip(TINY_TRADES, TINY_EXPECTED, strict=True)):
        long = actual.side is Side.LONG
        seen: dict[tuple[dt.date, str], int] = {}
        for i in range(n):
            d, t = by_ts[int(rt.entry_ts[i, j])]
            assert (d, t) in expected, f"trade {j}: entry {d} {t} is not a candidate"
            seen[(d, t)] = seen.get((d, t), 0) + 1
            exit_ts, exit_raw = expected[(d, t)]
            assert rt.exit_ts[i, j] == exit_ts
            ep = _fill(_open(d, t), long)
            xp = _fill(exit_raw, not long)
            assert rt.entry_price[i, j] == pytest.approx(ep, rel=1e-15)
            assert rt.exit_price[i, j] == pytest.approx(xp, rel=1e-15)
            qty = max(1, round(actual.entry_price * actual.qty / ep))
            assert rt.qty[i, j] == qty
            charges = COST.charges(qty * ep, long).total + COST.charges(qty * xp, not long).total
            assert rt.charges[i, j] == pytest.approx(charges, rel=1e-9)
            assert rt.pnl[i, j] == pytest.approx(actual.side * qty * (xp - ep) - charges, rel=1e-9, abs=1e-9)
            assert rt.session[i, j] == TINY_SESSIONS.index(date_to_day(d))
        # Every candidate is drawn, each about equally often (binomial sd about 8 of 100 or 150).
        assert set(seen) == set(expected)
        share = n / len(expected)
        assert all(abs(c - share) < 0.4 * share for c in seen.values()), seen


def test_random_sizes_differ_from_the_actual_quantity() -> None:
    """The random trades keep the notional, not the share count (a check the test above relies on)."""
    rt = random_trades(TINY_TRADES, {"AAA": _tiny_bars()}, TINY_SESSIONS, S, 50, seed=1)
    assert set(rt.qty[:, 0].tolist()) - {100}
    notional = rt.qty[:, 0] * rt.entry_price[:, 0]
    assert np.all(np.abs(notional - TINY_TRADES[0].entry_price * 100) <= rt.entry_price[:, 0] / 2 + 1e-9)


# --------------------------------------------------------------------------- synthetic worlds


def _walk(rng: np.random.Generator, symbol: str, days: list[dt.date], jumps: dict[int, int] | None = None) -> BarSeries:
    """Full 25-bar sessions of a geometric random walk (0.1% a bar); ``jumps`` maps a session
    index to a bar after whose open the price jumps up 1.5%."""
    n = len(days) * 25
    logp = np.log(100.0) + np.cumsum(rng.normal(0.0, 0.001, n))
    for k, b in (jumps or {}).items():
        logp[k * 25 + b + 1 :] += math.log(1.015)
    o = np.exp(logp)
    c = np.append(o[1:], o[-1])
    ts = np.array([epoch_of_ist(d, m) for d in days for m in SESSION_MINUTES], dtype=np.int64)
    return BarSeries(symbol, ts, o, np.maximum(o, c) * 1.0005, np.minimum(o, c) * 0.9995, c, np.full(n, 1e4))


def _weekdays(n: int, start: dt.date = dt.date(2023, 1, 2)) -> list[dt.date]:
    out: list[dt.date] = []
    d = start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def _open_trade(b: BarSeries, side: Side, k: int, j: int, hold: int, notional: float, sq_index: int = 24) -> Trade:
    """A trade entered at the open of bar ``j`` of session ``k``, out at the open ``hold`` bars later
    (or at the square-off bar's open)."""
    e = k * 25 + j
    x = k * 25 + min(j + hold, sq_index)
    raw = float(b.open[e])
    qty = max(1, round(notional / _fill(raw, side is Side.LONG)))
    return _trade(b.symbol, side, int(b.ts[e]), raw, int(b.ts[x]), float(b.open[x]), qty)


def test_planted_edge_beats_random_entries() -> None:
    """Entries right before a known jump: no random entry at the same minute comes close."""
    rng = np.random.default_rng(11)
    days = _weekdays(120)
    bars: dict[str, BarSeries] = {}
    trades: list[Trade] = []
    for sym in ("JMP", "HOP"):
        jump_days = sorted(rng.choice(len(days), 40, replace=False).tolist())
        jumps = {k: int(rng.integers(2, 20)) for k in jump_days}
        b = _walk(rng, sym, days, jumps)
        bars[sym] = b
        trades += [_open_trade(b, Side.LONG, k, j, 2, 100_000.0) for k, j in jumps.items()]
    sessions = [date_to_day(d) for d in days]
    res = random_entry_nulls(trades, bars, sessions, 1_000_000.0, S, n_draws=500, seed=3)
    assert res.n_trades == 80 and res.n_sessions == 120 and res.n_draws == 500
    assert res.p_value <= 0.01
    assert res.net_pnl_p_value <= 0.01
    assert res.actual_net_pnl > res.null_net_pnl_p95


def test_random_trades_on_a_random_walk_are_not_flagged() -> None:
    """Trades entered at random bar opens are exchangeable with the null's draws, so their p-values
    are uniform: over 20 independent worlds the mean p is near 0.5 and few are below 0.05 (bands
    of about 3 standard deviations; the seeds are fixed, so the outcome is too)."""
    ps = []
    for world in range(20):
        rng = np.random.default_rng(1000 + world)
        days = _weekdays(60)
        bars = {sym: _walk(rng, sym, days) for sym in ("RWA", "RWB")}
        trades = []
        for _ in range(80):
            b = bars[str(rng.choice(["RWA", "RWB"]))]
            side = Side.LONG if rng.random() < 0.5 else Side.SHORT
            k, j, hold = int(rng.integers(0, 60)), int(rng.integers(1, 23)), int(rng.integers(1, 7))
            trades.append(_open_trade(b, side, k, j, hold, 50_000.0))
        sessions = [date_to_day(d) for d in days]
        res = random_entry_nulls(trades, bars, sessions, 1_000_000.0, S, n_draws=199, seed=world)
        ps.append(res.p_value)
    assert 0.3 <= statistics.mean(ps) <= 0.7, ps
    assert sum(p < 0.05 for p in ps) <= 4, ps


def _small_world() -> tuple[list[Trade], dict[str, BarSeries], list[int]]:
    rng = np.random.default_rng(5)
    days = _weekdays(30)
    b = _walk(rng, "DET", days)
    trades = [_open_trade(b, Side.LONG if k % 2 else Side.SHORT, k, 3 + k % 7, 1 + k % 5, 20_000.0) for k in range(30)]
    return trades, {"DET": b}, [date_to_day(d) for d in days]


def test_same_seed_same_result_and_blocks_do_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    trades, bars, sessions = _small_world()
    a = random_entry_nulls(trades, bars, sessions, 1e6, S, n_draws=40, seed=9)
    b = random_entry_nulls(trades, bars, sessions, 1e6, S, n_draws=40, seed=9)
    c = random_entry_nulls(trades, bars, sessions, 1e6, S, n_draws=40, seed=10)
    assert np.array_equal(a.null_sharpes, b.null_sharpes) and a.p_value == b.p_value
    assert not np.array_equal(a.null_sharpes, c.null_sharpes)
    by_date = random_entry_nulls(trades, bars, [day_to_date(d) for d in sessions], 1e6, S, n_draws=40, seed=9)
    assert np.array_equal(a.null_sharpes, by_date.null_sharpes)
    rt = random_trades(trades, bars, sessions, S, 40, seed=9)
    assert np.allclose(rt.pnl.sum(axis=1), a.null_net_pnls, rtol=1e-12)
    # Priced 7 cells at a time (so blocks of one draw): the very same draws.
    monkeypatch.setattr(nulls, "_BLOCK_CELLS", 7)
    small = random_entry_nulls(trades, bars, sessions, 1e6, S, n_draws=40, seed=9)
    assert np.array_equal(a.null_sharpes, small.null_sharpes)
    assert np.array_equal(random_trades(trades, bars, sessions, S, 40, seed=9).entry_ts, rt.entry_ts)


def test_null_sharpes_are_the_draws_daily_pnl_over_capital() -> None:
    """An independent recomputation of each draw's Sharpe from its random trades."""
    trades, bars, sessions = _small_world()
    res = random_entry_nulls(trades, bars, sessions, 250_000.0, S, n_draws=12, seed=2)
    rt = random_trades(trades, bars, sessions, S, 12, seed=2)
    for i in range(12):
        daily = [0.0] * len(sessions)
        for s_ix, pnl in zip(rt.session[i].tolist(), rt.pnl[i].tolist(), strict=True):
            daily[s_ix] += pnl / 250_000.0
        assert res.null_sharpes[i] == pytest.approx(statistics.mean(daily) / statistics.stdev(daily), rel=1e-9)
    actual = [0.0] * len(sessions)
    for t in trades:
        actual[sessions.index(date_to_day(dt.date.fromisoformat(_iso_day(t.entry_ts))))] += t.pnl / 250_000.0
    assert res.actual_sharpe == pytest.approx(statistics.mean(actual) / statistics.stdev(actual), rel=1e-9)
    wins = sum(1 for x in res.null_sharpes if x >= res.actual_sharpe)
    assert res.p_value == (1 + wins) / 13


def _iso_day(ts: int) -> str:
    return (dt.datetime.fromtimestamp(ts, dt.UTC) + dt.timedelta(hours=5, minutes=30)).date().isoformat()


# --------------------------------------------------------------------------- the statistics


@given(
    st.floats(-5, 5, allow_nan=False),
    st.lists(st.integers(-20, 20).map(lambda x: x / 4), min_size=1, max_size=200),
)
def test_p_value_bounds_and_count(actual: float, null: list[float]) -> None:
    p = null_p_value(actual, np.array(null))
    n = len(null)
    assert 1 / (n + 1) <= p <= 1
    assert p == (1 + sum(1 for x in null if x >= actual)) / (n + 1)


@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=60))
def test_session_sharpe_matches_statistics(values: list[float]) -> None:
    sd, mean = statistics.stdev(values), statistics.mean(values)
    got = float(session_sharpe(np.array(values)))
    if sd > 1e-6 * max(abs(mean), 1e-6):
        assert got == pytest.approx(mean / sd, rel=1e-6, abs=1e-9)
    elif len(set(values)) == 1:
        assert got == 0.0


def test_bad_inputs_are_named() -> None:
    trades, bars, sessions = _small_world()
    with pytest.raises(NullModelError, match="GHOST: traded but has no 15-minute bars"):
        random_entry_nulls(
            [*trades, _trade("GHOST", Side.LONG, trades[0].entry_ts, 1, 0, 1, 1)], bars, sessions, 1e6, S
        )
    shifted = _trade("DET", Side.LONG, trades[0].entry_ts + 60, 100.0, trades[0].exit_ts, 100.0, 5)
    with pytest.raises(NullModelError, match="not the start of one of its bars"):
        random_entry_nulls([shifted], bars, sessions, 1e6, S)
    with pytest.raises(NullModelError, match="number of draws must be at least 1"):
        random_entry_nulls(trades, bars, sessions, 1e6, S, n_draws=0)
    with pytest.raises(NullModelError, match="at least 2 sessions"):
        random_entry_nulls(trades[:1], bars, sessions[:1], 1e6, S)
    with pytest.raises(NullModelError, match="capital must be positive"):
        random_entry_nulls(trades, bars, sessions, 0.0, S)
    with pytest.raises(NullModelError, match="no trades"):
        random_entry_nulls([], bars, sessions, 1e6, S)
    with pytest.raises(NullModelError, match="not in any session of the run"):
        actual_daily_returns(trades, sessions[1:], 1e6)


@pytest.mark.parametrize("model", ["nse_intraday", "flat"])
@pytest.mark.parametrize("is_buy", [True, False])
def test_vectorised_charges_are_the_cost_models(model: str, is_buy: bool, caplog: pytest.LogCaptureFixture) -> None:
    """Across the brokerage cap's kink (about 66,667 rupees by default), every turnover is charged
    what CostModel.charges itemises, with no fallback taken."""
    c = dataclasses.replace(S.costs, model=model)
    cost = CostModel(c)
    turnover = np.concatenate([np.geomspace(1.0, 5e7, 997), [66_666.0, 66_667.0, 66_668.0]])
    with caplog.at_level(logging.WARNING, logger="tfl.research.nulls"):
        got = nulls._charge_totals(cost, c, turnover, is_buy)
    want = np.array([cost.charges(float(x), is_buy).total for x in turnover])
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)
    assert not caplog.records


def test_charges_not_piecewise_linear_are_priced_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    class Curved(CostModel):
        def charge_total(self, turnover: float, is_buy: bool) -> float:
            return float(turnover**1.1)

    turnover = np.geomspace(10.0, 1e6, 500)
    with caplog.at_level(logging.WARNING, logger="tfl.research.nulls"):
        got = nulls._charge_totals(Curved(S.costs), S.costs, turnover, True)
    assert np.array_equal(got, np.array([float(x) ** 1.1 for x in turnover]))
    assert "not piecewise linear" in caplog.text


# --------------------------------------------------------------------------- the shared data

REAL_SYMBOLS = ["RELIANCE", "TCS", "HDFCBANK", "SBIN", "ITC", "AXISBANK", "TATASTEEL", "MARUTI", "LT", "ONGC"]


def test_real_data_end_to_end(nse_dir: Path) -> None:
    s = Settings()
    market = load_market(nse_dir, s, REAL_SYMBOLS)
    run = run_backtest(
        BacktestRequest(nse_dir, dt.date(2023, 1, 1), dt.date(2023, 12, 31), s, REAL_SYMBOLS),
        market=market,
        show_progress=False,
    )
    trades = run.result.trades
    assert len(trades) >= 20
    days, equity = daily_equity(run.result)
    capital = s.backtest.capital
    # The actual's daily returns are the equity curve's daily changes over the capital (the book is
    # flat at every session's end), computed here from the simulator's equity, not from the trades.
    by_equity = np.diff(np.concatenate([[capital], equity])) / capital
    assert np.allclose(actual_daily_returns(trades, days, capital), by_equity, rtol=0, atol=1e-12)

    n = 25
    rt = random_trades(trades, market.intraday, days, s, n, seed=4)
    session_set = set(days.tolist())
    sq_min = _min(s.strategy.squareoff_time)
    for j, t in enumerate(trades):
        b = market.intraday[t.symbol]
        bday, bmin = b.day, b.minute
        e0 = int(np.searchsorted(b.ts, t.entry_ts))
        x0 = int(np.searchsorted(b.ts, t.exit_ts))
        assert b.ts[e0] == t.entry_ts and b.ts[x0] == t.exit_ts and bday[e0] == bday[x0]
        hold = max(1, x0 - e0)
        assert rt.holding[j] == hold and rt.side[j] == int(t.side) and rt.symbols[j] == t.symbol
        long = t.side is Side.LONG
        for i in range(n):
            e = int(np.searchsorted(b.ts, rt.entry_ts[i, j]))
            assert b.ts[e] == rt.entry_ts[i, j], "a random entry is not a bar of the symbol"
            assert bmin[e] == bmin[e0] and int(bday[e]) in session_set
            assert rt.entry_price[i, j] == _fill(float(b.open[e]), long)
            same = np.flatnonzero(bday == bday[e])
            pos = int(np.searchsorted(same, e))
            sq = [q for q in range(len(same)) if bmin[same[q]] >= sq_min]
            assert pos < (sq[0] if sq else len(same) - 1), "entered at or after the square-off"
            if sq and pos + hold >= sq[0]:
                want_ts, want_raw = int(b.ts[same[sq[0]]]), float(b.open[same[sq[0]]])
            elif not sq and pos + hold >= len(same):
                want_ts, want_raw = int(b.ts[same[-1]]) + 900, float(b.close[same[-1]])
            else:
                want_ts, want_raw = int(b.ts[same[pos + hold]]), float(b.open[same[pos + hold]])
            assert rt.exit_ts[i, j] == want_ts
            assert rt.exit_price[i, j] == _fill(want_raw, not long)
            assert rt.qty[i, j] == max(1, round(t.entry_price * t.qty / rt.entry_price[i, j]))

    res = random_entry_nulls(trades, market.intraday, days, capital, s, n_draws=200, seed=4)
    assert res.n_trades == len(trades) and res.n_sessions == days.shape[0]
    assert np.isfinite(res.null_sharpes).all() and res.null_sharpes.shape == (200,)
    assert 1 / 201 <= res.p_value <= 1 and 1 / 201 <= res.net_pnl_p_value <= 1
    assert res.null_net_pnl_p05 <= res.null_net_pnl_mean <= res.null_net_pnl_p95
