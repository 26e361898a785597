"""Ensemble diversity metrics (Kuncheva & Whitaker 2003), computed for many teams at once.

Every metric is a function of a handful of counts over a set of samples, and those counts are
quadratic forms of the oracle matrix ``O`` (``O[n, i]`` = member i is right on sample n):

* ``N11[i, k] = sum_n O[n, i] O[n, k]``: both right (the diagonal holds each member's right count);
  ``N10``, ``N01`` and ``N00`` follow from it and the sample count.
* For a team with 0/1 mask ``b`` and ``l_n = O[n] @ b`` members right on sample n,
  ``sum_n l_n = b @ diag(N11)`` and ``sum_n l_n**2 = b @ N11 @ b``, which give the
  Kohavi-Wolpert variance and generalized diversity without a loop over samples.
* Cohen's kappa needs the predicted labels: ``A[i, k]`` = samples on which i and k predict the
  same class and ``E[i, k] = sum_c n_i(c) n_k(c)`` (products of class counts).

:class:`SampleStats` holds these (M, M) count matrices for one set of samples, built with a few
matrix products; a metric then scores a whole batch of teams, given as a (T, M) 0/1 matrix, with
one more product. Pairwise metrics average a pair matrix ``P`` over a team's pairs as
``(b @ P @ b - b @ diag(P)) / (L (L - 1))``. Counts are integers held in float64, exact below
2**53, so the batched values agree with a per-pair loop to rounding.

Metric values are the raw definitions (docs/metrics.md gives each formula, direction, range and
source, and how they relate to EnsembleBench's CK, 1 - BD, 1 - KW, 1 - GD); each :class:`Metric`
states its direction (which way is more diverse) and maps values onto a *diversity score* in
[0, 1] where higher always means more diverse, the scale the selectors maximise.

Conventions where a definition divides by zero (documented, never NaN):

* no samples at all: every metric takes its "identical members" value (CK 1, QS 1, others 0);
* CK with ``p_e = 1`` (both members predict one and the same class everywhere, so ``p_o = 1``):
  kappa = 1, complete agreement;
* QS with ``N11 N00 + N01 N10 = 0``: 1 when the pair never disagrees, else 0;
* GD when nobody fails (``p(1) = 0``): 0, no failure diversity to measure.

Example:
    >>> diversity("bd", [[0, 1, 2, 0], [0, 1, 1, 1]], [0, 1, 2, 2])
    0.5
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ensprune._registry import Registry
from ensprune.errors import PredictionError

Direction = Literal["lower", "higher"]
BatchFn = Callable[["SampleStats", np.ndarray], np.ndarray]
# (right (T, S) members right per sample, weights (S,), n = sum of weights, sizes (T,)) -> (T,)
CountFn = Callable[[np.ndarray, np.ndarray, float, np.ndarray], np.ndarray]

# largest (samples x teams) block of per-sample counts built at once (entropy only)
_BLOCK = 1 << 22


@dataclass(frozen=True)
class SampleStats:
    """Pair counts of M members over one (optionally weighted) set of samples.

    Attributes:
        n: number of samples (sum of the weights).
        both_right: ``N11`` (M, M); its diagonal is each member's number of right answers.
        agree: (M, M) samples with equal predicted labels, or None when labels were not kept.
        chance: (M, M) ``sum_c n_i(c) n_k(c)``, or None when labels were not kept.
        oracle: (S, M) float 0/1 oracle rows of the distinct samples (for per-sample metrics).
        weights: (S,) multiplicity of each row of ``oracle``.
    """

    n: float
    both_right: np.ndarray
    agree: np.ndarray | None
    chance: np.ndarray | None
    oracle: np.ndarray
    weights: np.ndarray

    @property
    def right(self) -> np.ndarray:
        """(M,) right answers per member."""
        return np.diag(self.both_right)

    @classmethod
    def from_labels(
        cls,
        labels: np.ndarray,
        y: np.ndarray,
        weights: np.ndarray | None = None,
        *,
        with_labels: bool = True,
        n_classes: int | None = None,
    ) -> SampleStats:
        """Count statistics of predicted ``labels`` (M, S) against ``y`` (S,).

        Args:
            labels: int array (M, S), one row of predicted labels per member.
            y: int array (S,) of true labels.
            weights: optional non-negative multiplicity per sample (e.g. from resampling).
            with_labels: also count label agreement (needed by Cohen's kappa only).
            n_classes: number of classes; inferred from the data when None.
        """
        labels = np.asarray(labels)
        y = np.asarray(y)
        w = np.ones(y.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        oracle = (labels == y[None, :]).T.astype(np.float64)
        wo = oracle * w[:, None]
        both_right = wo.T @ oracle
        agree = chance = None
        if with_labels:
            m = labels.shape[0]
            if n_classes is None:
                n_classes = int(max(labels.max(initial=0), y.max(initial=0))) + 1
            agree = np.zeros((m, m))
            counts = np.zeros((m, n_classes))
            # one product per class rather than per pair: A = sum_c H_c^T diag(w) H_c
            for c in np.unique(labels):
                hot = (labels == c).T.astype(np.float64)
                agree += (hot * w[:, None]).T @ hot
                counts[:, c] = w @ hot
            chance = counts @ counts.T
        return cls(float(w.sum()), both_right, agree, chance, oracle, w)


@dataclass(frozen=True)
class Metric:
    """A diversity metric and how to read it.

    Attributes:
        name: short registry name (``ck``, ``bd``, ...).
        title: the metric's full name.
        direction: ``"lower"`` or ``"higher"``: which way is more diverse.
        pairwise: whether the value is a mean over the team's pairs.
        needs_labels: whether it uses the predicted labels, not only right/wrong (CK).
        bounds: the range of raw values, used to map them onto the [0, 1] diversity score.
        batch: ``batch(stats, teams) -> values`` for a (T, M) 0/1 team matrix (each team >= 2).
        from_counts: for non-pairwise metrics, the same values from each team's per-sample
            count of members right, ``from_counts(right, weights, n, sizes)`` with ``right``
            (T, S); lets large pools skip the (M, M) count matrices. None for pairwise metrics.
    """

    name: str
    title: str
    direction: Direction
    pairwise: bool
    needs_labels: bool
    bounds: tuple[float, float]
    batch: BatchFn
    from_counts: CountFn | None = None

    @property
    def description(self) -> str:
        """One line: the full name, kind and direction."""
        kind = "pairwise, mean over pairs" if self.pairwise else "non-pairwise"
        return f"{self.title} ({kind}); {self.direction} is more diverse"

    def score(self, values: ArrayLike) -> np.ndarray:
        """Map raw values onto [0, 1] with 1 = most diverse (an affine, order-keeping map)."""
        lo, hi = self.bounds
        unit = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
        return unit if self.direction == "higher" else 1.0 - unit


METRICS: Registry[Metric] = Registry("metric")


def _metric(
    name: str,
    title: str,
    direction: Direction,
    *,
    pairwise: bool,
    bounds: tuple[float, float],
    needs_labels: bool = False,
    from_counts: CountFn | None = None,
) -> Callable[[BatchFn], BatchFn]:
    """Register the decorated batch function as metric ``name``."""

    def decorator(fn: BatchFn) -> BatchFn:
        metric = Metric(name, title, direction, pairwise, needs_labels, bounds, fn, from_counts)
        METRICS.register(name)(metric)
        return fn

    return decorator


def _safe_div(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """num / den with ``fill`` where den == 0."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, fill, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _team_sizes(teams: np.ndarray) -> np.ndarray:
    return np.asarray(teams.sum(axis=1), dtype=np.float64)


def _pair_mean(pairs: np.ndarray, teams: np.ndarray) -> np.ndarray:
    """Mean of a symmetric pair matrix over each team's unordered pairs of distinct members."""
    size = _team_sizes(teams)
    total = ((teams @ pairs) * teams).sum(axis=1) - teams @ np.diag(pairs)
    return np.asarray(total / (size * (size - 1)), dtype=np.float64)


def _pair_counts(stats: SampleStats) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N11, N10, N01, N00), each (M, M); N10[i, k] = i right and k wrong."""
    n11 = stats.both_right
    right = stats.right
    n10 = right[:, None] - n11
    n01 = right[None, :] - n11
    n00 = stats.n - right[:, None] - right[None, :] + n11
    return n11, n10, n01, n00


def _l_moments(stats: SampleStats, teams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per team: sum_n l_n and sum_n l_n**2, l_n = members right on sample n."""
    s1 = teams @ stats.right
    s2 = ((teams @ stats.both_right) * teams).sum(axis=1)
    return s1, s2


@_metric("ck", "Cohen's kappa", "lower", pairwise=True, bounds=(-1.0, 1.0), needs_labels=True)
def cohen_kappa(stats: SampleStats, teams: np.ndarray) -> np.ndarray:
    """Mean over pairs of kappa = (p_o - p_e) / (1 - p_e) on predicted labels.

    In counts: ``(n A - E) / (n**2 - E)``; ``p_e = 1`` (zero denominator) gives 1.
    """
    if stats.agree is None or stats.chance is None:
        raise ValueError("Cohen's kappa needs SampleStats built with with_labels=True")
    kappa = _safe_div(stats.n * stats.agree - stats.chance, stats.n**2 - stats.chance, 1.0)
    return _pair_mean(kappa, teams)


@_metric("bd", "binary disagreement", "higher", pairwise=True, bounds=(0.0, 1.0))
def binary_disagreement(stats: SampleStats, teams: np.ndarray) -> np.ndarray:
    """Mean over pairs of (N01 + N10) / N."""
    _, n10, n01, _ = _pair_counts(stats)
    return _pair_mean(_safe_div(n01 + n10, np.asarray(stats.n), 0.0), teams)


@_metric("qs", "Q-statistic", "lower", pairwise=True, bounds=(-1.0, 1.0))
def q_statistic(stats: SampleStats, teams: np.ndarray) -> np.ndarray:
    """Mean over pairs of (N11 N00 - N01 N10) / (N11 N00 + N01 N10).

    A zero denominator gives 1 when the pair never disagrees (identical right/wrong pattern),
    else 0 (the association is undetermined).
    """
    n11, n10, n01, n00 = _pair_counts(stats)
    fill = np.where(n01 + n10 == 0, 1.0, 0.0)
    den = n11 * n00 + n01 * n10
    q = np.where(den != 0, _safe_div(n11 * n00 - n01 * n10, den, 0.0), fill)
    return _pair_mean(q, teams)


@_metric("df", "double fault", "lower", pairwise=True, bounds=(0.0, 1.0))
def double_fault(stats: SampleStats, teams: np.ndarray) -> np.ndarray:
    """Mean over pairs of N00 / N, the share of samples both members get wrong."""
    *_, n00 = _pair_counts(stats)
    return _pair_mean(_safe_div(n00, np.asarray(stats.n), 0.0), teams)


def _moments_of_counts(right: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per team: sum_n w_n l_n and sum_n w_n l_n**2 from per-sample counts ``right`` (T, S)."""
    return right @ weights, (right * right) @ weights


def _kw(size: np.ndarray, s1: np.ndarray, s2: np.ndarray, n: float) -> np.ndarray:
    return _safe_div(size * s1 - s2, n * size**2, 0.0)


def _kw_counts(right: np.ndarray, weights: np.ndarray, n: float, size: np.ndarray) -> np.ndarray:
    return _kw(size, *_moments_of_counts(right, weights), n)


@_metric(
    "kw",
    "Kohavi-Wolpert variance",
    "higher",
    pairwise=False,
    bounds=(0.0, 0.25),
    from_counts=_kw_counts,
)
def kohavi_wolpert(stats: SampleStats, teams: np.ndarray) -> np.ndarray:
    """(1 / (N L**2)) sum_n l_n (L - l_n); at most 1/4."""
    return _kw(_team_sizes(teams), *_l_moments(stats, teams), stats.n)


def _gd(size: np.ndarray, s1: np.ndarray, s2: np.ndarray, n: float) -> np.ndarray:
    f1 = n * size - s1
    f2 = n * size**2 - 2 * size * s1 + s2
    ratio = _safe_div(f2 - f1, (size - 1) * f1, 1.0)
    return np.asarray(1.0 - ratio, dtype=np.float64)


def _gd_counts(right: np.ndarray, weights: np.ndarray, n: float, size: np.ndarray) -> np.ndarray:
    return _gd(size, *_moments_of_counts(right, weights), n)


@_metric(
    "gd",
    "generalized diversity",
    "higher",
    pairwise=False,
    bounds=(0.0, 1.0),
    from_counts=_gd_counts,
)
def generalized_diversity(stats: SampleStats, teams: np.ndarray) -> np.ndarray:
    """1 - p(2) / p(1) over the distribution of the number of failing members.

    With f_n = L - l_n failures on sample n: ``p(1) = sum f / (N L)`` and
    ``p(2) = sum f (f - 1) / (N L (L - 1))``, so ``GD = 1 - sum f(f-1) / ((L-1) sum f)``.
    Nobody failing (``p(1) = 0``) gives 0.
    """
    return _gd(_team_sizes(teams), *_l_moments(stats, teams), stats.n)


def _entropy_counts(
    right: np.ndarray, weights: np.ndarray, n: float, size: np.ndarray
) -> np.ndarray:
    spread = np.minimum(right, size[:, None] - right)
    return _safe_div(spread @ weights, n * np.floor(size / 2), 0.0)


@_metric(
    "entropy",
    "entropy measure E",
    "higher",
    pairwise=False,
    bounds=(0.0, 1.0),
    from_counts=_entropy_counts,
)
def entropy(stats: SampleStats, teams: np.ndarray) -> np.ndarray:
    """(1/N) sum_n min(l_n, L - l_n) / (L - ceil(L/2)); 0 = unanimous, 1 = evenly split."""
    size = _team_sizes(teams)
    out = np.zeros(teams.shape[0])
    rows = max(1, _BLOCK // max(1, stats.oracle.shape[0]))
    for start in range(0, teams.shape[0], rows):
        block = teams[start : start + rows]
        right = block @ stats.oracle.T  # (T, S) members right per sample
        out[start : start + rows] = _entropy_counts(
            right, stats.weights, stats.n, size[start : start + rows]
        )
    return out


def check_labels(
    labels: ArrayLike, y: ArrayLike, *, min_members: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Validate predicted labels (L, N) and true labels (N,); return them as int64 arrays.

    Raises:
        PredictionError: wrong shapes, non-integer or negative labels, fewer than
            ``min_members`` rows.
    """
    lab = np.asarray(labels)
    yy = np.asarray(y)
    if lab.ndim != 2:
        raise PredictionError(
            f"labels must have shape (members, samples), one row per member; got shape {lab.shape}"
        )
    if yy.ndim != 1 or yy.shape[0] != lab.shape[1]:
        raise PredictionError(
            f"y must have shape ({lab.shape[1]},) to match labels of shape {lab.shape}; got {yy.shape}"
        )
    if lab.shape[0] < min_members:
        raise PredictionError(f"need at least {min_members} members; got {lab.shape[0]}")
    for name, arr in (("labels", lab), ("y", yy)):
        if arr.size and not (
            np.issubdtype(arr.dtype, np.integer)
            or (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)))
        ):
            raise PredictionError(f"{name} must hold integer class labels; got dtype {arr.dtype}")
        if arr.size and arr.min() < 0:
            raise PredictionError(f"{name} must hold non-negative class labels; found {arr.min()}")
    return lab.astype(np.int64), yy.astype(np.int64)


def diversity(metric: str, labels: ArrayLike, y: ArrayLike) -> float:
    """The value of ``metric`` for the team whose predicted labels are ``labels``.

    Args:
        metric: a registered metric name (``ck``, ``bd``, ``kw``, ``gd``, ``qs``, ``df``, ``entropy``).
        labels: (L, N) predicted labels, one row per member, L >= 2.
        y: (N,) true labels.

    Returns:
        The raw value as docs/metrics.md defines it (CK: mean Cohen's kappa over pairs, etc.).

    Example:
        >>> y = [0, 1, 2, 0, 1, 2, 0, 1]
        >>> labels = [[0, 1, 2, 0, 1, 2, 0, 1], [0, 1, 1, 0, 2, 2, 1, 1], [1, 1, 2, 2, 1, 2, 0, 0]]
        >>> diversity("kw", labels, y)
        0.16666666666666666
    """
    spec = METRICS.get(metric)
    lab, yy = check_labels(labels, y)
    stats = SampleStats.from_labels(lab, yy, with_labels=spec.needs_labels)
    return float(spec.batch(stats, np.ones((1, lab.shape[0])))[0])
