"""Bars from ticks: 15-minute OHLCV per symbol, labelled by their start time.

Bad ticks are dropped here, before they can reach the strategy: non-finite or
non-positive prices, prices more than ``max_jump_pct`` away from the symbol's last
trade, duplicates, and ticks older than the bar being built (out of order).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from tfl.live.feed import Tick
from tfl.timeutil import BAR_SECONDS

log = logging.getLogger(__name__)


@dataclass
class Bar:
    symbol: str
    start: int  # UTC epoch seconds of the bar's start
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass
class _Building:
    bar: Bar
    last_ts: int
    last_volume: float


class BarBuilder:
    def __init__(
        self, session_open_ts: int, *, max_jump_pct: float = 20.0, day_volume: dict[str, float] | None = None
    ) -> None:
        """``day_volume``: each symbol's volume already traded today in bars completed before
        this builder starts (after a restart). Ticks carry the cumulative day volume, so
        without it the first bar after a restart would count the whole morning's volume."""
        self._open = session_open_ts
        self._jump = max_jump_pct / 100.0
        self._cur: dict[str, _Building] = {}
        self._last: dict[str, tuple[int, float, float]] = {}  # last accepted (ts, price, cum volume)
        self._day_volume: dict[str, float] = dict(day_volume or {})  # cumulative volume at the last closed bar
        self._completed: list[Bar] = []
        self.dropped: dict[str, int] = {"bad_price": 0, "duplicate": 0, "out_of_order": 0, "outside": 0}
        self._early: set[str] = set()  # symbols that traded before the open (logged once each)

    def slot_start(self, ts: int) -> int:
        return self._open + ((ts - self._open) // BAR_SECONDS) * BAR_SECONDS

    def on_tick(self, t: Tick) -> bool:
        """Add a tick; False if it was dropped. (The hot path of the live runtime: locals and
        plain comparisons instead of helper calls.)"""
        price = t.price
        volume = t.volume
        ts = t.ts
        symbol = t.symbol
        if not math.isfinite(price) or price <= 0 or not math.isfinite(volume):
            self._drop("bad_price", t, "price is not a positive number")
            return False
        last = self._last.get(symbol)
        if last is not None:
            if last[0] == ts and last[1] == price and last[2] == volume:
                self._drop("duplicate", t, "")
                return False
            if ts < last[0]:
                self._drop("out_of_order", t, "older than the last tick")
                return False
            if abs(price / last[1] - 1.0) > self._jump:
                self._drop("bad_price", t, f"jump of {100 * (price / last[1] - 1):.1f}% from {last[1]}")
                return False
        if ts < self._open:
            self._drop("outside", t, "before the session")
            return False
        start = self._open + ((ts - self._open) // BAR_SECONDS) * BAR_SECONDS
        b = self._cur.get(symbol)
        if b is not None and start < b.bar.start:
            self._drop("out_of_order", t, "belongs to a closed bar")
            return False
        if b is None or start > b.bar.start:
            base = self._day_volume.get(symbol, 0.0) if b is None else b.last_volume
            if b is not None:  # the symbol's previous bar is complete even if no boundary closed it yet
                self._day_volume[symbol] = b.last_volume
                self._completed.append(b.bar)
            b = _Building(Bar(symbol, start, price, price, price, price, volume - base), ts, volume)
            self._cur[symbol] = b
        else:
            bar = b.bar
            if price > bar.high:
                bar.high = price
            elif price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume += volume - b.last_volume
            b.last_volume = volume
            b.last_ts = ts
        self._last[symbol] = (ts, price, volume)
        return True

    def close_until(self, boundary: int) -> list[Bar]:
        """Finish every bar that started before ``boundary`` (a slot boundary was reached)."""
        done = [bar for bar in self._completed if bar.start < boundary]
        self._completed = [bar for bar in self._completed if bar.start >= boundary]
        for sym in sorted(self._cur):
            b = self._cur[sym]
            if b.bar.start < boundary:
                done.append(b.bar)
                self._day_volume[sym] = b.last_volume
                del self._cur[sym]
        return sorted(done, key=lambda bar: (bar.start, bar.symbol))

    def last_ts(self, symbol: str) -> int | None:
        """The exchange time of the symbol's last accepted tick."""
        last = self._last.get(symbol)
        return last[0] if last else None

    def last_price(self, symbol: str) -> float | None:
        last = self._last.get(symbol)
        return last[1] if last else None

    def _drop(self, kind: str, t: Tick, why: str) -> None:
        self.dropped[kind] += 1
        if kind == "outside" and t.ts < self._open:
            # The pre-open call auction trades before the open every day: normal, noted once a symbol.
            if t.symbol not in self._early:
                self._early.add(t.symbol)
                log.info("trade before the session ignored", extra={"fields": {"symbol": t.symbol, "ts": t.ts}})
            return
        if kind != "duplicate":
            log.warning(
                "tick dropped",
                extra={"fields": {"symbol": t.symbol, "ts": t.ts, "price": t.price, "kind": kind, "why": why}},
            )
