"""Uncertainty of test accuracies: Wilson intervals, McNemar's paired test, bootstrap intervals.

A test accuracy measured on N samples is a binomial proportion, so every accuracy the report shows
carries a Wilson score interval (good coverage even near 0 and 1 and for small N, unlike the
normal approximation). Two classifiers scored on the SAME test samples are compared with McNemar's
test: only the samples on which exactly one of them is right (the discordant pairs) carry
information about which is better; under "no difference" each such sample is a fair coin flip.
The exact binomial p-value is conservative; the mid-p value (exact p minus half the probability of
each tail's observed count, i.e. minus the point probability) keeps close to the nominal level and
is what :func:`paired_comparison` uses to call a difference "beyond noise".

Everything is pure NumPy and the standard library (no SciPy import on the report's path).

Example:
    >>> wilson_interval(81, 263)           # (0.2553..., 0.3662...)
    >>> mcnemar_test(team_correct, pool_correct).p_mid
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ensprune.errors import EnsPruneError

DEFAULT_CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05


class StatsInputError(EnsPruneError, ValueError):
    """Counts, confidence levels or paired vectors that make no sense together."""


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise StatsInputError(f"confidence must be in (0, 1); got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(
    successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / n``.

    Args:
        successes: number of correct predictions (0 <= successes <= n).
        n: number of samples; 0 gives the uninformative interval (0, 1).
        confidence: two-sided coverage, e.g. 0.95.

    Returns:
        (low, high), clipped to [0, 1].
    """
    successes, n = int(successes), int(n)
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise StatsInputError(f"need 0 <= successes <= n; got successes={successes}, n={n}")
    z = _z(confidence)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at the ends the bound is exactly 0 or 1; rounding would otherwise leave 1e-17
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Accuracy:
    """An accuracy with its interval: ``correct`` of ``n`` samples."""

    correct: int
    n: int
    low: float
    high: float
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def value(self) -> float:
        """The point estimate ``correct / n`` (NaN for no samples)."""
        return self.correct / self.n if self.n else math.nan

    def format(self, digits: int = 4) -> str:
        """``0.9123 [0.8950, 0.9270]``."""
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def accuracy_interval(correct: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Accuracy:
    """Accuracy of a boolean per-sample correctness vector, with its Wilson interval."""
    hits = np.asarray(correct)
    if hits.ndim != 1:
        raise StatsInputError(f"correctness must be a 1-D vector; got shape {hits.shape}")
    k, n = int(hits.astype(bool).sum()), int(hits.size)
    low, high = wilson_interval(k, n, confidence)
    return Accuracy(k, n, low, high, confidence)


def _binom_half_pmf(k: np.ndarray | int, n: int) -> np.ndarray:
    """P(X = k) for X ~ Binomial(n, 1/2), in log space so n in the tens of thousands is fine."""
    k = np.asarray(k, dtype=float)
    log_pmf = (
        math.lgamma(n + 1)
        - np.vectorize(math.lgamma)(k + 1)
        - np.vectorize(math.lgamma)(n - k + 1)
        - n * math.log(2.0)
    )
    return np.asarray(np.exp(log_pmf))


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correctness vectors of classifiers A and B.

    Attributes:
        a_only: samples A gets right and B gets wrong.
        b_only: samples B gets right and A gets wrong.
        p_exact: two-sided exact binomial p-value (conservative).
        p_mid: two-sided mid-p value (``p_exact`` minus the point probability of the observed count).
    """

    a_only: int
    b_only: int
    p_exact: float
    p_mid: float

    @property
    def discordant(self) -> int:
        """Samples on which exactly one classifier is right."""
        return self.a_only + self.b_only


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemarResult:
    """McNemar's exact and mid-p test that A and B are equally accurate on the same samples.

    Args:
        correct_a: per-sample correctness of A (booleans, length N).
        correct_b: per-sample correctness of B on the same N samples, in the same order.
    """
    a = np.asarray(correct_a).astype(bool)
    b = np.asarray(correct_b).astype(bool)
    if a.ndim != 1 or a.shape != b.shape:
        raise StatsInputError(
            f"McNemar's test needs two 1-D correctness vectors over the same samples; "
            f"got shapes {a.shape} and {b.shape}"
        )
    a_only = int((a & ~b).sum())
    b_only = int((b & ~a).sum())
    n = a_only + b_only
    if n == 0:
        return McNemarResult(0, 0, 1.0, 1.0)
    low = min(a_only, b_only)
    tail = float(_binom_half_pmf(np.arange(low + 1), n).sum())
    point = float(_binom_half_pmf(low, n))
    p_exact = min(1.0, 2.0 * tail)
    p_mid = min(1.0, 2.0 * tail - point)
    return McNemarResult(a_only, b_only, p_exact, p_mid)


def bootstrap_interval(
    samples: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_resamples: int = 2000,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over the first axis of ``samples``.

    Resamples rows with replacement (rows stay together, so pass an (N, k) array to keep paired
    measurements paired). Seeded: the same inputs give the same interval.

    Args:
        samples: (N, ...) data; N >= 1.
        statistic: maps a resample of the same shape to one number.
        n_resamples: bootstrap replicates.
        confidence: two-sided coverage.
        seed: seeds the resampling generator.
    """
    _z(confidence)
    data = np.asarray(samples)
    if data.ndim == 0 or data.shape[0] == 0:
        raise StatsInputError("bootstrap_interval needs at least one sample")
    if n_resamples < 1:
        raise StatsInputError(f"n_resamples must be >= 1; got {n_resamples}")
    rng = np.random.default_rng(seed)
    n = data.shape[0]
    values = np.empty(n_resamples)
    for r in range(n_resamples):
        values[r] = float(statistic(data[rng.integers(0, n, n)]))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedComparison:
    """Classifier A against reference B on the same test samples.

    Attributes:
        a, b: each accuracy with its Wilson interval.
        difference: accuracy of A minus accuracy of B.
        difference_low, difference_high: paired bootstrap interval of the difference.
        test: McNemar's test on the discordant samples.
        alpha: the level at which :attr:`beyond_noise` is decided (on the mid-p value).
    """

    a: Accuracy
    b: Accuracy
    difference: float
    difference_low: float
    difference_high: float
    test: McNemarResult
    alpha: float = DEFAULT_ALPHA

    @property
    def beyond_noise(self) -> bool:
        """Whether McNemar's mid-p value is below ``alpha``."""
        return self.test.p_mid < self.alpha

    def verdict(self) -> str:
        """One phrase: ``"beyond noise (p=0.003)"`` or ``"within noise (p=0.41)"``."""
        word = "beyond noise" if self.beyond_noise else "within noise"
        return f"{word} (McNemar mid-p={self.test.p_mid:.3g})"


def paired_comparison(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    alpha: float = DEFAULT_ALPHA,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Compare two classifiers scored on the same samples: intervals, difference, McNemar.

    Example:
        >>> cmp = paired_comparison(team_pred == y, pool_pred == y)
        >>> cmp.difference, cmp.verdict()
    """
    if not 0.0 < alpha < 1.0:
        raise StatsInputError(f"alpha must be in (0, 1); got {alpha}")
    test = mcnemar_test(correct_a, correct_b)
    a = np.asarray(correct_a).astype(float)
    b = np.asarray(correct_b).astype(float)
    diff = a - b
    low, high = bootstrap_interval(
        diff, np.mean, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return PairedComparison(
        accuracy_interval(a.astype(bool), confidence),
        accuracy_interval(b.astype(bool), confidence),
        float(diff.mean()),
        low,
        high,
        test,
        alpha,
    )


@dataclass(frozen=True)
class Spread:
    """A median with the quartiles and range of repeated measurements (e.g. latency in ms)."""

    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float
    repeats: int

    def format(self, digits: int = 3) -> str:
        """``1.234 (IQR 1.200-1.300, n=10)``."""
        return (
            f"{self.median:.{digits}g} (IQR {self.q1:.{digits}g}-{self.q3:.{digits}g}, "
            f"n={self.repeats})"
        )


def spread(values: np.ndarray) -> Spread:
    """Median, quartiles, min and max of repeated measurements (NaNs are refused)."""
    data = np.asarray(values, dtype=float).ravel()
    if data.size == 0:
        raise StatsInputError("spread needs at least one measurement")
    if not np.isfinite(data).all():
        raise StatsInputError("measurements contain NaN or infinity")
    q1, median, q3 = np.quantile(data, [0.25, 0.5, 0.75])
    return Spread(
        float(median), float(q1), float(q3), float(data.min()), float(data.max()), data.size
    )
