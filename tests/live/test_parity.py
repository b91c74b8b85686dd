"""Parity: a session replayed through the live runtime (ticks, bar building, order state
machine, paper broker, SQLite journal) gives exactly the backtester's trades.

24 sessions spread over 2020-2025 (4 per year, drawn with a fixed seed from the sessions
whose bias lets the strategy trade) and 40 symbols. The comparison is the exported
trades.csv, string for string, plus the rejected signals.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tfl.backtest.run import BacktestRequest, run_backtest
from tfl.data.bias_inputs import bias_records
from tfl.data.market import load_market
from tfl.domain import Bias
from tfl.settings import Settings
from tfl.trade_csv import trade_rows

from live_helpers import CAL, replay

SYMBOLS = [
    "ABB",
    "ADANIENT",
    "ADANIPORTS",
    "APOLLOHOSP",
    "ASHOKLEY",
    "AXISBANK",
    "BAJFINANCE",
    "BANKBARODA",
    "BEL",
    "BHEL",
    "BPCL",
    "CANBK",
    "COALINDIA",
    "DLF",
    "GAIL",
    "HAL",
    "HDFCBANK",
    "HINDALCO",
    "ICICIBANK",
    "IOC",
    "IRCTC",
    "ITC",
    "JINDALSTEL",
    "JSWSTEEL",
    "LT",
    "M&M",
    "MARUTI",
    "NMDC",
    "NTPC",
    "ONGC",
    "PNB",
    "RECLTD",
    "RELIANCE",
    "SAIL",
    "SBIN",
    "TATAMOTORS",
    "TATASTEEL",
    "TCS",
    "TRENT",
    "VEDL",
]
SETTINGS = Settings()


@pytest.fixture(scope="module")
def market(nse_dir: Path):  # type: ignore[no-untyped-def]
    syms = [s for s in SYMBOLS if (nse_dir / "15min" / f"{s}.parquet").exists()]
    return load_market(nse_dir, SETTINGS, syms)


def pick_sessions(market) -> list[dt.date]:  # type: ignore[no-untyped-def]
    rng = random.Random(20251)
    all_days = [s.date for s in CAL.sessions_between(dt.date(2020, 1, 1), dt.date(2025, 8, 1)) if not s.is_short]
    tradeable = {
        dt.date.fromisoformat(r.session)
        for r in bias_records(market, all_days, SETTINGS)
        if r.bias != Bias.NO_TRADES.value
    }
    out = []
    for year in range(2020, 2026):
        days = [d for d in all_days if d.year == year and d in tradeable]
        rng.shuffle(days)
        out += days[:4]
    return sorted(out)


def test_replay_equals_backtest(market, nse_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    symbols = sorted(market.intraday)
    assert len(symbols) >= 30
    sessions = pick_sessions(market)
    assert len(sessions) >= 20 and {d.year for d in sessions} == set(range(2020, 2026))
    total_trades = total_rejections = 0
    sides = set()
    for day in sessions:
        bt = run_backtest(BacktestRequest(nse_dir, day, day, SETTINGS, symbols), show_progress=False, market=market)
        state, res = replay(tmp_path / day.isoformat(), market, symbols, day, SETTINGS)
        assert res.flat, day
        assert trade_rows(state.book.trades) == trade_rows(bt.result.trades), f"trades differ on {day}"
        want = sorted((r.ts, r.symbol, r.side, r.reason) for r in bt.result.rejections)
        got = sorted((r.ts, r.symbol, r.side, r.reason) for r in state.rejections)
        assert got == want, f"rejections differ on {day}"
        total_trades += len(bt.result.trades)
        total_rejections += len(want)
        sides |= {t.side for t in bt.result.trades}
    assert total_trades >= 40  # the comparison had real trades in it
    assert len(sides) == 2  # longs and shorts
    assert total_rejections > 0


DRAWN_SESSIONS = [
    dt.date(2022, 5, 24),
    dt.date(2021, 1, 8),
    dt.date(2022, 8, 11),
    dt.date(2020, 10, 22),
    dt.date(2024, 2, 2),
    dt.date(2021, 4, 6),
    dt.date(2022, 8, 8),
    dt.date(2024, 9, 24),
]


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    day=st.sampled_from(DRAWN_SESSIONS),
    bias=st.sampled_from(["LONGS", "SHORTS", "BOTH"]),
    max_positions=st.integers(1, 15),
    risk_pct=st.floats(0.25, 3.0),
    budget=st.floats(1.0, 6.0),
    target_r=st.floats(1.5, 12.0),
    long_trail=st.floats(1.0, 6.0),
    short_trail=st.floats(1.0, 6.0),
    aggressive=st.floats(0.5, 2.0),
    min_run=st.integers(1, 3),
    max_run=st.integers(3, 9),
    long_rsi=st.floats(58.0, 75.0),
    short_rsi=st.floats(25.0, 42.0),
    loss_limit=st.floats(0.3, 5.0),
    costs=st.sampled_from(["nse_intraday", "flat"]),
    slippage=st.floats(0.0, 0.2),
)
def test_replay_equals_backtest_with_drawn_settings(  # type: ignore[no-untyped-def]
    market,
    nse_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    day: dt.date,
    bias: str,
    max_positions: int,
    risk_pct: float,
    budget: float,
    target_r: float,
    long_trail: float,
    short_trail: float,
    aggressive: float,
    min_run: int,
    max_run: int,
    long_rsi: float,
    short_rsi: float,
    loss_limit: float,
    costs: str,
    slippage: float,
) -> None:
    """Any settings, either side or both at once: the replayed runtime trades exactly as the
    backtester, trade for trade and rejection for rejection."""
    s = SETTINGS.replace(
        {
            "risk.max_positions": max_positions,
            "risk.risk_per_trade_pct": risk_pct,
            "risk.open_risk_budget_pct": min(100.0, budget * risk_pct),
            "risk.daily_loss_limit_pct": loss_limit,
            "strategy.target_r": target_r,
            "strategy.long_trail_atr": long_trail,
            "strategy.short_trail_atr": short_trail,
            "strategy.aggressive_trail_atr": aggressive,
            "strategy.min_run": min_run,
            "strategy.max_run": max_run,
            "strategy.long_rsi_min": long_rsi,
            "strategy.short_rsi_max": short_rsi,
            "costs.model": costs,
            "costs.slippage_pct": slippage,
            "backtest.bias": bias,
        }
    )
    symbols = sorted(market.intraday)
    bt = run_backtest(BacktestRequest(nse_dir, day, day, s, symbols), show_progress=False, market=market)
    assume(bt.result.trades)  # only examples that trade say anything about parity
    state, res = replay(tmp_path_factory.mktemp("drawn"), market, symbols, day, s, bias=bias)
    assert res.flat
    assert trade_rows(state.book.trades) == trade_rows(bt.result.trades)
    want = sorted((r.ts, r.symbol, r.side, r.reason) for r in bt.result.rejections)
    assert sorted((r.ts, r.symbol, r.side, r.reason) for r in state.rejections) == want
