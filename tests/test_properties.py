"""Portfolio invariants under random markets and settings (hypothesis).

The equity identity is checked against an independent reconstruction from the trade
list and the bars, not against the simulator's own bookkeeping.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfl.backtest.signals import prepare_symbol
from tfl.backtest.simulator import simulate
from tfl.domain import Bias
from tfl.settings import Settings
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY, date_to_day

from builders import SESSION, daily_series, series

DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6), dt.date(2024, 3, 7)]


def random_market(seed: int, n_sym: int) -> list:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_sym):
        rows = []
        p = 100.0 * (1 + k * 0.1)
        for d in DAYS:
            last = 25 if rng.random() > 0.2 else int(rng.integers(5, 25))  # some half sessions
            for t in SESSION[:last]:
                if rng.random() < 0.05:  # missing bars
                    continue
                o = p * (1 + rng.normal(0, 0.002))
                c = o * (1 + rng.normal(0.0004 if k % 2 == 0 else -0.0004, 0.004))
                h = max(o, c) * (1 + abs(rng.normal(0, 0.002)))
                lo = min(o, c) * (1 - abs(rng.normal(0, 0.002)))
                rows.append((d, t, o, h, lo, c, float(rng.integers(100, 10_000))))
                p = c
        bars = series(f"S{k}", rows)
        frames.append((bars, daily_series(f"S{k}", rising=k % 2 == 0, last_day=DAYS[0] - dt.timedelta(days=1))))
    return frames


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n_sym=st.integers(2, 6),
    max_pos=st.integers(1, 4),
    risk_pct=st.floats(0.2, 3.0),
    budget_mult=st.floats(1.0, 4.0),
    cap_pct=st.floats(5.0, 100.0),
    margin=st.sampled_from([1.0, 2.0, 5.0]),
    capital=st.sampled_from([20_000.0, 1_000_000.0]),
    costs=st.sampled_from(["nse_intraday", "flat"]),
)
def test_portfolio_invariants(
    seed: int,
    n_sym: int,
    max_pos: int,
    risk_pct: float,
    budget_mult: float,
    cap_pct: float,
    margin: float,
    capital: float,
    costs: str,
) -> None:
    s = Settings().replace(
        {
            "risk.max_positions": max_pos,
            "risk.risk_per_trade_pct": risk_pct,
            "risk.open_risk_budget_pct": min(100.0, risk_pct * budget_mult),
            "risk.max_position_pct": cap_pct,
            "risk.margin_multiplier": margin,
            "backtest.capital": capital,
            "costs.model": costs,
            "strategy.long_rsi_min": 50.0,
            "strategy.short_rsi_max": 50.0 - 1e-9,
        }
    )
    market = random_market(seed, n_sym)
    frames = [prepare_symbol(b, d, s) for b, d in market]
    res = simulate(
        frames,
        {date_to_day(d): Bias.BOTH for d in DAYS},
        date_to_day(DAYS[0]),
        date_to_day(DAYS[-1]),
        s,
        check_invariants=True,
    )

    # 1. cash + marked positions == equity at every bar close, rebuilt from trades and bars.
    bars = {b.symbol: b for b, _ in market}
    for g, t in enumerate(res.equity_ts.tolist()):
        realised = sum(tr.pnl for tr in res.trades if tr.exit_ts <= t)
        open_value = 0.0
        reserved = 0.0
        for tr in res.trades:
            if tr.entry_ts <= t < tr.exit_ts:
                b = bars[tr.symbol]
                mark = float(b.close[np.searchsorted(b.ts, t, side="right") - 1])
                open_value += tr.side * tr.qty * (mark - tr.entry_price) - tr.entry_charges.total
                reserved += tr.qty * tr.entry_price / margin + tr.entry_charges.total
        assert abs(res.equity[g] - (capital + realised + open_value)) < 1e-6 * capital
        assert abs(res.cash[g] - (capital + realised - reserved)) < 1e-6 * capital

    # 2. open risk never exceeds the budget (checked at every entry).
    for _, open_risk, budget in res.invariant_log:
        assert open_risk <= budget * (1 + 1e-12)

    # 3. never more than the maximum positions, counting entry-bar stops as holding a slot.
    for t in {tr.entry_ts for tr in res.trades}:
        held = sum(1 for tr in res.trades if tr.entry_ts <= t and (tr.exit_ts > t or tr.entry_ts == tr.exit_ts == t))
        assert held <= max_pos
    assert int(res.open_positions.max(initial=0)) <= max_pos

    # 4. no fills outside the session; entries never on the first or the 15:15 bar; intraday only.
    #    Entries and stop/target exits happen on the symbol's own bars; a square-off or a loss-limit
    #    flatten can happen at a market bar where the symbol has none (its last close is used then).
    market_times = set(res.equity_ts.tolist())
    for tr in res.trades:
        assert tr.entry_ts in set(bars[tr.symbol].ts.tolist())
        own_bar = tr.exit_ts in set(bars[tr.symbol].ts.tolist())
        assert own_bar or (tr.exit_reason.value in ("EOD", "KILL_SWITCH") and tr.exit_ts in market_times)
        for ts in (tr.entry_ts, tr.exit_ts):
            minute = ((ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
            assert 9 * 60 + 15 <= minute <= 15 * 60 + 15
        entry_min = ((tr.entry_ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
        assert 9 * 60 + 15 < entry_min < 15 * 60 + 15
        assert (tr.entry_ts + IST_OFFSET_S) // SECONDS_PER_DAY == (tr.exit_ts + IST_OFFSET_S) // SECONDS_PER_DAY
        assert tr.entry_ts <= tr.exit_ts and tr.qty > 0
    # The book ends every session flat.
    last_of_day = np.r_[
        (res.equity_ts[1:] + IST_OFFSET_S) // SECONDS_PER_DAY != (res.equity_ts[:-1] + IST_OFFSET_S) // SECONDS_PER_DAY,
        True,
    ]
    assert (res.open_positions[last_of_day] == 0).all()


def test_random_markets_do_trade() -> None:
    """Guard against a vacuous property test: the generator produces trades and contention."""
    s = Settings().replace(
        {"risk.max_positions": 2, "strategy.long_rsi_min": 50.0, "strategy.short_rsi_max": 50.0 - 1e-9}
    )
    trades = rejections = 0
    for seed in range(10):
        frames = [prepare_symbol(b, d, s) for b, d in random_market(seed, 5)]
        res = simulate(
            frames, {date_to_day(d): Bias.BOTH for d in DAYS}, date_to_day(DAYS[0]), date_to_day(DAYS[-1]), s
        )
        trades += len(res.trades)
        rejections += len(res.rejections)
    assert trades > 50 and rejections > 5
