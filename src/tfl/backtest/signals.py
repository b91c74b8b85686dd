"""Vectorised per-symbol preparation: indicators and every valid setup with its entry bar.

This is the fast twin of :class:`tfl.strategy.symbol_state.SymbolState`; tests check
that both find the same setups with the same levels on real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from tfl.data.bars import F64, I64, BarSeries
from tfl.indicators import vectorised as vec
from tfl.settings import Settings, parse_hhmm
from tfl.strategy.pattern import pattern_bars, pattern_extremes
from tfl.timeutil import BAR_SECONDS, IST_OFFSET_S, SECONDS_PER_DAY


@dataclass(frozen=True)
class SymbolFrame:
    """One traded symbol: its bars, ATR, and its valid setups (indices into the bars)."""

    symbol: str
    bars: BarSeries
    atr: F64
    setup_idx: I64  # setup bar T-1
    side: NDArray[np.int8]
    pattern_high: F64
    pattern_low: F64
    rsi: F64  # previous-session daily RSI (the priority key)

    @property
    def day(self) -> I64:
        """IST day number of each bar (computed when asked: not kept for every bar)."""
        return self.bars.day

    @property
    def minute(self) -> I64:
        return self.bars.minute


def previous_session_values(bar_days: I64, daily_days: I64, values: F64, *, leak: bool = False) -> F64:
    """For each intraday bar, the daily value of the last session strictly before its day.

    ``leak=True`` reproduces the classic look-ahead bug (same-day daily values), used only
    by ``tfl audit lookahead --compare-leak`` to show what that bug does to results.
    """
    pos = np.searchsorted(daily_days, bar_days, side="right" if leak else "left") - 1
    out = np.full(bar_days.shape[0], np.nan)
    ok = pos >= 0
    out[ok] = values[pos[ok]]
    return out


def trend_line(bars: BarSeries, settings: Settings, is_index: bool) -> F64:
    """MVWAP(50), or EMA(50) of close for instruments without volume (indices)."""
    n = settings.indicators.mvwap_period
    if is_index:
        return vec.ema(bars.close, n)
    return vec.mvwap(bars.close, bars.volume, n)


def valid_setups(
    bars: BarSeries,
    daily: BarSeries,
    settings: Settings,
    *,
    leak: bool = False,
    daily_rsi: F64 | None = None,
    trend: F64 | None = None,
) -> tuple[I64, NDArray[np.int8], F64, F64, F64]:
    """Every bar that completes a pattern passing the RSI and trend filters:
    (setup bar index, side, pattern_high, pattern_low, previous-session RSI).
    ``daily_rsi`` and ``trend`` may come precomputed (:func:`compute_indicators`)."""
    st = settings.strategy
    if daily_rsi is None:
        daily_rsi = vec.rsi(daily.close, settings.indicators.rsi_period)
    line = trend_line(bars, settings, bars.symbol in settings.backtest.index_symbols) if trend is None else trend
    idx, side, first = pattern_bars(bars.open, bars.close, st.min_run, st.max_run)
    r = previous_session_values((bars.ts[idx] + IST_OFFSET_S) // SECONDS_PER_DAY, daily.day, daily_rsi, leak=leak)
    c = bars.close[idx]
    tl = line[idx]
    with np.errstate(invalid="ignore"):  # as rules.setup_passes: a switched-off filter is not applied
        up = (r > st.long_rsi_min) if st.use_rsi_filter else ~np.isnan(r)
        down = (r < st.short_rsi_max) if st.use_rsi_filter else ~np.isnan(r)
        if st.use_trend_filter:
            up, down = up & (c > tl), down & (c < tl)
        ok = ((side == 1) & up) | ((side == -1) & down)
    idx, first = idx[ok], first[ok]
    ph, pl = pattern_extremes(bars.high, bars.low, first, idx)  # only for the setups that passed
    return idx, side[ok], ph, pl, r[ok]


# --------------------------------------------------------------------------- indicators, then setups


@dataclass(frozen=True)
class SymbolIndicators:
    """One symbol's bars and every indicator its setups need. They depend only on the
    settings in :func:`indicator_key`, so trials that differ in other settings share them."""

    symbol: str
    bars: BarSeries
    daily: BarSeries | None
    atr: F64  # ATR of the 15-minute bars (the trail)
    daily_rsi: F64 | None  # RSI of the daily closes, by daily row; None without daily bars
    trend: F64  # MVWAP of the 15-minute bars, or their EMA for an index (no volume)


def indicator_key(settings: Settings) -> tuple[object, ...]:
    """The settings :func:`compute_indicators` depends on: equal keys, equal indicators."""
    ind = settings.indicators
    return (
        ("indicators.atr_period", ind.atr_period),
        ("indicators.rsi_period", ind.rsi_period),
        ("indicators.mvwap_period", ind.mvwap_period),
        ("backtest.index_symbols", tuple(settings.backtest.index_symbols)),
    )


def compute_indicators(
    pairs: Sequence[tuple[BarSeries, BarSeries | None]], settings: Settings
) -> list[SymbolIndicators]:
    """Indicators of many symbols at once: the recursive ones run as one panel (fast)."""
    ind = settings.indicators
    atrs = vec.atr_many([(b.high, b.low, b.close) for b, _ in pairs], ind.atr_period)
    dailies = [d if d is not None and len(d) else None for _, d in pairs]
    with_daily = [i for i, d in enumerate(dailies) if d is not None]
    rsis: dict[int, F64] = dict(
        zip(with_daily, vec.rsi_many([dailies[i].close for i in with_daily], ind.rsi_period), strict=True)  # type: ignore[union-attr]
    )
    index = [i for i, (b, _) in enumerate(pairs) if b.symbol in settings.backtest.index_symbols]
    trends: dict[int, F64] = dict(
        zip(index, vec.ema_many([pairs[i][0].close for i in index], ind.mvwap_period), strict=True)
    )
    out = []
    for i, (b, d) in enumerate(pairs):
        trend = trends.get(i)
        if trend is None:
            trend = vec.mvwap(b.close, b.volume, ind.mvwap_period)
        out.append(SymbolIndicators(b.symbol, b, d, atrs[i], rsis.get(i), trend))
    return out


def frames_from(indicators: Sequence[SymbolIndicators], settings: Settings, *, leak: bool = False) -> list[SymbolFrame]:
    """The setups of each symbol from its indicators: patterns, filters and entry-bar checks
    (these depend on the ``strategy`` settings)."""
    return [_frame(ind, settings, leak) for ind in indicators]


def prepare_symbols(
    pairs: Sequence[tuple[BarSeries, BarSeries | None]], settings: Settings, *, leak: bool = False
) -> list[SymbolFrame]:
    """Prepare many symbols at once: indicators, then setups."""
    return frames_from(compute_indicators(pairs, settings), settings, leak=leak)


def prepare_symbol(
    bars: BarSeries,
    daily: BarSeries | None,
    settings: Settings,
    *,
    leak: bool = False,
    atr: F64 | None = None,
    daily_rsi: F64 | None = None,
) -> SymbolFrame:
    """Indicators and the setups whose entry bar is in the same session, before square-off."""
    ind = compute_indicators([(bars, daily)], settings)[0]
    if atr is not None or daily_rsi is not None:
        ind = replace(
            ind,
            atr=ind.atr if atr is None else atr,
            daily_rsi=ind.daily_rsi if daily_rsi is None else daily_rsi,
        )
    return _frame(ind, settings, leak)


def _frame(ind: SymbolIndicators, settings: Settings, leak: bool) -> SymbolFrame:
    """The setups whose entry bar is the very next bar, in the same session, before square-off."""
    bars, daily = ind.bars, ind.daily
    if daily is None or len(daily) == 0 or len(bars) < 2:
        z = np.zeros(0)
        return SymbolFrame(bars.symbol, bars, ind.atr, np.zeros(0, np.int64), np.zeros(0, np.int8), z, z, z)
    idx, side, ph, pl, r = valid_setups(bars, daily, settings, leak=leak, daily_rsi=ind.daily_rsi, trend=ind.trend)
    entry = idx + 1
    ok = entry < len(bars)
    entry_ts = bars.ts[np.minimum(entry, len(bars) - 1)]
    ok &= entry_ts - bars.ts[idx] == BAR_SECONDS  # the very next bar: a missing bar expires it
    entry_minute = ((entry_ts + IST_OFFSET_S) % SECONDS_PER_DAY) // 60
    ok &= entry_minute < parse_hhmm(settings.strategy.squareoff_time)
    return SymbolFrame(bars.symbol, bars, ind.atr, idx[ok], side[ok], ph[ok], pl[ok], r[ok])
