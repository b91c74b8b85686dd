"""Vectorised per-symbol preparation: indicators and every valid setup with its entry bar.

This is the fast twin of :class:`tfl.strategy.symbol_state.SymbolState`; tests check
that both find the same setups with the same levels on real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tfl.data.bars import F64, I64, BarSeries
from tfl.indicators import vectorised as vec
from tfl.settings import Settings, parse_hhmm
from tfl.strategy.pattern import find_patterns
from tfl.timeutil import BAR_SECONDS


@dataclass(frozen=True)
class SymbolFrame:
    """One traded symbol: its bars, ATR, and its valid setups (indices into the bars)."""

    symbol: str
    bars: BarSeries
    day: I64
    minute: I64
    atr: F64
    setup_idx: I64  # setup bar T-1
    side: NDArray[np.int8]
    pattern_high: F64
    pattern_low: F64
    rsi: F64  # previous-session daily RSI (the priority key)


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
    bars: BarSeries, daily: BarSeries, settings: Settings, *, leak: bool = False, daily_rsi: F64 | None = None
) -> tuple[I64, NDArray[np.int8], F64, F64, F64]:
    """Every bar that completes a pattern passing the RSI and trend filters:
    (setup bar index, side, pattern_high, pattern_low, previous-session RSI)."""
    st = settings.strategy
    if daily_rsi is None:
        daily_rsi = vec.rsi(daily.close, settings.indicators.rsi_period)
    rsi_bar = previous_session_values(bars.day, daily.day, daily_rsi, leak=leak)
    line = trend_line(bars, settings, bars.symbol in settings.backtest.index_symbols)
    idx, side, ph, pl = find_patterns(bars.open, bars.high, bars.low, bars.close, st.min_run, st.max_run)
    r = rsi_bar[idx]
    c = bars.close[idx]
    tl = line[idx]
    with np.errstate(invalid="ignore"):  # as rules.setup_passes: a switched-off filter is not applied
        up = (r > st.long_rsi_min) if st.use_rsi_filter else ~np.isnan(r)
        down = (r < st.short_rsi_max) if st.use_rsi_filter else ~np.isnan(r)
        if st.use_trend_filter:
            up, down = up & (c > tl), down & (c < tl)
        ok = ((side == 1) & up) | ((side == -1) & down)
    return idx[ok], side[ok], ph[ok], pl[ok], r[ok]


def prepare_symbols(
    pairs: Sequence[tuple[BarSeries, BarSeries | None]], settings: Settings, *, leak: bool = False
) -> list[SymbolFrame]:
    """Prepare many symbols at once: the recursive indicators run as one panel (fast)."""
    n_atr, n_rsi = settings.indicators.atr_period, settings.indicators.rsi_period
    atrs = vec.atr_many([(b.high, b.low, b.close) for b, _ in pairs], n_atr)
    with_daily = [i for i, (_, d) in enumerate(pairs) if d is not None and len(d)]
    rsis = dict(zip(with_daily, vec.rsi_many([pairs[i][1].close for i in with_daily], n_rsi), strict=True))  # type: ignore[union-attr]
    return [
        prepare_symbol(b, d, settings, leak=leak, atr=atrs[i], daily_rsi=rsis.get(i)) for i, (b, d) in enumerate(pairs)
    ]


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
    day = bars.day
    minute = bars.minute
    if atr is None:
        atr = vec.atr(bars.high, bars.low, bars.close, settings.indicators.atr_period)
    if daily is None or len(daily) == 0 or len(bars) < 2:
        z = np.zeros(0)
        return SymbolFrame(bars.symbol, bars, day, minute, atr, np.zeros(0, np.int64), np.zeros(0, np.int8), z, z, z)
    idx, side, ph, pl, r = valid_setups(bars, daily, settings, leak=leak, daily_rsi=daily_rsi)
    entry = idx + 1
    ok = entry < len(bars)
    entry_c = np.minimum(entry, len(bars) - 1)
    ok &= bars.ts[entry_c] - bars.ts[idx] == BAR_SECONDS  # the very next bar: a missing bar expires it
    ok &= minute[entry_c] < parse_hhmm(settings.strategy.squareoff_time)
    return SymbolFrame(bars.symbol, bars, day, minute, atr, idx[ok], side[ok], ph[ok], pl[ok], r[ok])
