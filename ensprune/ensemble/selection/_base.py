"""Selector and Selection: the contract every sub-ensemble selector follows.

A selector is a dataclass of settings with a :meth:`Selector.select` method that takes the
validation :class:`PredictionSet` of a pool and returns a :class:`Selection`. It is a pure
function of the predictions and its settings: all randomness comes from ``seed`` (a numpy
Generator or a seeded :class:`random.Random`, never global state), so the same seed gives the
same team, whatever ``n_jobs``.

Settings shared by all selectors: ``voting`` (the rule behind every accuracy), ``max_size``,
``budget`` (largest summed member cost; needs ``preds.cost``), ``seed``, ``n_jobs`` and
``progress`` (one INFO line per step on the ``ensprune.ensemble`` logger). Search selectors add the focal-diversity and
objective settings of :class:`ObjectiveSelector`.

New selectors register with :func:`register_selector` and are then run by the shared
conformance tests and reachable from ``ensprune select --selector NAME``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from ensprune._registry import Registry
from ensprune.ensemble.budget import within_budget
from ensprune.ensemble.diversity import METRICS
from ensprune.ensemble.focal import DEFAULT_METRICS
from ensprune.ensemble.objective import Objective, TeamEvaluator, TeamScores
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.voting import DEFAULT_VOTING, VOTING, TeamVoter
from ensprune.errors import PredictionError, SpecError

S = TypeVar("S", bound="type[Selector]")


def _plugin_selector(name: str, obj: Any) -> type[Selector]:
    """An entry point of ``ensprune.selectors``: a Selector subclass, named by its entry point."""
    if not (isinstance(obj, type) and issubclass(obj, Selector)):
        raise TypeError(f"{obj!r} is not a Selector subclass")
    obj.name = name
    return obj


SELECTORS: Registry[type[Selector]] = Registry(
    "selector", entry_points="ensprune.selectors", adapt=_plugin_selector
)


def register_selector(name: str) -> Callable[[S], S]:
    """Class decorator: register a :class:`Selector` subclass under ``name``."""

    def decorator(cls: S) -> S:
        cls.name = name
        SELECTORS.register(name)(cls)
        return cls

    return decorator


@dataclass
class Selection:
    """A chosen sub-ensemble and how it was chosen.

    Attributes:
        selector: the selector's registry name.
        members: sorted indices of the chosen members in the pool.
        names: their names.
        val_accuracy: the team's validation accuracy under ``voting``.
        voting: the voting rule (``plurality``, ``majority``, ``soft`` or ``weighted``).
        scores: the numbers the choice was based on (e.g. ``fitness``, ``diversity``,
            ``focal_gd``, ``cost``).
        weights: per-member voting weights (aligned with ``members``; sum 1) for ``weighted``.
        table: a pandas DataFrame with the search's detail (HQ's kept and pruned teams,
            NSGA-II's Pareto front, the GA's per-generation log, ...), or None.
        n_evaluated: number of distinct teams scored during the search.
        params: the selector's settings.
        history: an evolutionary search's progress, one row per generation (``gen``,
            ``n_evaluated``, ``best``, ``mean``, ``median`` validation fitness; NSGA-II: of the
            first front's accuracy, with ``front_size``), or None.

    Example:
        >>> sel = HQSelector(beta=0.1, max_size=5).select(val_preds)
        >>> sel.members, sel.val_accuracy
        >>> sel.accuracy(test_preds)            # the report's job: test numbers
        >>> print(sel.to_json(indent=2))
    """

    selector: str
    members: list[int]
    names: list[str]
    val_accuracy: float
    voting: str
    scores: dict[str, float] = field(default_factory=dict)
    weights: list[float] | None = None
    table: pd.DataFrame | None = None
    n_evaluated: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    history: pd.DataFrame | None = None

    @property
    def size(self) -> int:
        return len(self.members)

    def predict(self, preds: PredictionSet) -> np.ndarray:
        """The team's predictions (N,) on another split of the same pool (-1 = abstained)."""
        if preds.n_members <= max(self.members):
            raise PredictionError(
                f"the selection refers to member {max(self.members)}, "
                f"but the predictions hold {preds.n_members} members"
            )
        sub = preds.proba[self.members]
        weights = np.ones(len(self.members)) if self.weights is None else np.asarray(self.weights)
        mask = (
            weights[None, :]
            if VOTING.get(self.voting).weighted
            else np.ones((1, len(self.members)))
        )
        return TeamVoter(sub, self.voting).predict(mask)[0]

    def accuracy(self, preds: PredictionSet) -> float:
        """The team's accuracy on ``preds`` (e.g. the test split) under its voting rule."""
        return float(np.mean(self.predict(preds) == preds.y))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (the table is summarised by its row count; the history, when
        there is one, is a list of per-generation records)."""
        summary = {
            "selector": self.selector,
            "members": [int(i) for i in self.members],
            "names": list(self.names),
            "size": self.size,
            "val_accuracy": float(self.val_accuracy),
            "voting": self.voting,
            "scores": {k: _json_number(v) for k, v in self.scores.items()},
            "weights": None if self.weights is None else [float(w) for w in self.weights],
            "n_evaluated": self.n_evaluated,
            "table_rows": None if self.table is None else len(self.table),
            "params": {k: _json_value(v) for k, v in self.params.items()},
        }
        if self.history is not None:
            summary["history"] = [
                {
                    str(k): int(v) if isinstance(v, int | np.integer) else _json_number(v)
                    for k, v in row.items()
                }
                for row in self.history.to_dict(orient="records")
            ]
        return summary

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)


def _json_number(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, float | np.floating):
        return _json_number(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


@dataclass(kw_only=True)
class Selector(ABC):
    """Base of all selectors: settings as dataclass fields, :meth:`select` to run.

    Attributes:
        voting: voting rule behind every accuracy (see :mod:`ensprune.ensemble.voting`).
        max_size: largest team (None: the selector's default, at most the pool size).
        budget: largest summed member cost (needs ``preds.cost``); None = no budget.
        seed: seeds every random choice.
        n_jobs: joblib workers for team evaluation (None: the active joblib config, else 1).
        progress: log one line per step (INFO, logger ``ensprune.ensemble``; the CLI shows
            them on stderr).
    """

    name: ClassVar[str] = ""
    #: whether the selector produces member weights (and so may use the ``weighted`` rule)
    makes_weights: ClassVar[bool] = False

    voting: str = DEFAULT_VOTING
    max_size: int | None = None
    budget: float | None = None
    seed: int = 0
    n_jobs: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        self.voting = VOTING.canonical(self.voting)  # names in any case; kept as registered
        rule = VOTING.get(self.voting)
        if rule.weighted and not self.makes_weights:
            raise SpecError(
                f"selector {self.name!r} does not produce member weights, so it cannot use the "
                f"'weighted' voting rule; use one of {[n for n in VOTING.names() if n != 'weighted']}"
            )
        if self.max_size is not None and self.max_size < 2:
            raise SpecError(
                f"max_size must be at least 2 (a team has 2+ members); got {self.max_size}"
            )
        if self.n_jobs == 0:
            raise SpecError(
                "n_jobs must be a positive number of workers or negative (-1 = all CPUs)"
            )
        if self.budget is not None and not (np.isfinite(self.budget) and self.budget >= 0):
            raise SpecError(f"budget must be a finite number >= 0; got {self.budget}")

    def select(self, preds: PredictionSet) -> Selection:
        """Choose a sub-ensemble of ``preds`` (validation predictions of the pool).

        Raises:
            PredictionError: fewer than 2 members.
            SpecError: a budget without member costs, or one that no pair of members fits.
        """
        if preds.n_members < 2:
            raise PredictionError(
                f"selection needs a pool of at least 2 members; the predictions hold {preds.n_members}"
            )
        if self.budget is not None:
            if preds.cost is None:
                raise SpecError(
                    "a cost budget needs member costs: add a 'cost' array (one per member) to the predictions"
                )
            cheapest = np.sort(preds.cost)[:2].sum()
            if not within_budget(float(cheapest), self.budget):
                raise SpecError(
                    f"budget {self.budget:g} is below the cost of the two cheapest members "
                    f"({cheapest:g}); no team of 2 fits"
                )
        return self._select(preds)

    @abstractmethod
    def _select(self, preds: PredictionSet) -> Selection:
        """The selector's algorithm; ``preds`` is validated."""

    def size_limit(self, preds: PredictionSet) -> int:
        """The largest team size allowed: ``max_size`` capped at the pool size."""
        return preds.n_members if self.max_size is None else min(self.max_size, preds.n_members)

    def params(self) -> dict[str, Any]:
        """The settings, as a dict (for reports and JSON)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def log(self, message: str) -> None:
        """One progress line, logged (only with ``progress=True``); the library never prints."""
        if self.progress:
            logging.getLogger("ensprune.ensemble").info("[%s] %s", self.name, message)

    def fits_budget(self, preds: PredictionSet, members: Sequence[int]) -> bool:
        """Whether the summed cost of ``members`` is within the budget (True without one)."""
        if self.budget is None or preds.cost is None:
            return True
        return within_budget(float(preds.cost[list(members)].sum()), self.budget)

    def can_grow(self, preds: PredictionSet, members: Sequence[int]) -> bool:
        """Whether ``members`` fit the budget and, when fewer than 2, leave room for a partner."""
        if not self.fits_budget(preds, members):
            return False
        if len(members) >= 2:
            return True
        return any(
            self.fits_budget(preds, [*members, j])
            for j in range(preds.n_members)
            if j not in members
        )

    def make_selection(
        self,
        preds: PredictionSet,
        members: Sequence[int] | np.ndarray,
        *,
        scores: dict[str, float] | None = None,
        weights: Sequence[float] | np.ndarray | None = None,
        table: pd.DataFrame | None = None,
        n_evaluated: int | None = None,
        voting: str | None = None,
        history: pd.DataFrame | None = None,
    ) -> Selection:
        """Build the :class:`Selection` of ``members``, computing its validation accuracy."""
        idx = sorted(int(i) for i in members)
        if len(set(idx)) != len(idx) or len(idx) < 2:
            raise RuntimeError(f"selector {self.name} produced an invalid team {idx}")
        rule = VOTING.canonical(voting or self.voting)
        w: list[float] | None = None
        if weights is not None:
            order = np.argsort(np.asarray(members))
            arr = np.asarray(weights, dtype=np.float64)[order]
            w = (arr / arr.sum()).tolist()
        team = np.asarray(w)[None, :] if w is not None else np.ones((1, len(idx)))
        acc = float(TeamVoter(preds.proba[idx], rule).accuracy(team, preds.y)[0])
        all_scores = dict(scores or {})
        if preds.cost is not None:
            all_scores.setdefault("cost", float(preds.cost[idx].sum()))
        return Selection(
            selector=self.name,
            members=idx,
            names=[preds.names[i] for i in idx],
            val_accuracy=acc,
            voting=rule,
            scores=all_scores,
            weights=w,
            table=table,
            n_evaluated=n_evaluated,
            params=self.params(),
            history=history,
        )


@dataclass(kw_only=True)
class ObjectiveSelector(Selector):
    """A selector that scores teams with focal diversity and the shared :class:`Objective`.

    Attributes:
        metrics: focal-diversity metrics averaged into the diversity score.
        w_accuracy, w_diversity, w_size: weights of the fitness
            ``w_accuracy * accuracy + w_diversity * diversity - w_size * |T| / M``.
        n_negatives: subsample this many negatives per focal member (None: all of them).
        n_draws: number of such subsamples, averaged.
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
    w_accuracy: float = 1.0
    w_diversity: float = 0.1
    w_size: float = 0.01
    n_negatives: int | None = None
    n_draws: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.metrics, str):
            self.metrics = tuple(m.strip() for m in self.metrics.split(",") if m.strip())
        self.metrics = tuple(METRICS.canonical(m) for m in self.metrics)
        if not self.metrics:
            raise SpecError("give at least one diversity metric")
        if len(set(self.metrics)) != len(self.metrics):
            raise SpecError(f"metrics listed twice: {list(self.metrics)}; give each once")
        _ = self.objective  # validates the weights

    @property
    def objective(self) -> Objective:
        return Objective(self.w_accuracy, self.w_diversity, self.w_size)

    def evaluator(self, preds: PredictionSet, *, normalize: str | bool = "none") -> TeamEvaluator:
        """A :class:`TeamEvaluator` for ``preds`` with this selector's settings."""
        return TeamEvaluator(
            preds,
            voting=self.voting,
            metrics=self.metrics,
            objective=self.objective,
            max_size=self.size_limit(preds),
            budget=self.budget,
            n_negatives=self.n_negatives,
            n_draws=self.n_draws,
            seed=self.seed,
            normalize=normalize,
            n_jobs=self.n_jobs,
        )

    @staticmethod
    def team_scores(scores: TeamScores, row: int) -> dict[str, float]:
        """The scores of one evaluated team as a flat dict for :class:`Selection`."""
        out = {
            "fitness": float(scores.fitness[row]),
            "diversity": float(scores.diversity[row]),
        }
        out.update({f"focal_{k}": float(v[row]) for k, v in scores.focal.items()})
        return out


def best_row(scores: TeamScores, among: np.ndarray | None = None) -> int:
    """Index of the fittest feasible team; ties go to the smaller team, then the earlier row.

    Raises:
        SpecError: no feasible team among the candidates.
    """
    rows = np.arange(len(scores.fitness)) if among is None else np.asarray(among)
    rows = rows[scores.feasible[rows]]
    if rows.size == 0:
        raise SpecError("no candidate team satisfies the size and budget limits")
    order = np.lexsort((rows, scores.size[rows], -scores.fitness[rows]))
    return int(rows[order[0]])
