"""Feed :func:`tfl.regime.compute_bias` from a loaded data directory."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from tfl.data.bars import BarSeries
from tfl.data.market import Market
from tfl.regime import BiasRecord, DailyCloses, compute_bias, previous_session
from tfl.settings import Settings


def _closes(series: BarSeries | None) -> DailyCloses | None:
    if series is None or len(series) == 0:
        return None
    return DailyCloses(series.day.tolist(), series.close.tolist())


def bias_records(market: Market, sessions: Iterable[dt.date], settings: Settings) -> list[BiasRecord]:
    """The bias record of each session, from the market's daily bars and calendar."""
    params = settings.bias
    universe: dict[str, DailyCloses] = {}
    for sym in market.universe:
        c = _closes(market.daily.get(sym))
        if c is not None:
            universe[sym] = c
    bench = _closes(market.daily.get(params.benchmark_symbol))
    vix = _closes(market.daily.get(params.vix_symbol))
    cal = market.calendar_days.tolist()
    return [compute_bias(s, previous_session(cal, s), universe, bench, vix, params) for s in sessions]
