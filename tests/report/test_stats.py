"""Wilson intervals, McNemar's exact and mid-p tests, bootstrap intervals: reference values."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as sps

from ensprune.errors import EnsPruneError
from ensprune.report.stats import (
    accuracy_interval,
    bootstrap_interval,
    mcnemar_test,
    paired_comparison,
    spread,
    wilson_interval,
)

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3
# (Wilson score interval without continuity correction), to 4 decimals.
NEWCOMBE = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), NEWCOMBE)
def test_wilson_matches_newcombe_table(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=6e-5)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (3, 7), (440, 449), (449, 449), (5000, 10000)])
def test_wilson_matches_closed_form(k: int, n: int) -> None:
    z = sps.norm.ppf(0.975)
    p = k / n
    centre = (k + z**2 / 2) / (n + z**2)
    half = z * math.sqrt(n) / (n + z**2) * math.sqrt(p * (1 - p) + z**2 / (4 * n))
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(max(0.0, centre - half), abs=1e-12)
    assert high == pytest.approx(min(1.0, centre + half), abs=1e-12)
    assert low <= p <= high


def test_wilson_narrows_with_confidence_and_samples() -> None:
    w90 = wilson_interval(80, 100, 0.90)
    w99 = wilson_interval(80, 100, 0.99)
    assert w99[0] < w90[0] < 0.8 < w90[1] < w99[1]
    big = wilson_interval(8000, 10000)
    assert big[1] - big[0] < w90[1] - w90[0]
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n", "conf"), [(-1, 5, 0.95), (6, 5, 0.95), (1, 5, 1.0)])
def test_wilson_refuses_bad_input(k: int, n: int, conf: float) -> None:
    with pytest.raises(EnsPruneError, match=r"successes|confidence"):
        wilson_interval(k, n, conf)


def test_accuracy_interval_counts_and_formats() -> None:
    acc = accuracy_interval(np.array([True] * 9 + [False]))
    assert (acc.correct, acc.n, acc.value) == (9, 10, 0.9)
    assert (acc.low, acc.high) == wilson_interval(9, 10)
    assert acc.format(2) == f"0.90 [{acc.low:.2f}, {acc.high:.2f}]"


def _paired(a_only: int, b_only: int, both: int = 5, neither: int = 3) -> tuple:
    a = np.array([1] * a_only + [0] * b_only + [1] * both + [0] * neither, dtype=bool)
    b = np.array([0] * a_only + [1] * b_only + [1] * both + [0] * neither, dtype=bool)
    return a, b


def test_mcnemar_by_hand() -> None:
    # 3 vs 11 discordant pairs: P(X <= 3 | n=14, 1/2) = (1 + 14 + 91 + 364) / 2**14
    res = mcnemar_test(*_paired(3, 11))
    tail = Fraction(1 + 14 + 91 + 364, 2**14)
    assert (res.a_only, res.b_only, res.discordant) == (3, 11, 14)
    assert res.p_exact == pytest.approx(float(2 * tail), rel=1e-12)
    assert res.p_mid == pytest.approx(float(2 * tail - Fraction(364, 2**14)), rel=1e-12)


@pytest.mark.parametrize(("a_only", "b_only"), [(0, 7), (4, 4), (10, 3), (120, 160), (900, 1000)])
def test_mcnemar_matches_scipy_binomtest(a_only: int, b_only: int) -> None:
    res = mcnemar_test(*_paired(a_only, b_only))
    n, low = a_only + b_only, min(a_only, b_only)
    assert res.p_exact == pytest.approx(sps.binomtest(a_only, n, 0.5).pvalue, rel=1e-9)
    # mid-p (Fagerland et al. 2013): 2 * (P(X <= low) - P(X = low) / 2), 1 when the counts tie
    mid = 2 * sps.binom.cdf(low, n, 0.5) - sps.binom.pmf(low, n, 0.5)
    assert res.p_mid == pytest.approx(min(1.0, mid), rel=1e-9, abs=1e-12)
    assert res.p_mid <= res.p_exact


def test_mcnemar_symmetric_and_no_discordance() -> None:
    a, b = _paired(2, 9)
    assert mcnemar_test(a, b).p_mid == mcnemar_test(b, a).p_mid
    same = mcnemar_test(a, a)
    assert (same.discordant, same.p_exact, same.p_mid) == (0, 1.0, 1.0)
    with pytest.raises(EnsPruneError, match="same samples"):
        mcnemar_test(a, b[:-1])


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 1.0, size=400)
    first = bootstrap_interval(x, seed=1)
    assert first == bootstrap_interval(x, seed=1)
    assert first[0] < x.mean() < first[1]
    # percentile interval of the mean ~ mean +- 1.96 * sd / sqrt(n)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert first[0] == pytest.approx(x.mean() - half, abs=0.02)
    assert first[1] == pytest.approx(x.mean() + half, abs=0.02)
    with pytest.raises(EnsPruneError, match="at least one"):
        bootstrap_interval(np.array([]))


def test_paired_comparison_verdicts() -> None:
    clear = paired_comparison(*_paired(30, 5, both=60, neither=5))
    assert clear.beyond_noise
    assert clear.verdict().startswith("beyond noise")
    assert clear.difference == pytest.approx(25 / 100)
    assert clear.difference_low < 0.25 < clear.difference_high
    # the example: 449 test samples, the team 4 samples behind its pool
    noisy = paired_comparison(*_paired(6, 10, both=400, neither=33))
    assert not noisy.beyond_noise
    assert noisy.verdict().startswith("within noise")
    assert noisy.a.n == 449
    assert noisy.difference_low < 0 < noisy.difference_high


def test_spread() -> None:
    s = spread(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert (s.median, s.q1, s.q3, s.minimum, s.maximum, s.repeats) == (3, 2, 4, 1, 100, 5)
    assert "n=5" in s.format()
    with pytest.raises(EnsPruneError, match="NaN"):
        spread(np.array([1.0, np.nan]))
