"""Streaming indicators: one value in, one value out, O(1) per bar.

The recursions are written exactly as the vectorised twins evaluate them
(``b * x + c * prev``), so both forms give identical floats on the same input.
"""

from __future__ import annotations

import math
from collections import deque

NAN = math.nan


class _SeededRecursive:
    """y = b*x + c*y_prev, seeded with the exact mean (fsum) of the first n inputs."""

    __slots__ = ("_b", "_c", "_n", "_seed", "value")

    def __init__(self, n: int, b: float, c: float) -> None:
        self._n = n
        self._b = b
        self._c = c
        self._seed: list[float] | None = []
        self.value = NAN

    def update(self, x: float) -> float:
        if self._seed is None:
            self.value = self._b * x + self._c * self.value
        else:
            self._seed.append(x)
            if len(self._seed) == self._n:
                self.value = math.fsum(self._seed) / self._n
                self._seed = None
        return self.value

    @property
    def ready(self) -> bool:
        return self._seed is None

    def resume(self, value: float) -> None:
        """Continue from a value computed elsewhere (the vectorised twin over history)."""
        self.value = value
        self._seed = None


class WilderAverage(_SeededRecursive):
    """Wilder's smoothing: y = x/n + y_prev*(n-1)/n."""

    def __init__(self, n: int) -> None:
        super().__init__(n, 1.0 / n, (n - 1) / n)


class EMA(_SeededRecursive):
    """Exponential moving average with alpha = 2/(n+1), seeded with an SMA of n values."""

    def __init__(self, n: int) -> None:
        alpha = 2.0 / (n + 1)
        super().__init__(n, alpha, 1.0 - alpha)


class ATR:
    """Average true range (Wilder) on bars; the first true range is high - low."""

    __slots__ = ("_avg", "_prev_close")

    def __init__(self, n: int = 14) -> None:
        self._avg = WilderAverage(n)
        self._prev_close = NAN

    def update(self, high: float, low: float, close: float) -> float:
        if math.isnan(self._prev_close):
            tr = high - low
        else:
            pc = self._prev_close
            tr = max(high - low, abs(high - pc), abs(low - pc))
        self._prev_close = close
        return self._avg.update(tr)

    @property
    def value(self) -> float:
        return self._avg.value

    def resume(self, value: float, prev_close: float) -> None:
        self._avg.resume(value)
        self._prev_close = prev_close


class RSI:
    """Wilder RSI on closes. 100 when there were no losses, 50 when nothing moved."""

    __slots__ = ("_gain", "_loss", "_prev", "value")

    def __init__(self, n: int = 14) -> None:
        self._gain = WilderAverage(n)
        self._loss = WilderAverage(n)
        self._prev = NAN
        self.value = NAN

    def update(self, close: float) -> float:
        if not math.isnan(self._prev):
            d = close - self._prev
            g = self._gain.update(d if d > 0 else 0.0)
            lo = self._loss.update(-d if d < 0 else 0.0)
            if self._gain.ready:
                self.value = rsi_from_averages(g, lo)
        self._prev = close
        return self.value

    def resume(self, avg_gain: float, avg_loss: float, prev_close: float) -> None:
        self._gain.resume(avg_gain)
        self._loss.resume(avg_loss)
        self._prev = prev_close
        self.value = rsi_from_averages(avg_gain, avg_loss)


def rsi_from_averages(avg_gain: float, avg_loss: float) -> float:
    if avg_loss == 0.0:
        return 100.0 if avg_gain > 0.0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class _WindowSum:
    """Running sum over the last n values, re-summed exactly every n updates.

    Adding and subtracting keeps each update O(1); the periodic exact re-sum stops
    floating-point drift from accumulating over years of bars.
    """

    __slots__ = ("_buf", "_n", "_since", "total")

    def __init__(self, n: int) -> None:
        self._n = n
        self._buf: deque[float] = deque(maxlen=n)
        self._since = 0
        self.total = 0.0

    def push(self, x: float) -> None:
        if len(self._buf) == self._n:
            self.total -= self._buf[0]
        self._buf.append(x)
        self.total += x
        self._since += 1
        if self._since >= self._n:
            self.total = math.fsum(self._buf)
            self._since = 0

    @property
    def full(self) -> bool:
        return len(self._buf) == self._n

    def resume(self, values: list[float]) -> None:
        self._buf.clear()
        self._buf.extend(values[-self._n :])
        self.total = math.fsum(self._buf)
        self._since = 0


class SMA:
    __slots__ = ("_n", "_sum", "value")

    def __init__(self, n: int) -> None:
        self._n = n
        self._sum = _WindowSum(n)
        self.value = NAN

    def update(self, x: float) -> float:
        self._sum.push(x)
        if self._sum.full:
            self.value = self._sum.total / self._n
        return self.value


class MVWAP:
    """Moving VWAP: sum(close*volume)/sum(volume) over the last n bars (NaN if no volume)."""

    __slots__ = ("_pv", "_v", "value")

    def __init__(self, n: int = 50) -> None:
        self._pv = _WindowSum(n)
        self._v = _WindowSum(n)
        self.value = NAN

    def resume(self, closes: list[float], volumes: list[float]) -> None:
        self._pv.resume([c * v for c, v in zip(closes, volumes, strict=True)])
        self._v.resume(volumes)
        if self._v.full:
            self.value = self._pv.total / self._v.total if self._v.total > 0 else NAN

    def update(self, close: float, volume: float) -> float:
        self._pv.push(close * volume)
        self._v.push(volume)
        if self._v.full:
            self.value = self._pv.total / self._v.total if self._v.total > 0 else NAN
        return self.value
