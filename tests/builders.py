"""Hand-built bar sequences for rule tests.

A scenario is a few quiet history sessions (doji bars at 100 that form no pattern and
warm up ATR and MVWAP), a rising daily series (daily RSI 100, so longs pass the filter)
or a falling one (RSI 0, shorts pass), and then the bars of the test session written out
by hand as (HH:MM, open, high, low, close).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tfl.backtest.signals import SymbolFrame, prepare_symbol
from tfl.backtest.simulator import SimResult, simulate
from tfl.data.bars import BarSeries
from tfl.domain import Bias
from tfl.settings import Settings
from tfl.timeutil import date_to_day, epoch_of_ist

TEST_DAY = dt.date(2024, 3, 6)
HISTORY_DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
SESSION = [f"{9 + (15 + 15 * i) // 60:02d}:{(15 + 15 * i) % 60:02d}" for i in range(25)]  # 09:15 .. 15:15

Bar = tuple[str, float, float, float, float]


def _minute(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def series(symbol: str, rows: Sequence[tuple[dt.date, str, float, float, float, float, float]]) -> BarSeries:
    ts = np.array([epoch_of_ist(d, _minute(t)) for d, t, *_ in rows], dtype=np.int64)
    cols = np.array([r[2:] for r in rows], dtype=np.float64).reshape(-1, 5)
    return BarSeries(symbol, ts, cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3], cols[:, 4])


def quiet_history(price: float = 100.0, days: Sequence[dt.date] = HISTORY_DAYS) -> list[tuple]:  # type: ignore[type-arg]
    return [(d, t, price, price + 0.5, price - 0.5, price, 1000.0) for d in days for t in SESSION]


def daily_series(symbol: str, rising: bool, last_day: dt.date = HISTORY_DAYS[-1], n: int = 30) -> BarSeries:
    days = [last_day - dt.timedelta(days=n - 1 - i) for i in range(n)]
    closes = [50.0 + i if rising else 200.0 - i for i in range(n)]
    ts = np.array([epoch_of_ist(d, 0) for d in days], dtype=np.int64)
    c = np.array(closes)
    return BarSeries(symbol, ts, c, c + 1, c - 1, c, np.full(n, 1e6))


def intraday(
    symbol: str, bars: Sequence[Bar], day: dt.date = TEST_DAY, price: float = 100.0, volume: float = 1000.0
) -> BarSeries:
    rows = quiet_history(price) + [(day, t, o, h, lo, c, volume) for t, o, h, lo, c in bars]
    return series(symbol, rows)


@dataclass(frozen=True)
class BuiltFrame(SymbolFrame):
    """A prepared symbol that remembers its daily bars, so the same scenario can be replayed."""

    daily: BarSeries | None = None


def frame(
    symbol: str,
    bars: Sequence[Bar],
    *,
    rising: bool = True,
    settings: Settings | None = None,
    daily: BarSeries | None = None,
) -> SymbolFrame:
    s = settings or Settings()
    d = daily or daily_series(symbol, rising)
    f = prepare_symbol(intraday(symbol, bars), d, s)
    return BuiltFrame(**{k.name: getattr(f, k.name) for k in dataclasses.fields(SymbolFrame)}, daily=d)


def run(
    frames: Sequence[SymbolFrame],
    bias: Bias = Bias.BOTH,
    settings: Settings | None = None,
    days: Sequence[dt.date] = (TEST_DAY,),
) -> SimResult:
    s = settings or Settings()
    by_day = {date_to_day(d): bias for d in days}
    return simulate(list(frames), by_day, date_to_day(min(days)), date_to_day(max(days)), s)


def hhmm_of(ts: int) -> str:
    from tfl.timeutil import iso_ist

    return iso_ist(ts)[11:16]
