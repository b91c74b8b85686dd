"""Clean bar series as NumPy columns: the form every world's data ends up in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


def sorted_unique(a: I64) -> I64:
    """``np.unique`` of an integer array, which on NumPy 2 imports ``numpy.ma`` (30 ms of every
    backtest) to ask whether the array is masked."""
    if a.shape[0] == 0:
        return a.astype(np.int64)
    s = np.sort(a)
    keep = np.empty(s.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


@dataclass(frozen=True)
class BarSeries:
    """Bars of one instrument, sorted, unique, in the trading session.

    ``ts`` is the bar's start as UTC epoch seconds; ``day`` and ``minute`` are its IST
    calendar day number and minute of day, computed from it when asked.
    For daily series ``ts`` is IST midnight of the trading day.
    """

    symbol: str
    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def day(self) -> I64:
        return (self.ts + IST_OFFSET_S) // SECONDS_PER_DAY

    @property
    def minute(self) -> I64:
        return ((self.ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60

    def day_range(self, first_day: int, last_day: int) -> tuple[int, int]:
        """``(lo, hi)``: the bars ``lo:hi`` are those whose IST day is in ``first_day..last_day``
        (found from ``ts`` alone: the day is monotonic in it)."""
        ts = self.ts
        lo = int(np.searchsorted(ts, first_day * SECONDS_PER_DAY - IST_OFFSET_S, side="left"))
        hi = int(np.searchsorted(ts, (last_day + 1) * SECONDS_PER_DAY - IST_OFFSET_S, side="left"))
        return lo, hi

    def take(self, mask_or_index: NDArray[np.bool_] | I64 | slice) -> BarSeries:
        return BarSeries(
            self.symbol,
            self.ts[mask_or_index],
            self.open[mask_or_index],
            self.high[mask_or_index],
            self.low[mask_or_index],
            self.close[mask_or_index],
            self.volume[mask_or_index],
        )

    @staticmethod
    def empty(symbol: str) -> BarSeries:
        z = np.zeros(0)
        return BarSeries(symbol, np.zeros(0, dtype=np.int64), z, z, z, z, z)


def iso_ist_many(epochs: I64) -> list[str]:
    """Vectorised :func:`tfl.timeutil.iso_ist` for long columns (equity curves)."""
    local = (epochs + IST_OFFSET_S).astype("datetime64[s]")
    return [f"{t}+05:30" for t in np.datetime_as_string(local, unit="s").tolist()]
