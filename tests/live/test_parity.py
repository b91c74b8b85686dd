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
