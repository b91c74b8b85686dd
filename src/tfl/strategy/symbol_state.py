"""Streaming per-symbol state: indicators, pattern tracker and setup filters, O(1) per bar.

This is what the live runtime keeps for each instrument. Feed it every closed 15-minute
bar in order, and each session's daily close once that session is over; it answers with
the setup (if any) that is tradeable during the next bar. The backtester's vectorised
twin (:mod:`tfl.backtest.signals`) must find exactly the same setups; a test checks it.
"""

from __future__ import annotations

import math

from tfl.indicators.streaming import ATR, EMA, MVWAP, RSI
from tfl.settings import Settings
from tfl.strategy.pattern import PatternTracker
from tfl.strategy.rules import Setup, setup_passes


class SymbolState:
    __slots__ = ("_atr", "_line", "_pattern", "_rsi", "_settings", "is_index", "last_close", "rsi_prev", "symbol")

    def __init__(self, symbol: str, settings: Settings, *, is_index: bool = False) -> None:
        ind, st = settings.indicators, settings.strategy
        self.symbol = symbol
        self.is_index = is_index
        self._settings = settings
        self._atr = ATR(ind.atr_period)
        self._line: EMA | MVWAP = EMA(ind.mvwap_period) if is_index else MVWAP(ind.mvwap_period)
        self._pattern = PatternTracker(st.min_run, st.max_run)
        self._rsi = RSI(ind.rsi_period)
        self.rsi_prev = math.nan  # daily RSI of the last completed session
        self.last_close = math.nan

    @property
    def atr(self) -> float:
        return self._atr.value

    @property
    def trend_line(self) -> float:
        return self._line.value

    # Warm-up helpers: continue from values computed by the vectorised twins over history.
    def resume_atr(self, value: float, prev_close: float) -> None:
        self._atr.resume(value, prev_close)

    def resume_rsi(self, avg_gain: float, avg_loss: float, prev_close: float) -> None:
        self._rsi.resume(avg_gain, avg_loss, prev_close)
        self.rsi_prev = self._rsi.value

    def resume_ema(self, value: float) -> None:
        assert isinstance(self._line, EMA)
        self._line.resume(value)

    def resume_mvwap(self, closes: list[float], volumes: list[float]) -> None:
        assert isinstance(self._line, MVWAP)
        self._line.resume(closes, volumes)

    def stream_atr(self, h: float, lo: float, c: float) -> None:
        self._atr.update(h, lo, c)

    def stream_line(self, c: float, v: float) -> None:
        self._line.update(c) if isinstance(self._line, EMA) else self._line.update(c, v)

    def stream_pattern(self, o: float, h: float, lo: float, c: float) -> None:
        self._pattern.update(o, h, lo, c)

    def on_daily_close(self, close: float) -> None:
        """A session is over: its daily close now counts for the next session's bars."""
        self.rsi_prev = self._rsi.update(close)

    def on_bar(self, ts: int, o: float, h: float, lo: float, c: float, v: float) -> Setup | None:
        """Update with a closed bar starting at ``ts``; return a setup valid for the next bar.

        The caller still checks that the next bar is in the same session and before the
        square-off time (the entry window).
        """
        self._atr.update(h, lo, c)
        line = self._line.update(c) if isinstance(self._line, EMA) else self._line.update(c, v)
        self.last_close = c
        pat = self._pattern.update(o, h, lo, c)
        if pat is None or not setup_passes(pat.side, self.rsi_prev, c, line, self._settings.strategy):
            return None
        return Setup(self.symbol, pat.side, ts, -1, pat.pattern_high, pat.pattern_low, self.rsi_prev)
