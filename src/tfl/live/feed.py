"""Market data feeds: the tick type, the feed protocol, and the replay feed.

The replay feed turns historical 15-minute bars into ticks along a documented path:
open, then the adverse extreme for the day's side, the favourable one, the adverse one
again, then the close (longs: O, L, H, L, C; shorts: O, H, L, H, C). That is the order
the backtester assumes when a bar is ambiguous (stop before target; a stop touched on the
entry bar counts), so a replayed day must reproduce the backtest's trades exactly. The
bar's volume is spread over its five ticks as a cumulative day volume. Symbols' ticks are
staggered inside each bar so the feed as a whole ticks steadily.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from tfl.data.bars import BarSeries
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY

BAR_SECONDS = 900
_STEP = 180  # seconds between the five ticks of a bar


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    ts: int  # exchange time, UTC epoch seconds
    price: float
    volume: float  # cumulative volume traded today
    seq: int  # monotonic feed sequence (survives restarts of a replay)


@dataclass(frozen=True, slots=True)
class SessionEnd:
    ts: int


@dataclass(frozen=True, slots=True)
class Clock:
    """Market time passing without a trade: live feeds send one every second or so, so a
    15-minute boundary is processed on time even in a quiet market."""

    ts: int


FeedEvent = Tick | SessionEnd | Clock


class Feed(Protocol):
    def next(self, timeout: float) -> FeedEvent | None:
        """The next event, or None if nothing arrived within ``timeout`` seconds."""
        ...

    def close(self) -> None: ...


def bar_path(o: float, h: float, lo: float, c: float, short_side: bool) -> tuple[float, float, float, float, float]:
    if short_side:
        return (o, h, lo, h, c)
    return (o, lo, h, lo, c)


def session_ticks(bars: dict[str, BarSeries], day: int, close_ts: int, *, short_side: bool = False) -> list[FeedEvent]:
    """All ticks of one session (IST day number ``day``) from each symbol's bars, in feed order."""
    rows: list[tuple[int, int, str, float, float]] = []  # (ts, symbol order, symbol, price, cum volume)
    names = sorted(bars)
    n = max(len(names), 1)
    for k, sym in enumerate(names):
        s = bars[sym]
        days = (s.ts + IST_OFFSET_S) // SECONDS_PER_DAY
        lo_i, hi_i = int(days.searchsorted(day, "left")), int(days.searchsorted(day, "right"))
        cum = 0.0
        offset = (k * _STEP) // n
        for i in range(lo_i, hi_i):
            t0 = int(s.ts[i])
            path = bar_path(float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]), short_side)
            vol = float(s.volume[i])
            part = float(int(vol) // 5) if vol == int(vol) else vol / 5.0
            for j, price in enumerate(path):
                cum += part if j < 4 else vol - 4 * part
                rows.append((t0 + j * _STEP + offset, k, sym, price, cum))
    rows.sort(key=lambda r: (r[0], r[1]))
    out: list[FeedEvent] = []
    last_ts, within = -1, 0
    for ts, _, sym, price, cum in rows:
        within = within + 1 if ts == last_ts else 0
        last_ts = ts
        out.append(Tick(sym, ts, price, cum, ts * 1000 + within))
    out.append(SessionEnd(close_ts))
    return out


class ReplayFeed:
    """Ticks of a session from history, as fast as possible or at N times real time."""

    def __init__(self, events: Sequence[FeedEvent], *, speed: float | None = None, start_ts: int = 0) -> None:
        self._events = [e for e in events if e.ts >= start_ts]
        self._i = 0
        self._speed = speed
        self._t0_wall: float | None = None
        self._t0_mkt = self._events[0].ts if self._events else 0

    def next(self, timeout: float) -> FeedEvent | None:
        if self._i >= len(self._events):
            return None
        ev = self._events[self._i]
        if self._speed:
            now = time.monotonic()
            if self._t0_wall is None:
                self._t0_wall = now
            due = self._t0_wall + (ev.ts - self._t0_mkt) / self._speed
            if due > now:
                wait = min(due - now, timeout)
                time.sleep(wait)
                if due > now + wait:
                    return None
        self._i += 1
        return ev

    @property
    def exhausted(self) -> bool:
        return self._i >= len(self._events)

    def __iter__(self) -> Iterator[FeedEvent]:
        while self._i < len(self._events):
            ev = self.next(3600.0)
            if ev is not None:
                yield ev

    def close(self) -> None:
        self._i = len(self._events)
