"""The honest statistics (tfl.research.stats) against worked values and independent computations.

Worked values come from the papers where one exists (the DSR paper's numerical example); otherwise
from an independent computation written here: exact integrals, Monte Carlo with fixed seeds, and a
brute-force CSCV with plain loops. Every random test uses a fixed seed, so none can flake.
"""

from __future__ import annotations

import itertools
import math
import statistics
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps

from tfl.research import stats as s

# --------------------------------------------------------------------------------------------- Sharpe


def test_sharpe_is_mean_over_sample_std() -> None:
    """Per-period Sharpe = mean / stdev (ddof=1), checked against the standard library."""
    x = [0.01, -0.02, 0.03, 0.005, -0.001, 0.012]
    assert s.sharpe(x) == pytest.approx(statistics.mean(x) / statistics.stdev(x), rel=1e-12)
    assert s.sharpe(np.asarray(x) * 7.0) == pytest.approx(s.sharpe(x), rel=1e-12)  # scale-free


def test_sharpe_degenerate_cases() -> None:
    """Fewer than 2 observations: NaN (undefined). Flat series (never traded): 0, no edge."""
    assert math.isnan(s.sharpe([]))
    assert math.isnan(s.sharpe([0.01]))
    assert s.sharpe([0.0] * 20) == 0.0
    assert s.sharpe([1e-3] * 20) == 0.0  # float round-off must not turn a constant into a huge ratio
    with pytest.raises(s.StatsInputError, match="NaN"):
        s.sharpe([0.1, math.nan])
    with pytest.raises(s.StatsInputError, match="one-dimensional"):
        s.sharpe(np.zeros((3, 2)))


def test_annualise_sharpe() -> None:
    assert s.annualise_sharpe(0.1, 252) == pytest.approx(0.1 * math.sqrt(252))
    with pytest.raises(s.StatsInputError, match="periods_per_year"):
        s.annualise_sharpe(0.1, 0)


def test_moments_match_scipy() -> None:
    """Skewness and ORDINARY kurtosis (normal = 3) equal scipy's biased estimators (fisher=False)."""
    x = np.random.default_rng(3).standard_t(5, size=500)
    skew, kurt = s.moments(x)
    assert skew == pytest.approx(sps.skew(x, bias=True), rel=1e-10)
    assert kurt == pytest.approx(sps.kurtosis(x, fisher=False, bias=True), rel=1e-10)
    assert s.moments([2.0] * 10) == (0.0, 3.0)


# ---------------------------------------------------------------------------------------- DSR example


def test_dsr_paper_numerical_example() -> None:
    """The numerical example of Bailey and López de Prado (2014), "The Deflated Sharpe Ratio".

    After N = 100 trials with variance of the annualised Sharpe ratios V = 1/2, a strategy has an
    annualised SR of 2.5 over 5 years of daily returns (T = 1250, 250 a year), skewness -3 and
    kurtosis 10. The paper de-annualises with sqrt(250) and prints E[max SR] ~= 0.1132 per day
    and DSR ~= 0.9004. (With sqrt(T) in place of the paper's sqrt(T - 1) the DSR would round to
    0.9005, and with the excess kurtosis 7 in place of the kurtosis 10 to 0.9018: the example pins both.)
    """
    per_year = 250
    sr0 = s.expected_max_sharpe(100, 0.5 / per_year)
    assert round(sr0, 4) == 0.1132
    sr = 2.5 / math.sqrt(per_year)
    dsr = s.probabilistic_sharpe(sr, sr0, 1250, skew=-3.0, kurtosis=10.0)
    assert round(dsr, 4) == 0.9004


def test_deflated_sharpe_composes_psr_and_expected_max() -> None:
    """DSR from a return series = PSR at the expected maximum, with the series' own moments."""
    x = np.random.default_rng(5).normal(0.08, 1.0, 750)
    res = s.deflated_sharpe(x, n_trials=40, sr_variance=0.002)
    skew, kurt = sps.skew(x), sps.kurtosis(x, fisher=False)
    sr = float(np.mean(x) / np.std(x, ddof=1))
    assert res.sr == pytest.approx(sr)
    assert (res.n_obs, res.n_trials, res.sr_variance) == (750, 40, 0.002)
    assert res.sr_benchmark == pytest.approx(s.expected_max_sharpe(40, 0.002))
    assert res.dsr == pytest.approx(s.probabilistic_sharpe(sr, res.sr_benchmark, 750, skew, kurt))
    # More trials raise the bar, so the probability falls.
    assert s.deflated_sharpe(x, n_trials=4000, sr_variance=0.002).dsr < res.dsr


def test_expected_max_sharpe_against_exact_expectation() -> None:
    """The False Strategy Theorem's approximation vs E[max of N iid N(0,1)] by exact integration.

    E[max] = integral of x * N * phi(x) * Phi(x)^(N-1) dx (the density of the maximum), computed
    here with scipy's quad: an independent value. The approximation is within 2.5% for N >= 10
    and gets better as N grows; scaling by sqrt(V) is exact.
    """
    errors = []
    for n in (10, 100, 1_000, 10_000):
        exact = integrate.quad(lambda x, n=n: x * n * sps.norm.pdf(x) * sps.norm.cdf(x) ** (n - 1), -12, 12, limit=400)[
            0
        ]
        approx = s.expected_max_sharpe(n, 1.0)
        errors.append(abs(approx / exact - 1.0))
        assert s.expected_max_sharpe(n, 0.04) == pytest.approx(0.2 * approx)
    assert max(errors) < 0.025
    assert errors == sorted(errors, reverse=True)
    assert s.expected_max_sharpe(1, 0.3) == 0.0
    with pytest.raises(s.StatsInputError, match="n_trials"):
        s.expected_max_sharpe(0, 0.1)
    with pytest.raises(s.StatsInputError, match="sr_variance"):
        s.expected_max_sharpe(10, -0.1)


def test_expected_max_sharpe_monte_carlo() -> None:
    """Monte Carlo (seeded): the best of N unskilled trials' Sharpe estimates vs the formula.

    400 repetitions of N = 100 trials, each 250 iid normal returns with true SR 0; V is the sample
    variance of all the trials' Sharpe estimates. The mean maximum must be within 4% of the formula.
    """
    rng = np.random.default_rng(2024)
    reps, n_trials, n_obs = 400, 100, 250
    x = rng.normal(0.0, 1.0, size=(reps, n_obs, n_trials))
    srs = x.mean(axis=1) / x.std(axis=1, ddof=1)  # reps x trials
    mean_max = float(srs.max(axis=1).mean())
    formula = s.expected_max_sharpe(n_trials, float(srs.var(ddof=1)))
    assert mean_max == pytest.approx(formula, rel=0.04)


# ------------------------------------------------------------------------------------------ PSR, MinTRL


def _rejection_rate(samples: np.ndarray, sr_true: float, correct: bool) -> float:
    hits = 0
    for x in samples:
        skew, kurt = s.moments(x) if correct else (0.0, 3.0)
        hits += s.probabilistic_sharpe(s.sharpe(x), sr_true, x.size, skew, kurt) > 0.95
    return hits / len(samples)


def test_psr_is_calibrated_for_normal_returns() -> None:
    """With true SR equal to the benchmark, PSR is ~uniform: P(PSR > 0.95) ~= 5% (Bailey and López de Prado 2012).

    4,000 seeded series of 500 iid normal returns, true SR 0.05: the rate must lie in [3.5%, 6.5%]
    (its standard error is 0.34%).
    """
    samples = np.random.default_rng(7).normal(0.05, 1.0, size=(4000, 500))
    assert 0.035 <= _rejection_rate(samples, 0.05, correct=True) <= 0.065


def test_psr_non_normal_correction_is_what_keeps_it_calibrated() -> None:
    """Negatively skewed, fat-tailed returns (mu - (Exp(1) - 1): skew -2, kurtosis 9), true SR 0.2.

    With the paper's skewness/kurtosis correction the false-positive rate stays ~5%; with the normal
    assumption (skew 0, kurtosis 3) the SR's standard error is understated and it nearly doubles
    (independent Monte Carlo, 6,000 seeded series of 600 returns).
    """
    rng = np.random.default_rng(11)
    mu = 0.2
    samples = mu - (rng.exponential(1.0, size=(6000, 600)) - 1.0)
    assert 0.038 <= _rejection_rate(samples, mu, correct=True) <= 0.062
    assert _rejection_rate(samples, mu, correct=False) > 0.075


def test_psr_rejects_inconsistent_moments() -> None:
    with pytest.raises(s.StatsInputError, match="kurtosis"):
        s.probabilistic_sharpe(0.5, 0.0, 100, skew=4.0, kurtosis=1.5)
    with pytest.raises(s.StatsInputError, match="n_obs"):
        s.probabilistic_sharpe(0.1, 0.0, 1, 0.0, 3.0)


def test_min_track_record_length_hand_value() -> None:
    """MinTRL = 1 + (1 - g3 SR + (g4-1)/4 SR^2)(Z_a/(SR - SR*))^2 (Bailey and López de Prado 2012).

    Normal returns (g3 = 0, g4 = 3), SR = 0.1 per period, SR* = 0, 95%: by hand
    1 + 1.005 * (1.6448536 / 0.1)^2 = 272.9065.
    """
    assert s.min_track_record_length(0.1, 0.0, 0.0, 3.0) == pytest.approx(272.9065, abs=1e-3)
    assert s.min_track_record_length(0.1, 0.1, 0.0, 3.0) == math.inf
    assert s.min_track_record_length(0.05, 0.1, 0.0, 3.0) == math.inf
    with pytest.raises(s.StatsInputError, match="confidence"):
        s.min_track_record_length(0.1, 0.0, 0.0, 3.0, confidence=1.0)


@settings(deadline=None)
@given(
    sr=st.floats(0.01, 0.5),
    gap=st.floats(0.005, 0.3),
    skew=st.floats(-3.0, 1.0),
    extra_kurt=st.floats(0.0, 20.0),
    confidence=st.floats(0.6, 0.999),
)
def test_min_track_record_length_is_where_psr_reaches_the_confidence(
    sr: float, gap: float, skew: float, extra_kurt: float, confidence: float
) -> None:
    """MinTRL inverts the PSR in T: at ceil(MinTRL) observations PSR >= confidence, one fewer is below."""
    kurt = 1.0 + skew * skew + extra_kurt  # any real distribution has kurtosis >= 1 + skew^2
    bench = sr - gap
    n = s.min_track_record_length(sr, bench, skew, kurt, confidence)
    n_up = max(2, math.ceil(n))
    assert s.probabilistic_sharpe(sr, bench, n_up, skew, kurt) >= confidence - 1e-9
    if n_up - 1 >= 2 and n_up - 1 < n - 1e-9:
        assert s.probabilistic_sharpe(sr, bench, n_up - 1, skew, kurt) < confidence


# ------------------------------------------------------------------------------------------------ PBO


class _Cscv(NamedTuple):
    logits: np.ndarray
    is_best: np.ndarray
    oos_best: np.ndarray
    pbo: float
    loss: float


def _brute_force_cscv(matrix: np.ndarray, n_splits: int, objective: s.Objective) -> _Cscv:
    """CSCV written straight from Bailey et al. (2017), with plain loops.

    Oldest rows beyond a multiple of S dropped; S contiguous blocks; every S/2 subset in-sample;
    best IS trial (first on ties); its OOS rank (1 = worst, ties averaged) over N + 1; logit.
    """
    t, n = matrix.shape
    length = t // n_splits
    m = matrix[t - length * n_splits :]
    blocks = [m[i * length : (i + 1) * length] for i in range(n_splits)]
    logits, is_best, oos_best = [], [], []
    for combo in itertools.combinations(range(n_splits), n_splits // 2):
        rest = [i for i in range(n_splits) if i not in combo]
        train = np.concatenate([blocks[i] for i in combo])
        test = np.concatenate([blocks[i] for i in rest])
        is_scores = [objective(train[:, j]) for j in range(n)]
        oos_scores = [objective(test[:, j]) for j in range(n)]
        best = 0
        for j in range(1, n):
            if is_scores[j] > is_scores[best]:
                best = j
        rank = 1.0
        for j in range(n):
            if j != best:
                if oos_scores[j] < oos_scores[best]:
                    rank += 1.0
                elif oos_scores[j] == oos_scores[best]:
                    rank += 0.5
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
        is_best.append(is_scores[best])
        oos_best.append(oos_scores[best])
    return _Cscv(
        logits=np.array(logits),
        is_best=np.array(is_best),
        oos_best=np.array(oos_best),
        pbo=sum(lam <= 0 for lam in logits) / len(logits),
        loss=sum(v < 0 for v in oos_best) / len(oos_best),
    )


def _median(x: np.ndarray) -> float:
    return float(np.median(x))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_splits=st.sampled_from([2, 4, 6, 8]),
    block_len=st.integers(2, 6),
    extra_rows=st.integers(0, 7),
    n_trials=st.integers(2, 9),
    objective=st.sampled_from([s.sharpe, s.mean_return, _median]),
    duplicate=st.booleans(),
    flat=st.booleans(),
)
def test_pbo_fast_equals_brute_force(
    seed: int,
    n_splits: int,
    block_len: int,
    extra_rows: int,
    n_trials: int,
    objective: s.Objective,
    duplicate: bool,
    flat: bool,
) -> None:
    """The vectorised CSCV equals the loop version on random matrices, with rows to drop, and with
    the ties a real sweep produces: two trials with identical returns, a trial that never trades."""
    extra = extra_rows % n_splits
    rng = np.random.default_rng(seed)
    matrix = rng.normal(rng.normal(0, 0.1, n_trials), 1.0, size=(n_splits * block_len + extra, n_trials))
    if duplicate:
        matrix[:, -1] = matrix[:, 0]
    if flat and n_trials >= 3:
        matrix[:, 1] = 0.0
    fast = s.pbo_cscv(matrix, n_splits=n_splits, objective=objective)
    slow = _brute_force_cscv(matrix, n_splits, objective)
    assert fast.reason is None
    assert fast.n_rows_dropped == extra
    assert fast.n_combinations == math.comb(n_splits, n_splits // 2)
    np.testing.assert_allclose(fast.logits, slow.logits, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.is_best, slow.is_best, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.oos_best, slow.oos_best, rtol=1e-9, atol=1e-12)
    assert fast.pbo == slow.pbo
    assert fast.prob_oos_loss == slow.loss
    if np.ptp(fast.is_best) > 0:
        slope, intercept = np.polyfit(fast.is_best, fast.oos_best, 1)
        assert fast.degradation_slope == pytest.approx(slope, rel=1e-6, abs=1e-9)
        assert fast.degradation_intercept == pytest.approx(intercept, rel=1e-6, abs=1e-9)


def test_pbo_hand_worked_two_blocks() -> None:
    """S = 2 by hand. Trials A and B are identical in block 0; in block 1, B beats A.

    IS block 0: A and B tie, A (first) is chosen; OOS block 1: A ranks 1 of 2, w = 1/3, logit -ln 2.
    IS block 1: B wins; OOS block 0: A and B tie, averaged rank 1.5, w = 1/2, logit 0.
    Both logits <= 0, so PBO = 1; the chosen trials' OOS Sharpes: A's in block 1, B's in block 0.
    """
    block0 = [0.01, -0.02, 0.03, 0.0]
    a = np.array([*block0, 0.01, -0.01, 0.0, 0.005])
    b = np.array([*block0, 0.02, 0.01, 0.03, 0.015])
    res = s.pbo_cscv(np.column_stack([a, b]), n_splits=2)
    np.testing.assert_allclose(res.logits, [-math.log(2.0), 0.0], atol=1e-12)
    assert res.pbo == 1.0
    np.testing.assert_allclose(res.oos_best, [s.sharpe(a[4:]), s.sharpe(b[:4])])
    np.testing.assert_allclose(res.is_best, [s.sharpe(a[:4]), s.sharpe(b[4:])])


def test_pbo_drops_the_oldest_rows() -> None:
    """T = 103, S = 10: the 3 oldest rows are dropped, so the result is that of rows 3..102."""
    m = np.random.default_rng(1).normal(size=(103, 6))
    full = s.pbo_cscv(m, n_splits=10)
    np.testing.assert_array_equal(full.logits, s.pbo_cscv(m[3:], n_splits=10).logits)
    assert (full.n_rows_dropped, full.n_rows_used) == (3, 100)
    assert not np.array_equal(full.logits, s.pbo_cscv(m[:100], n_splits=10).logits)


def test_pbo_of_pure_noise_is_near_one_half() -> None:
    """Trials with no edge at all: the IS winner is a coin toss OOS, so PBO ~ 0.5 (Bailey et al. 2017).

    200 noise trials, 800 sessions, S = 16 (12,870 combinations), fixed seed; band [0.3, 0.7].
    """
    m = np.random.default_rng(42).normal(0.0, 0.01, size=(800, 200))
    res = s.pbo_cscv(m, n_splits=16)
    assert res.n_combinations == 12_870
    assert 0.3 <= res.pbo <= 0.7
    assert res.degradation_slope < 0.5  # IS luck does not carry OOS


def test_pbo_with_a_planted_edge_is_near_zero() -> None:
    """One trial with a true daily Sharpe of 0.3 among 199 noise trials wins IS and stays on top OOS."""
    rng = np.random.default_rng(43)
    m = rng.normal(0.0, 0.01, size=(800, 200))
    m[:, 57] += 0.003
    res = s.pbo_cscv(m, n_splits=16)
    assert res.pbo < 0.02
    assert res.prob_oos_loss < 0.02
    assert float(np.median(res.logits)) > 3.0


def test_pbo_undefined_and_bad_input() -> None:
    one = s.pbo_cscv(np.zeros((64, 1)))
    assert math.isnan(one.pbo) and one.reason is not None and "2 trials" in one.reason
    short = s.pbo_cscv(np.zeros((20, 5)), n_splits=16)
    assert math.isnan(short.pbo) and short.reason is not None and "at least 2" in short.reason
    with pytest.raises(s.StatsInputError, match="even"):
        s.pbo_cscv(np.zeros((64, 3)), n_splits=5)
    with pytest.raises(s.StatsInputError, match="2-D"):
        s.pbo_cscv(np.zeros(64))
    bad = np.zeros((64, 3))
    bad[5, 1] = math.nan
    with pytest.raises(s.StatsInputError, match="NaN"):
        s.pbo_cscv(bad)


def test_pbo_flat_trials_tie_rather_than_break() -> None:
    """Trials that never trade (all zeros) have Sharpe 0 and share an averaged rank, no NaN."""
    m = np.zeros((64, 4))
    res = s.pbo_cscv(m, n_splits=4)
    # All four tie IS and OOS: the winner's averaged rank is 2.5 of 4, w = 0.5, logit 0 -> counted as overfit.
    np.testing.assert_allclose(res.logits, 0.0, atol=1e-12)
    assert res.pbo == 1.0


# ------------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_planted_mean_is_significant() -> None:
    """A daily mean of 0.3 standard deviations over 500 days is an edge: p < 0.01."""
    x = np.random.default_rng(8).normal(0.3, 1.0, 500)
    for statistic in ("mean", "sharpe"):
        res = s.block_bootstrap_pvalue(x, n_boot=2000, block=5, seed=1, statistic=statistic)
        assert res.p_value < 0.01
        assert res.p_value > 0  # (1 + count) / (n + 1) is never 0


def test_bootstrap_noise_is_not_significant() -> None:
    """Zero-mean noise: over 100 seeded series, p < 0.05 about 5% of the time, p ~ uniform (mean ~ 0.5)."""
    rng = np.random.default_rng(9)
    pvals = [
        s.block_bootstrap_pvalue(rng.normal(0.0, 1.0, 250), n_boot=400, block=5, seed=i).p_value for i in range(100)
    ]
    assert sum(p < 0.05 for p in pvals) <= 12
    assert 0.35 <= statistics.mean(pvals) <= 0.65


def test_bootstrap_is_deterministic_per_seed() -> None:
    x = np.random.default_rng(10).normal(0.05, 1.0, 300)
    a = s.block_bootstrap_pvalue(x, n_boot=1200, block=4, seed=123)
    assert a == s.block_bootstrap_pvalue(x, n_boot=1200, block=4, seed=123)
    assert a.p_value != s.block_bootstrap_pvalue(x, n_boot=1200, block=4, seed=124).p_value


def test_stationary_bootstrap_blocks() -> None:
    """Politis-Romano: each step continues the block (next index, wrapping) or starts a new one, and
    blocks have geometric lengths with the requested mean (here 8)."""
    rng = np.random.default_rng(12)
    idx = s._stationary_indices(rng, 200, 400, 8.0)
    assert idx.min() >= 0 and idx.max() < 400
    cont = idx[:, 1:] == (idx[:, :-1] + 1) % 400
    breaks = int((~cont).sum()) + idx.shape[0]  # each row starts a block at position 0
    assert idx.size / breaks == pytest.approx(8.0, rel=0.06)


def test_bootstrap_bad_input() -> None:
    with pytest.raises(s.StatsInputError, match="block"):
        s.block_bootstrap_pvalue([0.1, 0.2, 0.3], block=0.5)
    with pytest.raises(s.StatsInputError, match="n_boot"):
        s.block_bootstrap_pvalue([0.1, 0.2, 0.3], n_boot=0)
    with pytest.raises(s.StatsInputError, match="at least 2"):
        s.block_bootstrap_pvalue([0.1])
