"""The fast forms of the backtester's vectorised pieces agree bit-for-bit with the plain ones.

The window sums reproduce NumPy's own pairwise summation order for every window at once;
the Wilder/EMA panel walks time in cache-sized blocks; the simulator finds a symbol's bar
at a grid step from its missing steps. Each is checked against an independent plain form."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tfl.indicators import vectorised as V

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=1, max_size=700), st.integers(1, 300))
def test_window_sum_is_numpys_sum_of_each_window(xs: list[float], n: int) -> None:
    x = np.array(xs)
    want = np.full(x.shape[0], np.nan)
    if x.shape[0] >= n:
        want[n - 1 :] = np.lib.stride_tricks.sliding_window_view(x, n).sum(axis=1)
    assert np.array_equal(V.window_sum(x, n), want, equal_nan=True)


def test_window_sum_on_long_series_of_prices_and_volumes() -> None:
    rng = np.random.default_rng(7)
    for n in (2, 8, 9, 50, 128, 129, 200, 257):
        x = rng.lognormal(5.0, 2.0, 5000) * rng.integers(1, 10**6, 5000)
        want = np.lib.stride_tricks.sliding_window_view(x, n).sum(axis=1)
        assert np.array_equal(V.window_sum(x, n)[n - 1 :], want), n


def scalar_recursion(x: np.ndarray, n: int, b: float, c: float) -> np.ndarray:
    """The recursion one value at a time, as the streaming indicators do it."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < n:
        return out
    y = math.fsum(x[:n].tolist()) / n
    out[n - 1] = y
    for i in range(n, x.shape[0]):
        y = x[i] * b + c * y
        out[i] = y
    return out


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 1300), min_size=1, max_size=6),
    st.integers(2, 40),
    st.integers(0, 2**32 - 1),
)
def test_panel_of_unequal_series_across_blocks_equals_the_scalar_recursion(
    lengths: list[int], n: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    xs = [rng.lognormal(0.0, 1.0, k) for k in lengths]
    for got, x in zip(V.wilder_many(xs, n), xs, strict=True):
        assert np.array_equal(got, scalar_recursion(x, n, 1.0 / n, (n - 1) / n), equal_nan=True)
    alpha = 2.0 / (n + 1)
    for got, x in zip(V.ema_many(xs, n), xs, strict=True):
        assert np.array_equal(got, scalar_recursion(x, n, alpha, 1.0 - alpha), equal_nan=True)


@given(
    st.lists(st.lists(st.integers(0, 3000), max_size=40), max_size=8),
    st.booleans(),
    st.integers(-(10**6), 10**6),
)
def test_the_grid_union_is_the_sorted_set_of_times(parts: list[list[int]], lattice: bool, shift: int) -> None:
    """The simulator's grid: on the 15-minute lattice by presence marks, off it the general way;
    both are the plain sorted union of every symbol's (sorted) times."""
    from tfl.backtest.simulator import _union
    from tfl.timeutil import BAR_SECONDS

    scale = BAR_SECONDS if lattice else 1
    arrays = [np.array(sorted(p), dtype=np.int64) * scale + shift * BAR_SECONDS for p in parts]
    want = sorted({int(x) for a in arrays for x in a})
    assert _union(arrays).tolist() == want
