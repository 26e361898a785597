"""Focal diversity: a team's diversity measured where each of its members fails.

For a team T and a member F of T (the *focal* member), take F's negative samples (where F is
wrong, on a validation split) and compute the metric of T on those samples only; the focal
diversity of T is the plain mean of these values over F in T. docs/metrics.md defines every
metric, its direction and how ensprune differs from the published EnsembleBench / HQ code.

:class:`FocalScorer` computes, once per focal member, the pair counts of *all* M members on that
member's negatives (:class:`~ensprune.ensemble.diversity.SampleStats`); any batch of teams is then
scored with a few matrix products, so thousands of teams cost milliseconds.

Options (all off by default):

* ``n_negatives`` / ``n_draws``: instead of all negatives, draw ``n_negatives`` of them with
  replacement, ``n_draws`` times, from a seeded generator, and average the metric over draws
  (the published code uses 100 x 3).
* ``normalize``: min-max normalise each focal member's scores per team size before averaging
  (:data:`NORMALIZE_MODES`): ``"candidates"`` over the teams scored together in one batch (for
  HQ: the candidates that survived the smaller sizes), ``"all"`` over all teams of that size, as
  the published HQ code does.

A member without negative samples contributes the metric's value on an empty sample set, the
"identical members" convention of :mod:`ensprune.ensemble.diversity`.

Orientation: :meth:`FocalScorer.values` returns raw metric values; :meth:`FocalScorer.scores`
maps them onto [0, 1] with higher = more diverse (e.g. ``(1 - kappa) / 2``), and
:meth:`FocalScorer.consensus` averages these scores over several metrics, the single number the
selectors maximise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ensprune.ensemble.diversity import METRICS, Metric, SampleStats, check_labels
from ensprune.errors import PredictionError, SpecError

#: the focal metrics selectors use unless told otherwise: the entropy measure alone, chosen by a
#: measurement on real pools (docs/metrics.md, "The measured choice"); before, ("ck","bd","kw","gd")
DEFAULT_METRICS: tuple[str, ...] = ("entropy",)
#: min-max normalisation of focal scores per (focal member, team size): off, over the teams
#: scored together (HQ: the surviving candidates of a size), or over all teams of the size
NORMALIZE_MODES: tuple[str, ...] = ("none", "candidates", "all")
# teams per block when scoring all teams of a size for normalize="all"
_BOUNDS_BLOCK = 4096
# pools at least this large score non-pairwise metrics from per-sample counts instead of
# per-focal (M, M) count matrices, which cost M**2 per negative sample to build and hold
# (a joint menu of 512 operating points on 10,000 samples: minutes and gigabytes)
_COUNT_PATH_MIN_MEMBERS = 48
# largest (teams x samples) block of per-sample counts built at once on the count path
_COUNT_BLOCK = 1 << 22


def normalize_mode(value: str | bool) -> str:
    """The canonical normalisation mode; ``True`` / ``False`` mean ``"candidates"`` / ``"none"``.

    (``True`` was the only way to normalise before the modes existed, and meant ``"candidates"``.)

    Raises:
        SpecError: anything else.
    """
    if isinstance(value, bool):
        return "candidates" if value else "none"
    mode = str(value).strip().lower()
    if mode not in NORMALIZE_MODES:
        raise SpecError(
            f"normalize must be one of {', '.join(NORMALIZE_MODES)} ('all' is the published HQ); "
            f"got {value!r}"
        )
    return mode


def team_masks(teams: ArrayLike | Sequence[Sequence[int]], n_members: int) -> np.ndarray:
    """Teams as a (T, M) float 0/1 matrix.

    Args:
        teams: a bool (or float 0/1) array (T, M) of membership masks, or a sequence of teams
            given as lists of member indices (integers).
        n_members: M, the pool size.

    Raises:
        PredictionError: an index out of range, a repeated member, or a team of fewer than 2.
    """
    if isinstance(teams, np.ndarray) and (teams.dtype == bool or teams.dtype.kind == "f"):
        if teams.ndim != 2 or teams.shape[1] != n_members:
            raise PredictionError(
                f"team masks must have shape (teams, {n_members}); got {teams.shape}"
            )
        masks = teams.astype(np.float64)
    else:
        rows = [np.asarray(t, dtype=np.int64).reshape(-1) for t in teams]  # type: ignore[union-attr]
        masks = np.zeros((len(rows), n_members))
        for r, idx in enumerate(rows):
            if idx.size and (idx.min() < 0 or idx.max() >= n_members):
                raise PredictionError(
                    f"team {idx.tolist()} has a member index outside [0, {n_members})"
                )
            if np.unique(idx).size != idx.size:
                raise PredictionError(f"team {idx.tolist()} lists a member twice")
            masks[r, idx] = 1.0
    if masks.shape[0] and masks.sum(axis=1).min() < 2:
        raise PredictionError("every team needs at least 2 members")
    return masks


class FocalScorer:
    """Focal diversity of teams drawn from a pool of M members, on one split.

    Args:
        labels: (M, N) predicted labels of the pool on the split (validation, never test).
        y: (N,) true labels.
        metrics: registered metric names to compute (any case; results are keyed by the
            registered name, e.g. ``"CK"`` -> ``"ck"``).
        n_negatives: draw this many negatives per focal member (with replacement) instead of
            using all of them.
        n_draws: number of such draws, averaged.
        seed: seeds the draws.

    Example:
        >>> scorer = FocalScorer(preds.labels, preds.y, metrics=("gd", "kw"))
        >>> scorer.values([[0, 1, 2], [1, 3]])["gd"]      # raw focal GD of two teams
        >>> scorer.consensus([[0, 1, 2], [1, 3]])         # mean [0, 1] score over gd and kw
    """

    def __init__(
        self,
        labels: ArrayLike,
        y: ArrayLike,
        metrics: Sequence[str] = DEFAULT_METRICS,
        *,
        n_negatives: int | None = None,
        n_draws: int = 1,
        seed: int = 0,
    ) -> None:
        lab, yy = check_labels(labels, y, min_members=1)
        if not metrics:
            raise SpecError("give at least one diversity metric")
        self.metrics: tuple[Metric, ...] = tuple(METRICS.get(m) for m in metrics)
        if len({m.name for m in self.metrics}) != len(self.metrics):
            raise SpecError(f"metrics listed twice: {list(metrics)}")
        if n_negatives is not None and n_negatives < 1:
            raise SpecError(f"n_negatives must be >= 1 or None (all negatives); got {n_negatives}")
        if n_draws < 1:
            raise SpecError(f"n_draws must be >= 1; got {n_draws}")
        if n_negatives is None and n_draws != 1:
            raise SpecError("n_draws applies to subsampled negatives; set n_negatives as well")
        self.n_members = int(lab.shape[0])
        self.n_negatives = n_negatives
        self._bounds: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        n_classes = int(max(lab.max(initial=0), yy.max(initial=0))) + 1
        with_labels = any(m.needs_labels for m in self.metrics)
        rng = np.random.default_rng(seed)
        wrong = lab != yy[None, :]
        self.n_negatives_per_member = wrong.sum(axis=1)
        # stats[f][d]: all members' counts on focal member f's negatives, draw d
        self._stats: list[list[SampleStats]] = []
        # the count path: (samples, weights, n) of each focal member's draws and the pool's
        # oracle (M, N), from which one product gives every team's per-sample counts
        self._draws: list[list[tuple[np.ndarray, np.ndarray, float]]] = []
        self._oracle: np.ndarray | None = None
        if self.n_members >= _COUNT_PATH_MIN_MEMBERS and all(
            m.from_counts is not None for m in self.metrics
        ):
            self._oracle = (~wrong).astype(np.float32)
        for f in range(self.n_members):
            neg = np.flatnonzero(wrong[f])
            draws: list[np.ndarray | None] = [None]
            if n_negatives is not None:
                draws = [
                    np.bincount(rng.integers(0, neg.size, n_negatives), minlength=neg.size)
                    if neg.size
                    else np.zeros(0)
                    for _ in range(n_draws)
                ]
            if self._oracle is not None:
                self._draws.append(
                    [
                        (neg, np.ones(neg.size), float(neg.size))
                        if w is None
                        else (neg[w > 0], w[w > 0].astype(np.float64), float(w.sum()))
                        for w in draws
                    ]
                )
                continue
            per_draw = []
            for w in draws:
                keep = neg if w is None else neg[w > 0]
                weights = None if w is None else w[w > 0].astype(np.float64)
                per_draw.append(
                    SampleStats.from_labels(
                        lab[:, keep],
                        yy[keep],
                        weights,
                        with_labels=with_labels,
                        n_classes=n_classes,
                    )
                )
            self._stats.append(per_draw)

    def per_focal(self, teams: ArrayLike | Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Raw metric values of each team on each focal member's negatives.

        Returns:
            metric name -> (T, M) array; entry (t, f) is the metric of team t on member f's
            negatives when f is in team t, NaN otherwise.
        """
        masks = team_masks(teams, self.n_members)
        out = {m.name: np.full(masks.shape, np.nan) for m in self.metrics}
        if self._oracle is not None:
            self._per_focal_from_counts(masks, self._oracle, out)
            return out
        for f, per_draw in enumerate(self._stats):
            rows = np.flatnonzero(masks[:, f])
            if rows.size == 0:
                continue
            sub = masks[rows]
            for metric in self.metrics:
                vals = np.mean([metric.batch(st, sub) for st in per_draw], axis=0)
                out[metric.name][rows, f] = vals
        return out

    def _per_focal_from_counts(
        self, masks: np.ndarray, oracle: np.ndarray, out: dict[str, np.ndarray]
    ) -> None:
        """:meth:`per_focal` for large pools: one product gives every team's members-right
        count per sample; each focal member then reads its negatives' columns. Counts are
        integers, exact in float32, so the values equal the matrix path's.
        """
        sizes = masks.sum(axis=1)
        rows_per_block = max(1, _COUNT_BLOCK // max(1, oracle.shape[1]))
        for start in range(0, masks.shape[0], rows_per_block):
            block = masks[start : start + rows_per_block] > 0
            right = block.astype(np.float32) @ oracle  # (t, N) members right per sample
            for f in np.flatnonzero(block.any(axis=0)):
                rows = np.flatnonzero(block[:, f])
                size = sizes[start + rows]
                for metric in self.metrics:
                    assert metric.from_counts is not None  # the count path's precondition
                    vals = [
                        metric.from_counts(right[np.ix_(rows, keep)], weights, n, size)
                        for keep, weights, n in self._draws[f]
                    ]
                    out[metric.name][start + rows, f] = np.mean(vals, axis=0)

    def values(self, teams: ArrayLike | Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Raw focal diversity per metric: metric name -> (T,) mean over the team's members."""
        return {name: np.nanmean(v, axis=1) for name, v in self.per_focal(teams).items()}

    def scores(
        self, teams: ArrayLike | Sequence[Sequence[int]], *, normalize: str | bool = "none"
    ) -> dict[str, np.ndarray]:
        """Focal diversity per metric on [0, 1], higher = more diverse.

        Args:
            normalize: one of :data:`NORMALIZE_MODES`: min-max normalise each focal member's
                scores per team size over this batch (``"candidates"``) or over all teams of the
                size (``"all"``) before averaging; a group whose scores are all equal gets 0.5.
        """
        masks = team_masks(teams, self.n_members)
        sizes = masks.sum(axis=1).astype(np.int64)
        return {
            name: np.nanmean(self.normalized(name, per, sizes, normalize), axis=1)
            for name, per in self.per_focal(masks).items()
        }

    def normalized(
        self, metric: str, per_focal: np.ndarray, sizes: np.ndarray, normalize: str | bool
    ) -> np.ndarray:
        """[0, 1] scores of raw (T, M) per-focal values of ``metric``, normalised as asked."""
        name = METRICS.canonical(metric)
        unit = METRICS.get(name).score(per_focal)
        mode = normalize_mode(normalize)
        if mode == "none":
            return unit
        if mode == "candidates":
            return _minmax_per_size(unit, sizes)
        return _minmax_per_size(unit, sizes, lambda size: self.size_bounds(size)[name])

    def size_bounds(self, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per metric, each focal member's lowest and highest [0, 1] score over ALL teams of
        ``size`` members that contain it (the range ``normalize="all"`` scales by); cached.
        """
        if size not in self._bounds:
            m = self.n_members
            lo = {metric.name: np.full(m, np.inf) for metric in self.metrics}
            hi = {metric.name: np.full(m, -np.inf) for metric in self.metrics}
            for block in _all_teams(m, size):
                for name, per in self.per_focal(block).items():
                    unit = METRICS.get(name).score(per)
                    lo[name] = np.minimum(lo[name], np.where(np.isnan(unit), np.inf, unit).min(0))
                    hi[name] = np.maximum(hi[name], np.where(np.isnan(unit), -np.inf, unit).max(0))
            self._bounds[size] = {name: (lo[name], hi[name]) for name in lo}
        return self._bounds[size]

    def consensus(
        self, teams: ArrayLike | Sequence[Sequence[int]], *, normalize: str | bool = "none"
    ) -> np.ndarray:
        """Mean of :meth:`scores` over the metrics: one [0, 1] diversity score per team."""
        per_metric = self.scores(teams, normalize=normalize)
        return np.mean(np.stack(list(per_metric.values())), axis=0)


def _all_teams(n_members: int, size: int) -> Iterator[np.ndarray]:
    """All teams of ``size`` members as (block, M) float masks, in lexicographic order."""
    combos = itertools.combinations(range(n_members), size)
    while chunk := list(itertools.islice(combos, _BOUNDS_BLOCK)):
        masks = np.zeros((len(chunk), n_members))
        masks[np.arange(len(chunk))[:, None], np.asarray(chunk)] = 1.0
        yield masks


def _minmax_per_size(
    unit: np.ndarray,
    sizes: np.ndarray,
    bounds: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Min-max normalise the columns of ``unit`` (T, M; NaN = not in team) within each size.

    Args:
        bounds: size -> (lo, hi) per column; None takes the range of the rows of that size.
    """
    out = np.full_like(unit, np.nan)
    for size in np.unique(sizes):
        rows = sizes == size
        block = unit[rows]
        if bounds is None:
            lo = np.where(np.isnan(block), np.inf, block).min(axis=0)
            hi = np.where(np.isnan(block), -np.inf, block).max(axis=0)
        else:
            lo, hi = bounds(int(size))
        span = hi - lo
        with np.errstate(invalid="ignore"):
            scaled = np.where(span > 0, (block - lo) / np.where(span > 0, span, 1.0), 0.5)
        out[rows] = np.where(np.isnan(block), np.nan, scaled)
    return out


def focal_diversity(metric: str, labels: ArrayLike, y: ArrayLike, team: Sequence[int]) -> float:
    """Focal diversity of ``team`` under ``metric``, with all negatives.

    The plain mean, over the team's members F, of the metric of the team computed on F's
    negative samples (where ``labels[F] != y``).

    Args:
        metric: registered metric name (``ck``, ``bd``, ``kw``, ``gd``, ``qs``, ``df``, ``entropy``).
        labels: (L, N) predicted labels, one row per member of the pool.
        y: (N,) true labels.
        team: indices of the team's rows in ``labels`` (at least 2).

    Returns:
        The raw metric value (same scale and direction as :func:`diversity`).
    """
    name = METRICS.canonical(metric)
    lab, yy = check_labels(labels, y, min_members=1)
    scorer = FocalScorer(lab, yy, metrics=(name,))
    return float(scorer.values([list(team)])[name][0])
