"""Vectorised twins of :mod:`tfl.indicators.streaming` for whole series (NumPy/SciPy).

Wilder and EMA recursions run through ``scipy.signal.lfilter`` with the same
coefficients and seed as the streaming form, which evaluates ``b*x + c*prev`` in
the same order: the two agree bit-for-bit (tests check it on real data).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

F64 = NDArray[np.float64]


def _seeded_recursive(x: F64, n: int, b: float, c: float) -> F64:
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < n:
        return out
    seed = math.fsum(x[:n].tolist()) / n
    out[n - 1] = seed
    if x.shape[0] > n:
        y, _ = lfilter([b], [1.0, -c], x[n:], zi=[c * seed])
        out[n:] = y
    return out


def wilder(x: F64, n: int) -> F64:
    return _seeded_recursive(x, n, 1.0 / n, (n - 1) / n)


def ema(x: F64, n: int) -> F64:
    alpha = 2.0 / (n + 1)
    return _seeded_recursive(x, n, alpha, 1.0 - alpha)


def true_range(high: F64, low: F64, close: F64) -> F64:
    tr = high - low
    if tr.shape[0] > 1:
        pc = close[:-1]
        tr[1:] = np.maximum(np.maximum(tr[1:], np.abs(high[1:] - pc)), np.abs(low[1:] - pc))
    return tr


def atr(high: F64, low: F64, close: F64, n: int = 14) -> F64:
    return wilder(true_range(high, low, close), n)


def rsi(close: F64, n: int = 14) -> F64:
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] < n + 1:
        return out
    d = np.diff(close)
    gain = np.where(d > 0, d, 0.0)
    loss = np.where(d < 0, -d, 0.0)
    ag = wilder(gain, n)
    al = wilder(loss, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 100.0 - 100.0 / (1.0 + ag / al)
    r = np.where(al == 0.0, np.where(ag > 0.0, 100.0, 50.0), r)
    r[np.isnan(ag)] = np.nan
    out[1:] = r
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
