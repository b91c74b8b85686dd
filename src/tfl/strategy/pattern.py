"""Pullback patterns: a maximal run of 1..9 counter bars, then one bar the other way.

Long: N red bars (close < open) then a green setup bar; short: the mirror. A doji
(close == open) breaks a run and is neither colour. The pattern spans the run and the
setup bar: pattern_high/low are its highest high and lowest low. A run that reaches the
first bar of the available history has an unknown length and gives no setup.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tfl.domain import Side

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Pattern:
    side: Side
    run: int
    pattern_high: float
    pattern_low: float


class PatternTracker:
    """Streaming detector: feed closed bars, get the pattern completed by that bar (or None)."""

    __slots__ = ("_bars", "_bounded", "_colour", "_max_run", "_min_run", "_run", "_seen")

    def __init__(self, min_run: int = 1, max_run: int = 9) -> None:
        self._min_run = min_run
        self._max_run = max_run
        self._bars: deque[tuple[float, float]] = deque(maxlen=max_run + 1)
        self._run = 0  # length of the same-colour run ending at the last bar (0 after a doji)
        self._colour = 0  # +1 green, -1 red, 0 doji or nothing yet
        self._bounded = False  # some bar precedes the current run
        self._seen = 0

    def update(self, o: float, h: float, lo: float, c: float) -> Pattern | None:
        colour = 1 if c > o else (-1 if c < o else 0)
        self._bars.append((h, lo))
        found: Pattern | None = None
        run = self._run
        if colour != 0 and self._colour == -colour and self._bounded and self._min_run <= run <= self._max_run:
            window = list(self._bars)[-(run + 1) :]
            side = Side.LONG if colour == 1 else Side.SHORT
            found = Pattern(side, run, max(b[0] for b in window), min(b[1] for b in window))
        if colour != 0 and colour == self._colour:
            self._run = run + 1
        else:
            self._run = 1 if colour != 0 else 0
            self._bounded = self._seen > 0
        self._colour = colour
        self._seen += 1
        return found


def pattern_bars(o: F64, c: F64, min_run: int = 1, max_run: int = 9) -> tuple[I64, NDArray[np.int8], I64]:
    """Every completed pattern's setup bar, side and first bar (of its counter run), by colour
    alone; the levels come from :func:`pattern_extremes`, so a caller that filters the setups
    first computes them only for the survivors.

    Both sides in one pass: a setup bar has a colour and the bar before it the opposite one;
    that bar's run of its colour must be bounded and ``min_run``..``max_run`` long."""
    n = c.shape[0]
    colour = np.sign(c - o).astype(np.int8)
    if n < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.int64)
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(colour[1:], colour[:-1], out=change[1:])
    run_start = np.maximum.accumulate(np.where(change, np.arange(n, dtype=np.int64), 0))
    setup = colour[1:]
    idx = np.flatnonzero((setup != 0) & (setup == -colour[:-1])) + 1
    first = run_start[idx - 1]  # first bar of the counter run
    nrun = idx - first
    ok = (nrun >= min_run) & (nrun <= max_run) & (first > 0)  # first > 0: some bar precedes the run
    idx = idx[ok].astype(np.int64)
    return idx, colour[idx], first[ok]


def pattern_extremes(h: F64, lo: F64, first: I64, last: I64) -> tuple[F64, F64]:
    """Highest high and lowest low of each pattern, bars ``first[i]..last[i]``: one gather per
    bar back from the setup bar, clamped at the pattern's first bar (repeating a bar does not
    change a max or a min, and they do no arithmetic, so the levels are exact)."""
    ph = h[last]
    pl = lo[last]
    longest = int((last - first).max()) if last.shape[0] else 0
    for k in range(1, longest + 1):
        j = np.maximum(last - k, first)
        np.maximum(ph, h[j], out=ph)
        np.minimum(pl, lo[j], out=pl)
    return ph, pl


def find_patterns(
    o: F64, h: F64, lo: F64, c: F64, min_run: int = 1, max_run: int = 9
) -> tuple[I64, NDArray[np.int8], F64, F64]:
    """All completed patterns in a series: (setup bar index, side, pattern_high, pattern_low)."""
    idx, side, first = pattern_bars(o, c, min_run, max_run)
    ph, pl = pattern_extremes(h, lo, first, idx)
    return idx, side, ph, pl
