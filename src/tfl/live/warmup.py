"""Warm the live per-symbol state from history before the session starts.

Streaming years of bars through Python would take minutes for a universe, so the
recursive indicators are computed with their vectorised twins (bit-identical) and the
streaming objects resume from the last values; only the last bars go through the
pattern tracker, which looks back at most ``max_run + 1`` bars.
"""

from __future__ import annotations

import numpy as np

from tfl.data.bars import BarSeries
from tfl.indicators import vectorised as vec
from tfl.settings import Settings
from tfl.strategy.symbol_state import SymbolState

TRACKER_BARS = 64
CHUNK = 32  # symbols per indicator panel: bounds peak memory


def warm_states(
    intraday: dict[str, BarSeries], daily: dict[str, BarSeries], settings: Settings
) -> dict[str, SymbolState]:
    """States for every symbol in ``intraday``, as if all its bars (and all daily rows in
    ``daily``) had been streamed through :class:`SymbolState`. Callers pass only history."""
    ind = settings.indicators
    out: dict[str, SymbolState] = {}
    names = sorted(intraday)
    for i in range(0, len(names), CHUNK):
        chunk = names[i : i + CHUNK]
        atrs = vec.atr_many([(intraday[s].high, intraday[s].low, intraday[s].close) for s in chunk], ind.atr_period)
        with_daily = [s for s in chunk if s in daily and len(daily[s]) > 0]
        diffs = [np.diff(daily[s].close) for s in with_daily]
        gains = vec.wilder_many([np.where(d > 0, d, 0.0) for d in diffs], ind.rsi_period)
        losses = vec.wilder_many([np.where(d < 0, -d, 0.0) for d in diffs], ind.rsi_period)
        rsi_state = {s: (g, lo) for s, g, lo in zip(with_daily, gains, losses, strict=True)}
        for sym, atr in zip(chunk, atrs, strict=True):
            out[sym] = _one(sym, intraday[sym], daily.get(sym), atr, rsi_state.get(sym), settings)
    return out


def _one(
    sym: str,
    bars: BarSeries,
    daily: BarSeries | None,
    atr: np.ndarray,
    rsi_avgs: tuple[np.ndarray, np.ndarray] | None,
    settings: Settings,
) -> SymbolState:
    ind = settings.indicators
    state = SymbolState(sym, settings, is_index=sym in settings.backtest.index_symbols)
    n = len(bars)
    if n:
        if n > ind.atr_period and not np.isnan(atr[-1]):
            state.resume_atr(float(atr[-1]), float(bars.close[-1]))
        else:
            for h, lo, c in zip(bars.high.tolist(), bars.low.tolist(), bars.close.tolist(), strict=True):
                state.stream_atr(h, lo, c)
        if state.is_index:
            ema = vec.ema(bars.close, ind.mvwap_period)
            if n > ind.mvwap_period:
                state.resume_ema(float(ema[-1]))
            else:
                for c in bars.close.tolist():
                    state.stream_line(c, 0.0)
        else:
            k = ind.mvwap_period
            state.resume_mvwap(bars.close[-k:].tolist(), bars.volume[-k:].tolist())
        tail = slice(max(0, n - TRACKER_BARS), n)
        for o, h, lo, c in zip(
            bars.open[tail].tolist(),
            bars.high[tail].tolist(),
            bars.low[tail].tolist(),
            bars.close[tail].tolist(),
            strict=True,
        ):
            state.stream_pattern(o, h, lo, c)
        state.last_close = float(bars.close[-1])
    if daily is not None and len(daily):
        closes = daily.close
        if rsi_avgs is not None and len(closes) > ind.rsi_period + 1 and not np.isnan(rsi_avgs[0][-1]):
            state.resume_rsi(float(rsi_avgs[0][-1]), float(rsi_avgs[1][-1]), float(closes[-1]))
        else:
            for c in closes.tolist():
                state.on_daily_close(c)
    return state
