"""Market data feeds: the tick type, the feed protocol, and the replay feed.

The replay feed turns historical 15-minute bars into ticks along the fill model's bar
path (:func:`tfl.core.fills.bar_path`): open, the adverse extreme, the favourable one, the
adverse one again, close. Which extreme is adverse is asked of the trader when a symbol's
bar has shown its open (``side_of``: the side of its position or working entry order,
:func:`tfl.core.state.path_side`), exactly the rule the backtester uses for that bar; so a
replayed day reproduces the backtest's trades, with both sides (bias BOTH) too. The bar's
volume is spread over its five ticks as a cumulative day volume. Symbols' ticks are
staggered inside each bar so the feed as a whole ticks steadily.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from tfl.core.fills import bar_path
from tfl.data.bars import BarSeries
from tfl.domain import Side
from tfl.timeutil import IST_OFFSET_S, SECONDS_PER_DAY

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

    @property
    def exhausted(self) -> bool:
        """True when a finite feed (a replay) has nothing more to give; live feeds never are."""
        ...

    def refresh(self) -> None:
        """Reconnect with fresh credentials (a new access token); a replay has none."""
        ...

    def close(self) -> None: ...


class PlannedTick(NamedTuple):
    """One tick of a replayed bar: its price is fixed only when the feed gives it out.
    (A named tuple: a replayed session has hundreds of thousands of them.)"""

    ts: int
    order: int
    symbol: str
    start: int  # the bar's start
    bar: tuple[float, float, float, float]  # o, h, l, c
    j: int  # which of the bar's five ticks
    cum_volume: float


def session_ticks(bars: dict[str, BarSeries], day: int, close_ts: int) -> list[PlannedTick | SessionEnd]:
    """The planned ticks of one session (IST day number ``day``) from each symbol's bars, in feed order."""
    rows: list[PlannedTick] = []
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
            ohlc = (float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]))
            vol = float(s.volume[i])
            part = float(int(vol) // 5) if vol == int(vol) else vol / 5.0
            for j in range(5):
                cum += part if j < 4 else vol - 4 * part
                rows.append(PlannedTick(t0 + j * _STEP + offset, k, sym, t0, ohlc, j, cum))
    rows.sort(key=lambda r: (r.ts, r.order))
    out: list[PlannedTick | SessionEnd] = []
    out.extend(rows)
    out.append(SessionEnd(close_ts))
    return out


def long_side(symbol: str) -> Side:
    """A replay with no trader to ask (a fake exchange): every bar on the long path."""
    return Side.LONG


class ListFeed:
    """Feed events given in advance, one at a time (a scripted market, a fake exchange)."""

    def __init__(self, events: Sequence[FeedEvent]) -> None:
        self._events = list(events)
        self._i = 0

    def next(self, timeout: float) -> FeedEvent | None:
        if self._i >= len(self._events):
            return None
        self._i += 1
        return self._events[self._i - 1]

    @property
    def exhausted(self) -> bool:
        return self._i >= len(self._events)

    def refresh(self) -> None:
        return None

    def close(self) -> None:
        self._i = len(self._events)


class ReplayFeed:
    """Ticks of a session from history, as fast as possible or at N times real time.

    ``side_of(symbol)`` is asked at a bar's second tick, after the open tick reached the
    trader and its boundary was processed: by then the orders for that bar are resting.
    """

    def __init__(
        self,
        events: Sequence[PlannedTick | SessionEnd],
        *,
        speed: float | None = None,
        start_ts: int = 0,
        side_of: Callable[[str], Side] = long_side,
    ) -> None:
        self._events = [e for e in events if e.ts >= start_ts]
        self._i = 0
        self._seq_base: dict[int, int] = {}
        self._speed = speed
        self._t0_wall: float | None = None
        self._t0_mkt = self._events[0].ts if self._events else 0
        self._side_of = side_of
        self._paths: dict[tuple[str, int], tuple[float, ...]] = {}
        self._last_ts, self._within = -1, 0

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
        if isinstance(ev, SessionEnd):
            return ev
        ts = ev.ts
        self._within = self._within + 1 if ts == self._last_ts else 0
        self._last_ts = ts
        j = ev.j
        if j == 0:
            price = ev.bar[0]
        else:
            key = (ev.symbol, ev.start)
            path = self._paths.get(key)
            if path is None:  # the bar's second tick: its orders are resting now
                o, h, lo, c = ev.bar
                path = self._paths[key] = bar_path(o, h, lo, c, self._side_of(ev.symbol))
            if j == 4:
                del self._paths[key]
            price = path[j]
        return Tick(ev.symbol, ts, price, ev.cum_volume, ts * 1000 + self._within)

    @property
    def exhausted(self) -> bool:
        return self._i >= len(self._events)

    def refresh(self) -> None:
        return None

    def __iter__(self) -> Iterator[FeedEvent]:
        while self._i < len(self._events):
            ev = self.next(3600.0)
            if ev is not None:
                yield ev

    def close(self) -> None:
        self._i = len(self._events)
