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


def run_lengths(colour: NDArray[np.int8], target: int) -> tuple[I64, NDArray[np.bool_]]:
    """Length of the run of ``target``-coloured bars ending at each index, and whether
    the run is bounded (some bar precedes it)."""
    n = colour.shape[0]
    idx = np.arange(n, dtype=np.int64)
    is_t = colour == target
    last_other = np.maximum.accumulate(np.where(is_t, -1, idx))
    run = np.where(is_t, idx - last_other, 0)
    bounded = last_other >= 0
    return run, bounded


def find_patterns(
    o: F64, h: F64, lo: F64, c: F64, min_run: int = 1, max_run: int = 9
) -> tuple[I64, NDArray[np.int8], F64, F64]:
    """All completed patterns in a series: (setup bar index, side, pattern_high, pattern_low)."""
    colour = np.sign(c - o).astype(np.int8)
    idx_out: list[I64] = []
    side_out: list[NDArray[np.int8]] = []
    hi_out: list[F64] = []
    lo_out: list[F64] = []
    for side in (1, -1):
        run, bounded = run_lengths(colour, -side)
        cand = np.flatnonzero(colour[1:] == side) + 1
        prev = cand - 1
        nrun = run[prev]
        ok = (nrun >= min_run) & (nrun <= max_run) & bounded[prev]
        cand, nrun = cand[ok], nrun[ok]
        ph = h[cand].copy()
        pl = lo[cand].copy()
        for k in range(1, max_run + 1):
            use = nrun >= k
            if not use.any():
                break
            j = cand[use] - k
            ph[use] = np.maximum(ph[use], h[j])
            pl[use] = np.minimum(pl[use], lo[j])
        idx_out.append(cand.astype(np.int64))
        side_out.append(np.full(cand.shape[0], side, dtype=np.int8))
        hi_out.append(ph)
        lo_out.append(pl)
    idx = np.concatenate(idx_out)
    order = np.argsort(idx, kind="stable")
    return idx[order], np.concatenate(side_out)[order], np.concatenate(hi_out)[order], np.concatenate(lo_out)[order]
