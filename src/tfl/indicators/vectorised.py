"""Vectorised twins of :mod:`tfl.indicators.streaming` for whole series (NumPy).

A Wilder or EMA recursion cannot be vectorised along time, but it can across series:
``*_many`` functions stack many series as the columns of one panel and step through
the rows, each step one NumPy operation over every symbol at once. Each element is
computed as ``b*x + c*prev`` exactly like the streaming form, so the two agree
bit-for-bit (tests check it on real data), and the whole universe takes well under a
second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


_CHUNK = 512  # time steps per block of the panel: a block of every series stays in the CPU cache


def _seeded_recursive_many(xs: Sequence[F64], n: int, b: float, c: float) -> list[F64]:
    """y = b*x + c*y_prev per series, seeded with the exact mean (fsum) of its first n values.

    The series are the rows of one (series x time) panel; the recursion walks time in blocks,
    each block transposed into a small buffer whose rows (one time step of every series) stay
    in the cache while two NumPy operations per step advance every series at once."""
    if not xs:
        return []
    length = max(x.shape[0] for x in xs)
    k = len(xs)
    panel = np.empty((k, length))  # b*x before the walk, y after it
    for j, x in enumerate(xs):
        np.multiply(x, b, out=panel[j, : x.shape[0]])
        panel[j, x.shape[0] :] = 0.0  # past a shorter series' end: results cut off below
    head = min(n, length)
    panel[:, :head] = np.nan  # rows from n on are all written below
    if length > n - 1:
        seeds = np.array([math.fsum(x[:n].tolist()) / n if x.shape[0] >= n else np.nan for x in xs])
        panel[:, n - 1] = seeds
        buf = np.empty((_CHUNK + 1, k))
        buf[0] = seeds
        tmp = np.empty(k)
        mul, add = np.multiply, np.add
        for start in range(n, length, _CHUNK):
            stop = min(start + _CHUNK, length)
            steps = stop - start
            buf[1 : steps + 1] = panel[:, start:stop].T
            rows = list(buf[: steps + 1])  # row views: cheaper to index than the 2-D array
            for r in range(1, steps + 1):
                mul(rows[r - 1], c, out=tmp)
                add(rows[r], tmp, out=rows[r])
            panel[:, start:stop] = buf[1 : steps + 1].T
            buf[0] = buf[steps]
    return [panel[j, : x.shape[0]] for j, x in enumerate(xs)]


def wilder_many(xs: Sequence[F64], n: int) -> list[F64]:
    return _seeded_recursive_many(xs, n, 1.0 / n, (n - 1) / n)


def ema_many(xs: Sequence[F64], n: int) -> list[F64]:
    alpha = 2.0 / (n + 1)
    return _seeded_recursive_many(xs, n, alpha, 1.0 - alpha)


def wilder(x: F64, n: int) -> F64:
    return wilder_many([x], n)[0]


def ema(x: F64, n: int) -> F64:
    return ema_many([x], n)[0]


def true_range(high: F64, low: F64, close: F64) -> F64:
    tr = high - low
    if tr.shape[0] > 1:
        pc = close[:-1]
        tr[1:] = np.maximum(np.maximum(tr[1:], np.abs(high[1:] - pc)), np.abs(low[1:] - pc))
    return tr


def atr(high: F64, low: F64, close: F64, n: int = 14) -> F64:
    return wilder(true_range(high, low, close), n)


def atr_many(bars: Sequence[tuple[F64, F64, F64]], n: int = 14) -> list[F64]:
    return wilder_many([true_range(h, lo, c) for h, lo, c in bars], n)


def rsi(close: F64, n: int = 14) -> F64:
    return rsi_many([close], n)[0]


def rsi_many(closes: Sequence[F64], n: int = 14) -> list[F64]:
    diffs = [np.diff(c) for c in closes]
    gains = wilder_many([np.where(d > 0, d, 0.0) for d in diffs], n)
    losses = wilder_many([np.where(d < 0, -d, 0.0) for d in diffs], n)
    out = []
    for c, ag, al in zip(closes, gains, losses, strict=True):
        r = np.full(c.shape[0], np.nan)
        if c.shape[0] >= n + 1:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = 100.0 - 100.0 / (1.0 + ag / al)
            v = np.where(al == 0.0, np.where(ag > 0.0, 100.0, 50.0), v)
            v[np.isnan(ag)] = np.nan
            r[1:] = v
        out.append(r)
    return out


_PAIRWISE_BLOCK = 128  # NumPy's pairwise summation: below this, 8 accumulators; above, halves
_UNROLL = 8


def _pairwise_windows(x: F64, start: int, length: int, out: F64) -> None:
    """``out[i]`` = the sum of ``x[i+start : i+start+length]`` for every ``i < len(out)``, added
    in exactly the order of NumPy's pairwise ``sum`` of that slice (so bit-identical to it), but
    for all windows at once: one array operation per step of that order, not one sum per window.

    In the 8-accumulator block, accumulator ``k`` of window ``i`` is the stride-8 sum starting
    at ``i+k``: one array of those sums serves all eight accumulators as shifted views. The
    steps write into two buffers (new temporaries of this size cost page faults)."""
    m = out.shape[0]
    if length < _UNROLL:
        np.copyto(out, x[start : start + m])
        for k in range(1, length):
            out += x[start + k : start + k + m]
        return
    if length <= _PAIRWISE_BLOCK:
        full = length - length % _UNROLL
        span = m + _UNROLL - 1  # the stride-8 sums needed by the eight shifted accumulators
        strided = x[start : start + span].copy()
        for j in range(_UNROLL, full, _UNROLL):
            strided += x[start + j : start + j + span]
        pair = np.empty(span - 1)
        np.add(strided[:-1], strided[1:], out=pair)  # r_k + r_(k+1), with r_k = strided[k:]
        np.add(pair[: m + 4], pair[2 : m + 6], out=strided[: m + 4])  # (r0+r1) + (r2+r3)
        np.add(strided[:m], strided[4 : m + 4], out=out)  # ((r0+r1)+(r2+r3)) + ((r4+r5)+(r6+r7))
        for k in range(full, length):
            out += x[start + k : start + k + m]
        return
    half = length // 2
    half -= half % _UNROLL
    second = np.empty(m)
    _pairwise_windows(x, start, half, out)
    _pairwise_windows(x, start + half, length - half, second)
    out += second


def window_sum(x: F64, n: int) -> F64:
    """Sum of each window of ``n`` values ending at each index (NaN before the first full one),
    bit-identical to ``sliding_window_view(x, n).sum(axis=1)`` and several times faster."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= n:
        _pairwise_windows(np.ascontiguousarray(x, dtype=np.float64), 0, n, out[n - 1 :])
    return out


def sma(x: F64, n: int) -> F64:
    return window_sum(x, n) / n


def mvwap(close: F64, volume: F64, n: int = 50) -> F64:
    pv = window_sum(close * volume, n)
    v = window_sum(volume, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, pv / v, np.nan)
