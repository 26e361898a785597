"""The score every search selector maximises, and a cached, batched, parallel evaluator for it.

For a team T of a pool of M members, on the validation split::

    fitness(T) = w_acc * accuracy(T) + w_div * diversity(T) - w_size * |T| / M

where ``accuracy`` is the team's validation accuracy under the chosen voting rule and
``diversity`` the consensus focal-diversity score in [0, 1] (higher = more diverse; see
:mod:`ensprune.ensemble.focal`). Teams with fewer than 2 members, more than ``max_size`` members,
or a summed member cost above ``budget`` are infeasible: their fitness is ``-inf``.

The defaults (1, 0.1, 0.01) make accuracy the main criterion, with diversity as a regulariser
worth up to 10 accuracy points between the least and the most diverse team, and a small price
per member (the whole pool costs 1 point).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ensprune.ensemble.budget import within_budget
from ensprune.ensemble.diversity import METRICS
from ensprune.ensemble.focal import DEFAULT_METRICS, FocalScorer, normalize_mode
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.voting import DEFAULT_VOTING, VOTING, TeamVoter
from ensprune.errors import SpecError
from ensprune.parallel import parallel_map, resolve_n_jobs


@dataclass(frozen=True)
class Objective:
    """Weights of the selection fitness (see the module docstring).

    Attributes:
        accuracy: weight of the validation accuracy.
        diversity: weight of the consensus focal-diversity score.
        size: penalty weight of the team's share of the pool, |T| / M.
    """

    accuracy: float = 1.0
    diversity: float = 0.1
    size: float = 0.01

    def __post_init__(self) -> None:
        for name in ("accuracy", "diversity", "size"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise SpecError(
                    f"objective weight {name} must be a finite number >= 0; got {value}"
                )
        if self.accuracy == 0 and self.diversity == 0:
            raise SpecError("objective weights for accuracy and diversity cannot both be 0")


@dataclass
class TeamScores:
    """Scores of a batch of teams (all arrays have one entry per team, in batch order).

    Attributes:
        masks: (T, M) bool membership.
        accuracy: validation accuracy under the voting rule.
        diversity: consensus focal-diversity score in [0, 1] (higher = more diverse).
        focal: metric name -> raw focal diversity values.
        size: number of members.
        cost: summed member cost, or None when the pool has no costs.
        feasible: within the size limits and the budget.
        fitness: the objective; ``-inf`` for infeasible teams.
    """

    masks: np.ndarray
    accuracy: np.ndarray
    diversity: np.ndarray
    focal: dict[str, np.ndarray]
    size: np.ndarray
    cost: np.ndarray | None
    feasible: np.ndarray
    fitness: np.ndarray

    def frame(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per team: members (indices), names, size, cost, scores, fitness."""
        idx = [tuple(int(i) for i in np.flatnonzero(m)) for m in self.masks]
        data: dict[str, object] = {"members": idx}
        if names is not None:
            data["names"] = [",".join(names[i] for i in t) for t in idx]
        data["size"] = self.size
        if self.cost is not None:
            data["cost"] = self.cost
        data["val_accuracy"] = self.accuracy
        data["diversity"] = self.diversity
        for name, values in self.focal.items():
            data[f"focal_{name}"] = values
        data["fitness"] = self.fitness
        return pd.DataFrame(data)

    @classmethod
    def concat(cls, parts: Sequence[TeamScores]) -> TeamScores:
        """The scores of several batches, one after the other."""
        costs = [p.cost for p in parts]
        return cls(
            np.concatenate([p.masks for p in parts]),
            np.concatenate([p.accuracy for p in parts]),
            np.concatenate([p.diversity for p in parts]),
            {k: np.concatenate([p.focal[k] for p in parts]) for k in parts[0].focal},
            np.concatenate([p.size for p in parts]),
            None if any(c is None for c in costs) else np.concatenate(costs),  # type: ignore[arg-type]
            np.concatenate([p.feasible for p in parts]),
            np.concatenate([p.fitness for p in parts]),
        )

    def take(self, rows: np.ndarray) -> TeamScores:
        """The scores of a subset of rows (an index or bool array)."""
        return TeamScores(
            self.masks[rows],
            self.accuracy[rows],
            self.diversity[rows],
            {k: v[rows] for k, v in self.focal.items()},
            self.size[rows],
            None if self.cost is None else self.cost[rows],
            self.feasible[rows],
            self.fitness[rows],
        )


class _TeamComputer:
    """The picklable part of the evaluator: accuracy and focal values of a block of teams."""

    def __init__(self, voter: TeamVoter, scorer: FocalScorer, y: np.ndarray) -> None:
        self.voter = voter
        self.scorer = scorer
        self.y = y

    def __call__(
        self, masks: np.ndarray, per_focal: bool = False
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        acc = self.voter.accuracy(masks, self.y)
        raw = self.scorer.per_focal(masks)
        if per_focal:
            return acc, raw
        return acc, {k: np.nanmean(v, axis=1) for k, v in raw.items()}

    def reduced(self, masks: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self(masks, False)

    def full(self, masks: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self(masks, True)


@dataclass
class TeamEvaluator:
    """Scores teams of a validation :class:`PredictionSet` against an :class:`Objective`.

    Results are cached by team, so a search may ask for the same team again for free;
    :attr:`n_evaluated` counts the distinct teams computed. With ``n_jobs > 1`` new teams are
    split into blocks computed by joblib workers; results do not depend on ``n_jobs``.

    Args:
        preds: the validation predictions of the pool.
        voting: voting rule for team accuracy.
        metrics: focal-diversity metrics averaged into the diversity score.
        objective: fitness weights.
        max_size: largest feasible team (None: the pool size).
        budget: largest feasible summed member cost (None: no budget; needs ``preds.cost``).
        n_negatives, n_draws, seed: subsampling of the focal negatives (see FocalScorer).
        normalize: min-max normalisation of focal scores per (focal member, team size), one of
            ``"none"``, ``"candidates"`` (over each evaluated batch; meaningful when a batch holds
            every candidate of its sizes) and ``"all"`` (over all teams of the size, as the
            published HQ code; see :mod:`ensprune.ensemble.focal`).
        n_jobs: joblib workers for new teams.
    """

    preds: PredictionSet
    voting: str = DEFAULT_VOTING
    metrics: Sequence[str] = DEFAULT_METRICS
    objective: Objective = field(default_factory=Objective)
    max_size: int | None = None
    budget: float | None = None
    n_negatives: int | None = None
    n_draws: int = 1
    seed: int = 0
    normalize: str | bool = "none"
    n_jobs: int | None = None

    def __post_init__(self) -> None:
        m = self.preds.n_members
        self.max_size = m if self.max_size is None else int(self.max_size)
        if self.max_size < 2:
            raise SpecError(f"max_size must be at least 2; got {self.max_size}")
        self.max_size = min(self.max_size, m)
        if self.budget is not None and self.preds.cost is None:
            raise SpecError(
                "a cost budget needs member costs: add a 'cost' array (one per member) to the predictions"
            )
        # results are keyed by the registered names, whatever case the caller wrote
        self.metrics = tuple(METRICS.canonical(m) for m in self.metrics)
        self.voting = VOTING.canonical(self.voting)
        self.normalize = normalize_mode(self.normalize)
        scorer = FocalScorer(
            self.preds.labels,
            self.preds.y,
            self.metrics,
            n_negatives=self.n_negatives,
            n_draws=self.n_draws,
            seed=self.seed,
        )
        self._computer = _TeamComputer(
            TeamVoter(self.preds.proba, self.voting), scorer, self.preds.y
        )
        self._cache: dict[bytes, tuple[float, dict[str, float]]] = {}
        self._uncached = 0

    @property
    def n_members(self) -> int:
        return self.preds.n_members

    @property
    def n_evaluated(self) -> int:
        """Distinct teams computed so far (cache size, plus uncached normalised batches)."""
        return len(self._cache) + self._uncached

    def evaluate(self, masks: np.ndarray) -> TeamScores:
        """Scores of the teams in ``masks`` ((T, M) bool), in that order."""
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] != self.n_members:
            raise ValueError(f"masks must have shape (teams, {self.n_members}); got {masks.shape}")
        size = masks.sum(axis=1)
        valid = size >= 2
        acc = np.zeros(len(masks))
        raw = {m: np.full(len(masks), np.nan) for m in self.metrics}
        div = np.zeros(len(masks))
        if self.normalize != "none":
            rows = np.flatnonzero(valid)
            if rows.size:
                a, per = self._map(masks[rows], full=True)
                self._uncached += rows.size
                acc[rows] = a
                units = []
                for name, values in per.items():
                    raw[name][rows] = np.nanmean(values, axis=1)
                    unit = self._computer.scorer.normalized(
                        name, values, size[rows], self.normalize
                    )
                    units.append(np.nanmean(unit, axis=1))
                div[rows] = np.mean(units, axis=0)
        else:
            keys = [np.packbits(row).tobytes() for row in masks]
            todo: dict[bytes, int] = {}
            for r, key in enumerate(keys):
                if valid[r] and key not in self._cache and key not in todo:
                    todo[key] = r
            if todo:
                new_rows = np.fromiter(todo.values(), dtype=np.int64, count=len(todo))
                a, vals = self._map(masks[new_rows], full=False)
                for j, key in enumerate(todo):
                    self._cache[key] = (float(a[j]), {k: float(v[j]) for k, v in vals.items()})
            for r, key in enumerate(keys):
                if valid[r]:
                    acc[r], cached = self._cache[key]
                    for name, v in cached.items():
                        raw[name][r] = v
            units = [METRICS.get(name).score(raw[name]) for name in self.metrics]
            div = np.where(valid, np.mean(units, axis=0), 0.0)
        cost = None if self.preds.cost is None else masks.astype(np.float64) @ self.preds.cost
        feasible = valid & (size <= self.max_size)
        if self.budget is not None and cost is not None:
            feasible &= within_budget(cost, self.budget)
        w = self.objective
        fitness = w.accuracy * acc + w.diversity * div - w.size * size / self.n_members
        fitness = np.where(feasible, fitness, -np.inf)
        return TeamScores(masks, acc, div, raw, size, cost, feasible, fitness)

    def _map(self, masks: np.ndarray, *, full: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        jobs = resolve_n_jobs(self.n_jobs)
        if jobs == 1 or len(masks) < 2 * jobs:
            return self._computer(masks, full)
        fn = self._computer.full if full else self._computer.reduced
        parts = parallel_map(fn, np.array_split(masks, jobs), n_jobs=jobs)
        acc = np.concatenate([p[0] for p in parts])
        vals = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
        return acc, vals
