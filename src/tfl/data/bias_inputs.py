"""Feed :func:`tfl.regime.compute_bias` from a loaded data directory."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping

import numpy as np

from tfl.data.bars import I64, BarSeries
from tfl.data.market import Market
from tfl.regime import BiasRecord, DailyCloses, compute_bias, day_number, previous_session
from tfl.settings import Settings

_EPS = float(np.finfo(np.float64).eps)


def _closes(series: BarSeries | None) -> DailyCloses | None:
    if series is None or len(series) == 0:
        return None
    return DailyCloses(series.day.tolist(), series.close.tolist())


def breadth_table(universe: Mapping[str, BarSeries], calendar: I64, n: int) -> dict[int, tuple[int, int, int]]:
    """:func:`tfl.regime.breadth` for every day of ``calendar`` at once: the vectorised twin.

    Each stock's SMA comes from a running sum, whose rounding error has a known bound; a
    close nearer its SMA than that bound is decided with the exact :func:`math.fsum`, so
    every count equals the pure function's (a test checks it on the real data).
    """
    above = np.zeros(calendar.shape[0], dtype=np.int64)
    below = np.zeros(calendar.shape[0], dtype=np.int64)
    counted = np.zeros(calendar.shape[0], dtype=np.int64)
    for s in universe.values():
        c = s.close
        if c.shape[0] < n:
            continue
        csum = np.concatenate(([0.0], np.cumsum(c)))
        sma = (csum[n:] - csum[:-n]) / n
        close = c[n - 1 :]
        # |error of a prefix sum| <= len * eps * sum|c|: twice that for a difference of two.
        bound = 4.0 * c.shape[0] * _EPS * float(np.abs(c).sum()) / n + 4.0 * _EPS * np.abs(sma)
        diff = close - sma
        sign = np.sign(diff).astype(np.int64)
        for i in np.flatnonzero(np.abs(diff) <= bound).tolist():
            exact = math.fsum(c[i : i + n].tolist()) / n
            x = float(close[i])
            sign[i] = int(x > exact) - int(x < exact)
        pos = np.searchsorted(calendar, s.day[n - 1 :])
        ok = (pos < calendar.shape[0]) & (calendar[np.minimum(pos, calendar.shape[0] - 1)] == s.day[n - 1 :])
        pos, sign = pos[ok], sign[ok]
        np.add.at(counted, pos, 1)
        np.add.at(above, pos[sign > 0], 1)
        np.add.at(below, pos[sign < 0], 1)
    return {
        int(d): (int(a), int(b), int(k))
        for d, a, b, k in zip(calendar.tolist(), above.tolist(), below.tolist(), counted.tolist(), strict=True)
    }


def bias_records(market: Market, sessions: Iterable[dt.date], settings: Settings) -> list[BiasRecord]:
    """The bias record of each session, from the market's daily bars and calendar."""
    params = settings.bias
    daily = {sym: market.daily[sym] for sym in market.universe if sym in market.daily and len(market.daily[sym])}
    universe = {sym: c for sym, c in ((sym, _closes(s)) for sym, s in daily.items()) if c is not None}
    bench = _closes(market.daily.get(params.benchmark_symbol))
    vix = _closes(market.daily.get(params.vix_symbol))
    cal = market.calendar_days.tolist()
    days = list(sessions)
    table = breadth_table(daily, market.calendar_days, params.breadth_sma) if len(days) > 20 else None
    out = []
    for s in days:
        prev = previous_session(cal, s)
        counts = table.get(day_number(prev)) if table is not None and prev is not None else None
        out.append(compute_bias(s, prev, universe, bench, vix, params, counts=counts))
    return out
