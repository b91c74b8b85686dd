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


def _seeded_recursive_many(xs: Sequence[F64], n: int, b: float, c: float) -> list[F64]:
    """y = b*x + c*y_prev per column, seeded with the exact mean (fsum) of its first n values."""
    if not xs:
        return []
    length = max(x.shape[0] for x in xs)
    k = len(xs)
    out = np.empty((length, k))
    out[: min(n, length)] = np.nan  # rows from n on are all written below
    if length >= n:
        bx = np.zeros((length, k))  # past a shorter column's end: zeros, whose results are cut off
        for j, x in enumerate(xs):
            bx[: x.shape[0], j] = x * b
            if x.shape[0] >= n:
                out[n - 1, j] = math.fsum(x[:n].tolist()) / n
        rows = list(out)  # row views: cheaper to index than the 2-D array
        bx_rows = list(bx)
        tmp = np.empty(k)
        mul, add = np.multiply, np.add
        for r in range(n, length):
            mul(rows[r - 1], c, out=tmp)
            add(bx_rows[r], tmp, out=rows[r])
    return [out[: x.shape[0], j].copy() for j, x in enumerate(xs)]


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


def window_sum(x: F64, n: int) -> F64:
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= n:
        out[n - 1 :] = np.lib.stride_tricks.sliding_window_view(x, n).sum(axis=1)
    return out


def sma(x: F64, n: int) -> F64:
    return window_sum(x, n) / n


def mvwap(close: F64, volume: F64, n: int = 50) -> F64:
    pv = window_sum(close * volume, n)
    v = window_sum(volume, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, pv / v, np.nan)
