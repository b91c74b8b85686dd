"""Honest statistics for a parameter search: PSR, deflated Sharpe, MinTRL, PBO by CSCV, block bootstrap.

Every Sharpe ratio here is per period (per session for daily returns) and not annualised: the
papers' formulas take the per-period ratio and the number of observations T; annualise only for
display (:func:`annualise_sharpe`).

Sources (each function's docstring restates the formula it implements):

- PSR and MinTRL: Bailey and López de Prado, "The Sharpe Ratio Efficient Frontier", Journal of
  Risk 15(2), 2012; both are restated in the DSR paper.
- DSR and its benchmark, the expected maximum Sharpe of N unskilled trials: Bailey and López de
  Prado, "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and
  Non-Normality", Journal of Portfolio Management 40(5), 2014. The expected-maximum approximation
  comes from Bailey, Borwein, López de Prado and Zhu, "Pseudo-Mathematics and Financial
  Charlatanism", Notices of the AMS 61(5), 2014; López de Prado later named it the False Strategy
  Theorem.
- PBO by combinatorially symmetric cross-validation (CSCV): Bailey, Borwein, López de Prado and
  Zhu, "The Probability of Backtest Overfitting", Journal of Computational Finance 20(4), 2017.
- Stationary bootstrap: Politis and Romano, "The Stationary Bootstrap", JASA 89(428), 1994.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Objective = Callable[[FloatArray], float]

EULER_MASCHERONI = 0.5772156649015329
NORMAL_KURTOSIS = 3.0
# A series whose variance is below this fraction of its mean square is treated as flat (no dispersion):
# its Sharpe ratio would exceed 1e7 per period, which only a constant series produces.
_FLAT_VARIANCE_FRACTION = 1e-14
# Combination pairs per vectorised step of CSCV: memory stays at a few chunk x N arrays whatever C is.
_CSCV_CHUNK = 128
# Bootstrap resamples drawn per vectorised step.
_BOOT_CHUNK = 500


class StatsInputError(ValueError):
    """An argument a statistic cannot be computed from (the message names it)."""


# --------------------------------------------------------------------------------------------- Sharpe


def _as_1d(returns: npt.ArrayLike, name: str = "returns") -> FloatArray:
    arr = np.asarray(returns, dtype=np.float64)
    if arr.ndim != 1:
        raise StatsInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise StatsInputError(f"{name} contains NaN or infinite values")
    return arr


def _sharpe_from_moments(mean: FloatArray, var: FloatArray) -> FloatArray:
    """Sharpe from a mean and a sample variance, 0 where the series is flat (see :func:`sharpe`)."""
    flat = var <= _FLAT_VARIANCE_FRACTION * (mean * mean + var)
    out = np.divide(mean, np.sqrt(var), out=np.zeros_like(mean, dtype=np.float64), where=~flat)
    return np.asarray(out, dtype=np.float64)


def sharpe(returns: npt.ArrayLike) -> float:
    """Per-period Sharpe ratio: mean / sample standard deviation (ddof=1), no annualisation.

    Degenerate cases: fewer than 2 observations gives NaN (no dispersion can be estimated, so the
    ratio is undefined and must not pass for a number). A flat series (zero standard deviation,
    typically a variant that never traded) gives 0.0: it shows no risk-adjusted edge, and 0 keeps it
    comparable when trials are ranked (a NaN would poison every arg-max over trials). A constant
    non-zero series would have an infinite ratio; it is not a real P&L series and also gives 0.0.
    """
    arr = _as_1d(returns)
    if arr.size < 2:
        return math.nan
    mean = np.asarray(arr.mean())
    var = np.asarray(arr.var(ddof=1))
    return float(_sharpe_from_moments(mean, var))


def mean_return(returns: npt.ArrayLike) -> float:
    """Mean return per period (an alternative CSCV objective; NaN for an empty series)."""
    arr = _as_1d(returns)
    return float(arr.mean()) if arr.size else math.nan


def annualise_sharpe(sr_per_period: float, periods_per_year: float) -> float:
    """Annualised Sharpe = per-period Sharpe * sqrt(periods per year) (iid returns assumed)."""
    if not periods_per_year > 0:
        raise StatsInputError(f"periods_per_year must be positive, got {periods_per_year}")
    return sr_per_period * math.sqrt(periods_per_year)


def moments(returns: npt.ArrayLike) -> tuple[float, float]:
    """Skewness and ordinary (non-excess, normal = 3) kurtosis of a series, population formulas.

    gamma3 = m3 / m2**1.5 and gamma4 = m4 / m2**2 with central moments m_k = mean((x - mean)**k), as
    used by the PSR (Bailey and López de Prado 2012). A flat series gets the normal values (0, 3).
    """
    arr = _as_1d(returns)
    if arr.size < 2:
        return 0.0, NORMAL_KURTOSIS
    dev = arr - arr.mean()
    m2 = float(np.mean(dev**2))
    if m2 <= _FLAT_VARIANCE_FRACTION * float(np.mean(arr**2)):
        return 0.0, NORMAL_KURTOSIS
    return float(np.mean(dev**3)) / m2**1.5, float(np.mean(dev**4)) / m2**2


# ------------------------------------------------------------------------------------ PSR, DSR, MinTRL


def _sr_variance_factor(sr: float, skew: float, kurtosis: float) -> float:
    """1 - gamma3*SR + (gamma4 - 1)/4 * SR**2: the non-normal variance of the SR estimate, times T-1."""
    factor = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not factor > 0:
        raise StatsInputError(
            f"skew={skew} and kurtosis={kurtosis} are inconsistent with sr={sr}: the variance factor "
            f"1 - skew*sr + (kurtosis-1)/4*sr^2 is {factor} (kurtosis is the ordinary one, >= 1 + skew^2)"
        )
    return factor


def probabilistic_sharpe(sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """Probability that the true Sharpe ratio exceeds ``sr_benchmark`` (PSR).

    PSR = Phi((SR - SR*) * sqrt(T - 1) / sqrt(1 - gamma3*SR + (gamma4 - 1)/4 * SR^2)), Bailey and
    López de Prado (2012), restated in the DSR paper (2014). ``sr`` and ``sr_benchmark``
    are per period (not annualised), ``n_obs`` is T, ``skew`` is gamma3 and ``kurtosis`` is the
    ORDINARY kurtosis gamma4 (3 for normal returns), not the excess kurtosis.
    """
    if n_obs < 2:
        raise StatsInputError(f"n_obs must be at least 2, got {n_obs}")
    if not all(math.isfinite(x) for x in (sr, sr_benchmark, skew, kurtosis)):
        raise StatsInputError("sr, sr_benchmark, skew and kurtosis must be finite")
    factor = _sr_variance_factor(sr, skew, kurtosis)
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(factor)
    return float(norm.cdf(z))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum Sharpe of ``n_trials`` unskilled trials (True SR = 0): the DSR's benchmark SR0.

    E[max SR] ~= sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e))), the DSR
    paper's SR0 (Bailey and López de Prado 2014; the False Strategy Theorem); gamma is the Euler-Mascheroni
    constant and V the variance of the trials' Sharpe estimates (same periodicity as the result).
    One trial has no selection: the benchmark is 0.
    """
    if n_trials < 1:
        raise StatsInputError(f"n_trials must be at least 1, got {n_trials}")
    if not (math.isfinite(sr_variance) and sr_variance >= 0):
        raise StatsInputError(f"sr_variance must be finite and non-negative, got {sr_variance}")
    if n_trials == 1:
        return 0.0
    z = (1.0 - EULER_MASCHERONI) * norm.ppf(1.0 - 1.0 / n_trials) + EULER_MASCHERONI * norm.ppf(
        1.0 - 1.0 / (n_trials * math.e)
    )
    return float(math.sqrt(sr_variance) * z)


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of a selected trial and the numbers behind it (all per period)."""

    sr: float  # observed Sharpe of the selected trial
    sr_benchmark: float  # expected maximum Sharpe of n_trials unskilled trials (SR0)
    n_obs: int
    skew: float
    kurtosis: float  # ordinary (normal = 3)
    n_trials: int
    sr_variance: float  # variance of the trials' Sharpe estimates
    dsr: float  # P(true SR > SR0) = PSR(SR0)


def deflated_sharpe(returns: npt.ArrayLike, n_trials: int, sr_variance: float) -> DeflatedSharpe:
    """DSR = PSR(SR0) with SR0 = E[max SR] of ``n_trials`` trials (Bailey and López de Prado 2014).

    ``returns`` are the selected trial's per-period returns; its Sharpe, skewness and kurtosis come
    from them. ``n_trials`` must be every trial tried on the data (not just this run's), and
    ``sr_variance`` the variance of those trials' per-period Sharpe ratios.
    """
    arr = _as_1d(returns)
    if arr.size < 2:
        raise StatsInputError(f"returns must have at least 2 observations, got {arr.size}")
    sr = sharpe(arr)
    skew, kurt = moments(arr)
    sr0 = expected_max_sharpe(n_trials, sr_variance)
    dsr = probabilistic_sharpe(sr, sr0, int(arr.size), skew, kurt)
    return DeflatedSharpe(
        sr=sr,
        sr_benchmark=sr0,
        n_obs=int(arr.size),
        skew=skew,
        kurtosis=kurt,
        n_trials=n_trials,
        sr_variance=sr_variance,
        dsr=dsr,
    )


def min_track_record_length(
    sr: float, sr_benchmark: float, skew: float, kurtosis: float, confidence: float = 0.95
) -> float:
    """Observations needed for PSR(sr_benchmark) to reach ``confidence`` (MinTRL).

    MinTRL = 1 + (1 - gamma3*SR + (gamma4 - 1)/4 * SR^2) * (Z_alpha / (SR - SR*))^2, Bailey and López
    de Prado (2012), the inverse of the PSR in T. Per-period SRs, ordinary kurtosis. When the
    observed SR does not exceed the benchmark no track record suffices: the result is infinite.
    """
    if not 0 < confidence < 1:
        raise StatsInputError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if not all(math.isfinite(x) for x in (sr, sr_benchmark, skew, kurtosis)):
        raise StatsInputError("sr, sr_benchmark, skew and kurtosis must be finite")
    factor = _sr_variance_factor(sr, skew, kurtosis)
    if sr <= sr_benchmark:
        return math.inf
    z = float(norm.ppf(confidence))
    return 1.0 + factor * (z / (sr - sr_benchmark)) ** 2


# ------------------------------------------------------------------------------------------ PBO (CSCV)


@dataclass(frozen=True)
class PboResult:
    """Probability of backtest overfitting by CSCV and the numbers behind it.

    ``logits`` holds one lambda per combination (log(w / (1 - w)) of the in-sample best trial's
    relative out-of-sample rank w); ``is_best``/``oos_best`` its objective in and out of sample.
    When the statistic is undefined, ``pbo`` is NaN, the arrays are empty and ``reason`` says why.
    """

    pbo: float
    logits: FloatArray
    is_best: FloatArray
    oos_best: FloatArray
    degradation_slope: float  # OLS slope of oos_best on is_best
    degradation_intercept: float
    prob_oos_loss: float  # share of combinations where the chosen trial's OOS objective is < 0
    n_splits: int
    n_combinations: int
    n_trials: int
    n_rows_used: int
    n_rows_dropped: int  # oldest rows dropped so the rows split into n_splits equal blocks
    reason: str | None = None


def _combinations(n_splits: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """All n_splits/2-subsets of the blocks, and for each the index of its complement."""
    half = n_splits // 2
    combos = list(itertools.combinations(range(n_splits), half))
    where = {c: i for i, c in enumerate(combos)}
    every = set(range(n_splits))
    complement = [where[tuple(sorted(every.difference(c)))] for c in combos]
    return np.asarray(combos, dtype=np.intp), np.asarray(complement, dtype=np.intp)


def _undefined(reason: str, n_splits: int, n_trials: int, used: int, dropped: int) -> PboResult:
    empty = np.empty(0, dtype=np.float64)
    return PboResult(
        pbo=math.nan,
        logits=empty,
        is_best=empty,
        oos_best=empty,
        degradation_slope=math.nan,
        degradation_intercept=math.nan,
        prob_oos_loss=math.nan,
        n_splits=n_splits,
        n_combinations=0,
        n_trials=n_trials,
        n_rows_used=used,
        n_rows_dropped=dropped,
        reason=reason,
    )


class _BlockMoments:
    """Per-block sums of a T x N matrix, so any union of blocks has its mean and variance at once."""

    def __init__(self, blocks: FloatArray) -> None:
        # blocks: S x L x N. Centre each column first: the variance from sums of squares then keeps
        # its precision (sumsq - n*mean^2 on raw returns would cancel catastrophically).
        n_blocks = blocks.shape[0]
        self.n_blocks = n_blocks
        self.col_mean = blocks.mean(axis=(0, 1))
        centred = blocks - self.col_mean
        sums = centred.sum(axis=1)  # S x N
        sumsq = (centred * centred).sum(axis=1)
        # Sums over every pair of blocks (a < b at row a*S + b): a half of S blocks is S/4 pairs,
        # half the additions of adding blocks one by one.
        first, second = np.triu_indices(n_blocks, k=1)
        self.pair_sums = np.zeros((n_blocks * n_blocks, sums.shape[1]))
        self.pair_sumsq = np.zeros_like(self.pair_sums)
        self.pair_sums[first * n_blocks + second] = sums[first] + sums[second]
        self.pair_sumsq[first * n_blocks + second] = sumsq[first] + sumsq[second]
        self.sums = sums
        self.sumsq = sumsq
        self.block_len = blocks.shape[1]

    def mean_var(self, combos: npt.NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        """Mean and sample variance (ddof=1) of the union of the blocks in each row of ``combos``.

        Rows of ``combos`` are increasing block indices. Sums are added element by element in a
        fixed order (not by a matrix product), so identical trials get bit-identical values and tie
        exactly, as they do when computed directly.
        """
        width = combos.shape[1]
        n = width * self.block_len
        pairs = combos[:, 0 : width - 1 : 2] * self.n_blocks + combos[:, 1:width:2]
        s = self.pair_sums[pairs[:, 0]] if width > 1 else self.sums[combos[:, 0]]
        ss = self.pair_sumsq[pairs[:, 0]] if width > 1 else self.sumsq[combos[:, 0]]
        for j in range(1, pairs.shape[1]):
            s += self.pair_sums[pairs[:, j]]
            ss += self.pair_sumsq[pairs[:, j]]
        if width > 1 and width % 2:
            s += self.sums[combos[:, -1]]
            ss += self.sumsq[combos[:, -1]]
        mean_c = s / n
        ss -= n * mean_c * mean_c
        np.maximum(ss, 0.0, out=ss)
        ss /= n - 1
        mean_c += self.col_mean
        return mean_c, ss


def _fast_objective(objective: Objective) -> Callable[[FloatArray, FloatArray], FloatArray] | None:
    """The block-moment form of the objectives CSCV can evaluate without touching rows again."""
    if objective is sharpe:
        return _sharpe_from_moments
    if objective is mean_return:
        return lambda mean, _var: mean
    return None


def _slow_objective(objective: Objective, rows: FloatArray, combos: npt.NDArray[np.intp]) -> FloatArray:
    """Any objective, column by column, on the rows of each combination's blocks (S x L x N input)."""
    out = np.empty((combos.shape[0], rows.shape[2]), dtype=np.float64)
    for i, combo in enumerate(combos):
        sample = rows[combo].reshape(-1, rows.shape[2])
        out[i] = [objective(sample[:, j]) for j in range(sample.shape[1])]
    return out


def pbo_cscv(returns_matrix: npt.ArrayLike, n_splits: int = 16, objective: Objective = sharpe) -> PboResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    Bailey, Borwein, López de Prado and Zhu (2017): the T x N matrix (rows = sessions in
    time order, columns = trials) is cut into ``n_splits`` (S, even) contiguous blocks of equal length;
    for each of the C(S, S/2) choices of S/2 blocks as in-sample (IS), the rest out-of-sample (OOS),
    the trial with the best IS objective is taken, w = its OOS rank / (N + 1) (rank 1 = worst, ties
    averaged) and lambda = log(w / (1 - w)). PBO = share of lambda <= 0 (the IS winner ranked at or
    below the OOS median). When T is not a multiple of S the oldest T mod S rows are dropped.
    Ties in the IS objective go to the lowest column index.

    ``sharpe`` and ``mean_return`` are evaluated from per-block sums (vectorised over trials and
    combinations); any other objective is called once per trial and combination (slow).
    Undefined (NaN with a ``reason``): fewer than 2 trials, or blocks shorter than 2 rows.
    """
    if n_splits < 2 or n_splits % 2:
        raise StatsInputError(f"n_splits must be an even number >= 2, got {n_splits}")
    matrix = np.asarray(returns_matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise StatsInputError(f"returns_matrix must be 2-D (sessions x trials), got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise StatsInputError("returns_matrix contains NaN or infinite values (a session without trades is a 0 return)")
    n_rows, n_trials = matrix.shape
    block_len = n_rows // n_splits
    dropped = n_rows - block_len * n_splits
    used = block_len * n_splits
    if n_trials < 2:
        return _undefined(f"PBO needs at least 2 trials to rank, got {n_trials}", n_splits, n_trials, used, dropped)
    if block_len < 2:
        return _undefined(
            f"{n_rows} sessions give blocks of {block_len} rows for n_splits={n_splits}; each needs at least 2",
            n_splits,
            n_trials,
            used,
            dropped,
        )
    if dropped:
        log.info("cscv drops oldest rows", extra={"fields": {"dropped": dropped, "n_splits": n_splits}})
    blocks = matrix[dropped:].reshape(n_splits, block_len, n_trials)
    combos, complement = _combinations(n_splits)
    n_comb = combos.shape[0]
    fast = _fast_objective(objective)
    block_moments = _BlockMoments(blocks) if fast is not None else None

    def evaluate(halves: npt.NDArray[np.intp]) -> FloatArray:
        """The objective of every trial on each given half (row of block indices): k x N."""
        if fast is not None and block_moments is not None:
            values = fast(*block_moments.mean_var(halves))
        else:
            values = _slow_objective(objective, blocks, halves)
        if not np.all(np.isfinite(values)):
            raise StatsInputError("the CSCV objective returned NaN or infinite values")
        return values

    logits = np.empty(n_comb, dtype=np.float64)
    is_best = np.empty(n_comb, dtype=np.float64)
    oos_best = np.empty(n_comb, dtype=np.float64)
    # A combination and its complement swap IS and OOS: evaluate each pair of halves once, use it twice.
    leaders = np.flatnonzero(np.arange(n_comb) < complement)
    for start in range(0, leaders.size, _CSCV_CHUNK):
        rows = leaders[start : start + _CSCV_CHUNK]
        mirror = complement[rows]
        first = evaluate(combos[rows])
        second = evaluate(combos[mirror])
        for target, is_obj, oos_obj in ((rows, first, second), (mirror, second, first)):
            logits[target], is_best[target], oos_best[target] = _rank_is_winner(is_obj, oos_obj)
    slope, intercept = _ols(is_best, oos_best)
    return PboResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        is_best=is_best,
        oos_best=oos_best,
        degradation_slope=slope,
        degradation_intercept=intercept,
        prob_oos_loss=float(np.mean(oos_best < 0.0)),
        n_splits=n_splits,
        n_combinations=n_comb,
        n_trials=n_trials,
        n_rows_used=used,
        n_rows_dropped=dropped,
    )


def _rank_is_winner(is_obj: FloatArray, oos_obj: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per row (combination): the logit of the IS winner's relative OOS rank, its IS and OOS objective."""
    n_trials = is_obj.shape[1]
    pick = np.arange(is_obj.shape[0])
    best = np.argmax(is_obj, axis=1)  # first trial on ties
    chosen = oos_obj[pick, best]
    below = np.count_nonzero(oos_obj < chosen[:, None], axis=1)
    equal = np.count_nonzero(oos_obj == chosen[:, None], axis=1) - 1
    w = (1.0 + below + 0.5 * equal) / (n_trials + 1.0)
    return np.log(w / (1.0 - w)), is_obj[pick, best], chosen


def _ols(x: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Slope and intercept of y on x; NaN slope when x does not vary."""
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if sxx <= 0:
        return math.nan, math.nan
    slope = float(dx @ (y - y.mean())) / sxx
    return slope, float(y.mean() - slope * x.mean())


# ------------------------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """p-value of the observed statistic under a no-edge null, by the stationary bootstrap."""

    p_value: float
    observed: float
    statistic: Literal["mean", "sharpe"]
    n_boot: int
    mean_block: float
    seed: int


def _stationary_indices(rng: np.random.Generator, n_boot: int, n_obs: int, mean_block: float) -> npt.NDArray[np.intp]:
    """Politis-Romano resample indices: blocks start at uniform positions, lengths ~ Geometric(1/b), wrap."""
    new_block = rng.random((n_boot, n_obs)) < 1.0 / mean_block  # position 0 always opens a block below
    starts = rng.integers(0, n_obs, size=(n_boot, n_obs))
    t = np.arange(n_obs)
    block_start = np.maximum.accumulate(np.where(new_block, t, 0), axis=1)
    first = np.take_along_axis(starts, block_start, axis=1)
    return np.asarray((first + t - block_start) % n_obs, dtype=np.intp)


def block_bootstrap_pvalue(
    returns: npt.ArrayLike,
    n_boot: int = 10_000,
    block: float = 5.0,
    seed: int = 0,
    statistic: Literal["mean", "sharpe"] = "sharpe",
) -> BootstrapResult:
    """One-sided p-value of the observed mean or Sharpe being > 0 under the null of no edge.

    The null is imposed by demeaning the daily returns; the stationary bootstrap (Politis and Romano
    1994: blocks of geometric length with mean ``block``, circular wrap) resamples the demeaned
    series ``n_boot`` times, keeping its serial dependence and fat tails. p = (1 + #{stat* >= stat})
    / (n_boot + 1), never 0. Deterministic for a given ``seed``.
    """
    arr = _as_1d(returns)
    if arr.size < 2:
        raise StatsInputError(f"returns must have at least 2 observations, got {arr.size}")
    if n_boot < 1:
        raise StatsInputError(f"n_boot must be at least 1, got {n_boot}")
    if not block >= 1:
        raise StatsInputError(f"block (mean block length) must be >= 1, got {block}")
    if statistic not in ("mean", "sharpe"):
        raise StatsInputError(f"statistic must be 'mean' or 'sharpe', got {statistic!r}")
    observed = float(arr.mean()) if statistic == "mean" else sharpe(arr)
    null = arr - arr.mean()
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, n_boot, _BOOT_CHUNK):
        k = min(_BOOT_CHUNK, n_boot - start)
        sample = null[_stationary_indices(rng, k, arr.size, block)]
        mean = sample.mean(axis=1)
        stat = mean if statistic == "mean" else _sharpe_from_moments(mean, sample.var(axis=1, ddof=1))
        exceed += int(np.sum(stat >= observed))
    return BootstrapResult(
        p_value=(1.0 + exceed) / (n_boot + 1.0),
        observed=observed,
        statistic=statistic,
        n_boot=n_boot,
        mean_block=float(block),
        seed=seed,
    )
