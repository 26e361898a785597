"""Joint selection: every member's operating point and the team, chosen together under a budget.

Input: a :class:`~ensprune.ensemble.menu.Menu` of P operating points of M members (each member's
dense network and pruned versions, with a cost each). A *choice* gives every member "out" or
exactly one of its points; it is feasible when 2 .. ``max_size`` members are in and the summed
cost of the chosen points is within ``budget``. The choice maximises the same validation objective
as every other selector (:mod:`ensprune.ensemble.objective`)::

    w_accuracy * accuracy + w_diversity * focal diversity - w_size * (#members in) / M

computed on the chosen points' predictions with the selector's voting rule. So a team of five
95 %-sparse networks competes with two 50 %-sparse ones at the same cost, and a member weak alone
can enter as the team's most diverse voice.

Searches (``search=``, a registry like the selectors'):

- ``ga``: DEAP GA on integer genes, one per member (0 = out, k = the member's k-th point,
  cheapest first), two-point crossover, a mutation giving a gene another value, and a repair
  that drops members or moves them to cheaper points until the budget holds (the shared toolkit
  :mod:`~ensprune.ensemble.selection._evolve`), then hill climbing (change one member's point, or
  swap a member in for one out).
- ``nsga2``: NSGA-II over (validation accuracy, total cost) on the same genes; the front of every
  choice evaluated is returned, and the pick is the fittest choice evaluated (then hill-climbed).
- ``exhaustive``: every choice (guarded by ``max_combinations``), the reference; it also returns
  the exact accuracy-cost front.

``ga`` and ``nsga2`` record their progress in ``Selection.history``, one row per generation
(``gen``, ``n_evaluated``, ``best``, ``mean``, ``median``; ``nsga2``'s are its first front's
validation accuracy, with ``front_size`` and ``best_fitness``, the fittest choice so far), and
with ``progress=True`` log one INFO line per generation (logger ``ensprune.ensemble``).

With one point per member this is the ordinary team selection: ``ga`` returns the same team as
:class:`~ensprune.ensemble.selection.genetic.GeneticSelector` for the same seed and settings.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from ensprune._registry import Registry
from ensprune.ensemble.budget import within_budget
from ensprune.ensemble.menu import Menu
from ensprune.ensemble.objective import Objective, TeamEvaluator
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import ObjectiveSelector, Selection, _json_value
from ensprune.ensemble.selection._evolve import (
    ChoiceSpace,
    GAConfig,
    cx_two_point,
    evolve,
    evolve_pareto,
    hill_climb,
    mut_choice,
)
from ensprune.errors import PredictionError, SpecError

__all__ = [
    "JOINT_SEARCHES",
    "JointProblem",
    "JointSelection",
    "JointSelector",
    "accuracy_front",
    "best_single_point",
]

logger = logging.getLogger("ensprune.ensemble")


def best_single_point(menu: Menu, budget: float | None) -> tuple[int, float] | None:
    """The point with the highest validation accuracy that fits ``budget`` alone (ties: the
    cheaper, then the earlier point), as ``(index, accuracy)``; None when no point fits.

    A team needs two members; under a tight budget (latency of small networks is mostly fixed
    overhead) one uncompressed point can beat every team that fits, which a user should know.
    """
    accuracy = (menu.points.labels == menu.points.y[None, :]).mean(axis=1)
    rows = np.flatnonzero(within_budget(menu.cost, budget))
    if rows.size == 0:
        return None
    best = rows[np.lexsort((rows, menu.cost[rows], -accuracy[rows]))[0]]
    return int(best), float(accuracy[best])


@dataclass
class JointSelection:
    """A joint choice: which operating points (at most one per member) form the team.

    Attributes:
        search: the search that found it (``ga``, ``nsga2``, ``exhaustive``).
        selection: the team as a :class:`Selection` over the menu's points (its ``members``
            are point indices); ``selection.accuracy(test_menu.points)`` gives test accuracy.
        members: the member of each chosen point, aligned with ``points``.
        total_cost: summed cost of the chosen points.
        cost_name: what the cost measures.
        front: accuracy-cost front (``nsga2``: of every choice evaluated; ``exhaustive``: exact),
            one row per choice, cheapest first; None for ``ga``.
    """

    search: str
    selection: Selection
    members: list[int]
    total_cost: float
    cost_name: str
    front: pd.DataFrame | None = None

    @property
    def points(self) -> list[int]:
        """Indices of the chosen points in the menu, ascending."""
        return list(self.selection.members)

    @property
    def val_accuracy(self) -> float:
        return self.selection.val_accuracy

    def accuracy(self, menu: Menu | PredictionSet) -> float:
        """The team's accuracy on another split of the same menu (e.g. test)."""
        return self.selection.accuracy(menu.points if isinstance(menu, Menu) else menu)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary, the front included row by row."""
        sel = self.selection
        out: dict[str, Any] = {
            "mode": "joint",
            "selector": self.search,
            "points": self.points,
            "point_names": list(sel.names),
            "members": [int(m) for m in self.members],
            "size": sel.size,
            "total_cost": float(self.total_cost),
            "cost_name": self.cost_name,
            "val_accuracy": float(sel.val_accuracy),
            "voting": sel.voting,
            "scores": {k: _json_value(v) for k, v in sel.scores.items()},
            "n_evaluated": sel.n_evaluated,
            "params": {k: _json_value(v) for k, v in sel.params.items()},
        }
        if sel.history is not None:  # the GA's / NSGA-II's progress per generation
            out["history"] = sel.to_dict()["history"]
        if self.front is not None:
            out["front"] = [
                {
                    "points": [int(p) for p in row["points"]],
                    "members": [int(m) for m in row["members"]],
                    "total_cost": float(row["total_cost"]),
                    "val_accuracy": float(row["val_accuracy"]),
                    "fitness": _json_value(float(row["fitness"])),
                }
                for row in self.front.to_dict("records")
            ]
        return out

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)


class JointProblem:
    """A menu turned into genes, a repairable space and a cached fitness (built by the selector).

    Gene ``g`` stands for member ``menu.members[g]``; its value ``k >= 1`` is that member's
    k-th point, cheapest first.
    """

    def __init__(self, menu: Menu, evaluator: TeamEvaluator, space: ChoiceSpace) -> None:
        self.menu = menu
        self.evaluator = evaluator
        self.space = space
        k_max = max(space.n_values)
        table = np.full((menu.n_members, k_max), -1, dtype=np.int64)
        for g, member in enumerate(menu.members):
            pts = menu.points_of(int(member))
            table[g, 1 : 1 + pts.size] = pts
        self.point_table = table

    @classmethod
    def build(cls, menu: Menu, selector: JointSelector) -> JointProblem:
        m, p = menu.n_members, menu.n_points
        top = m if selector.max_size is None else min(selector.max_size, m)
        w = selector.objective
        # the size term counts members out of M, as for ordinary teams (not points out of P)
        objective = Objective(w.accuracy, w.diversity, w.size * p / m)
        evaluator = TeamEvaluator(
            menu.points,
            voting=selector.voting,
            metrics=selector.metrics,
            objective=objective,
            max_size=top,
            budget=selector.budget,
            n_negatives=selector.n_negatives,
            n_draws=selector.n_draws,
            seed=selector.seed,
            n_jobs=selector.n_jobs,
        )
        costs = tuple(
            np.concatenate([[0.0], menu.cost[menu.points_of(int(mem))]]) for mem in menu.members
        )
        space = ChoiceSpace(costs, budget=selector.budget, min_active=2, max_active=top)
        return cls(menu, evaluator, space)

    def masks(self, genomes: list[list[int]] | np.ndarray) -> np.ndarray:
        """(n, P) bool point masks of genomes (n, M)."""
        g = np.asarray(genomes, dtype=np.int64).reshape(-1, self.menu.n_members)
        masks = np.zeros((len(g), self.menu.n_points), dtype=bool)
        rows, genes = np.nonzero(g)
        masks[rows, self.point_table[genes, g[rows, genes]]] = True
        return masks

    def fitness(self, genomes: list[list[int]] | np.ndarray) -> np.ndarray:
        return self.evaluator.evaluate(self.masks(genomes)).fitness

    def frame(self, genomes: np.ndarray) -> pd.DataFrame:
        """One row per genome: points, members, names, size, total_cost, accuracy, fitness."""
        masks = self.masks(genomes)
        scores = self.evaluator.evaluate(masks)
        pts = [tuple(int(i) for i in np.flatnonzero(mk)) for mk in masks]
        names = self.menu.points.names
        return pd.DataFrame(
            {
                "points": pts,
                "members": [tuple(int(self.menu.member[i]) for i in t) for t in pts],
                "names": [",".join(names[i] for i in t) for t in pts],
                "size": scores.size,
                "total_cost": scores.cost,
                "val_accuracy": scores.accuracy,
                "diversity": scores.diversity,
                "fitness": scores.fitness,
            }
        )


def accuracy_front(accuracy: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Row indices of the accuracy-cost Pareto front, cheapest first.

    A row is on the front when no other row is at most as costly and at least as accurate with
    one of the two strict; of identical (cost, accuracy) rows the first is kept.
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    order = np.lexsort((np.arange(acc.size), -acc, cost))
    keep, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            keep.append(int(i))
            best = acc[i]
    return np.asarray(keep, dtype=np.int64)


# (genes, extra scores, table, front, per-generation progress)
SearchResult = tuple[
    list[int], dict[str, float], pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None
]
JOINT_SEARCHES: Registry[Callable[..., SearchResult]] = Registry("joint search")


def _polish(
    selector: JointSelector, problem: JointProblem, genes: list[int]
) -> tuple[list[int], int]:
    if not selector.local_search:
        return genes, 0
    genes, steps = hill_climb(genes, problem.space, problem.fitness)
    selector.log(f"local search: {steps} steps, {problem.evaluator.n_evaluated} choices scored")
    return genes, steps


@JOINT_SEARCHES.register("ga")
def _search_ga(selector: JointSelector, problem: JointProblem, rng: random.Random) -> SearchResult:
    space = problem.space
    result = evolve(
        selector.ga_config,
        rng,
        new_genome=partial(space.random_genome, rng),
        mate=partial(cx_two_point, rng=rng),
        mutate=partial(mut_choice, n_values=space.n_values, indpb=1.0 / space.n_genes, rng=rng),
        repair=partial(space.repair, rng=rng),
        fitness=problem.fitness,
        record=lambda: {"n_evaluated": problem.evaluator.n_evaluated},
        on_generation=lambda gen, row: selector.log(
            f"gen {gen}: best {row['best']:.5f}, {problem.evaluator.n_evaluated} choices scored"
        ),
    )
    genes, steps = _polish(selector, problem, result.best)
    extra = {"generations": float(result.generations), "local_search_steps": float(steps)}
    logbook = pd.DataFrame(result.logbook)
    return genes, extra, logbook, None, logbook


@JOINT_SEARCHES.register("nsga2")
def _search_nsga2(
    selector: JointSelector, problem: JointProblem, rng: random.Random
) -> SearchResult:
    space = problem.space
    archive: dict[tuple[int, ...], tuple[float, float, float]] = {}
    progress: list[dict[str, float]] = []

    def objectives(genomes: list[list[int]]) -> np.ndarray:
        scores = problem.evaluator.evaluate(problem.masks(genomes))
        assert scores.cost is not None
        for g, a, c, f in zip(genomes, scores.accuracy, scores.cost, scores.fitness, strict=True):
            archive.setdefault(tuple(g), (float(a), float(c), float(f)))
        return np.column_stack([scores.accuracy, scores.cost])

    def on_generation(gen: int, first: list[Any]) -> None:
        """The first front's accuracy (as NSGA2Selector records it) and the best fitness so far:
        the number the final pick maximises."""
        accuracy = np.array([ind.fitness.values[0] for ind in first], dtype=np.float64)
        fitness = max(f for _, _, f in archive.values())
        progress.append(
            {
                "gen": gen,
                "n_evaluated": problem.evaluator.n_evaluated,
                "front_size": len(first),
                "best": float(accuracy.max()),
                "mean": float(accuracy.mean()),
                "median": float(np.median(accuracy)),
                "best_fitness": fitness,
            }
        )
        selector.log(
            f"gen {gen}: best val_acc {accuracy.max():.5f}, best fitness {fitness:.5f}, "
            f"first front {len(first)} choices, {problem.evaluator.n_evaluated} choices scored"
        )

    evolve_pareto(
        selector.ga_config,
        rng,
        new_genome=partial(space.random_genome, rng),
        mate=partial(cx_two_point, rng=rng),
        mutate=partial(mut_choice, n_values=space.n_values, indpb=1.0 / space.n_genes, rng=rng),
        repair=partial(space.repair, rng=rng),
        fitness=objectives,
        weights=(1.0, -1.0),
        on_generation=on_generation,
    )
    genomes = np.asarray(list(archive), dtype=np.int64)
    values = np.asarray(list(archive.values()), dtype=np.float64)
    feasible = np.isfinite(values[:, 2])
    genomes, values = genomes[feasible], values[feasible]
    if not len(genomes):
        raise SpecError("nsga2 found no feasible choice; loosen max_size or the budget")
    size = (genomes > 0).sum(axis=1)
    pick = int(np.lexsort((np.arange(len(genomes)), size, values[:, 1], -values[:, 2]))[0])
    genes, steps = _polish(selector, problem, genomes[pick].tolist())
    front = problem.frame(genomes[accuracy_front(values[:, 0], values[:, 1])])
    extra = {"front_size": float(len(front)), "local_search_steps": float(steps)}
    return genes, extra, None, front, pd.DataFrame(progress)


@JOINT_SEARCHES.register("exhaustive")
def _search_exhaustive(
    selector: JointSelector, problem: JointProblem, rng: random.Random
) -> SearchResult:
    space = problem.space
    n_values = np.asarray(space.n_values)
    total = math.prod(int(k) for k in n_values)
    if total > selector.max_combinations:
        raise SpecError(
            f"exhaustive joint search over {space.n_genes} members means {total} choices, more "
            f"than max_combinations={selector.max_combinations}; use --selector ga or nsga2"
        )
    cost_table = np.zeros((space.n_genes, int(n_values.max())))
    for g, c in enumerate(space.option_cost):
        cost_table[g, : c.size] = c
    best_key: tuple[float, int, int] | None = None
    best_genes: list[int] = []
    acc_parts, cost_parts, genome_parts = [], [], []
    chunk = 20_000
    for start in range(0, total, chunk):
        idx = np.arange(start, min(total, start + chunk))
        genes = np.stack(np.unravel_index(idx, tuple(int(k) for k in n_values)), axis=1)
        active = (genes > 0).sum(axis=1)
        spent = cost_table[np.arange(space.n_genes)[None, :], genes].sum(axis=1)
        keep = (active >= 2) & (active <= space.top) & within_budget(spent, space.budget)
        genes = genes[keep]
        if not len(genes):
            continue
        scores = problem.evaluator.evaluate(problem.masks(genes))
        assert scores.cost is not None
        acc_parts.append(scores.accuracy)
        cost_parts.append(scores.cost)
        genome_parts.append(genes)
        row = int(np.lexsort((np.arange(len(genes)), scores.size, -scores.fitness))[0])
        key = (-float(scores.fitness[row]), int(scores.size[row]), start + row)
        if best_key is None or key < best_key:
            best_key, best_genes = key, genes[row].tolist()
    if best_key is None or not np.isfinite(-best_key[0]):
        raise SpecError("no choice of 2 or more members fits the size limit and the budget")
    genomes = np.concatenate(genome_parts)
    front = problem.frame(
        genomes[accuracy_front(np.concatenate(acc_parts), np.concatenate(cost_parts))]
    )
    return best_genes, {"front_size": float(len(front))}, None, front, None


@dataclass(kw_only=True)
class JointSelector(ObjectiveSelector):
    """Chooses every member's operating point (or "out") and the team together, under a budget.

    Settings of :class:`ObjectiveSelector` (voting, max_size in members, budget on the summed
    point cost, objective weights, focal metrics, seed, n_jobs) plus:

    Attributes:
        search: ``ga``, ``nsga2`` or ``exhaustive`` (see the module docstring).
        population, generations, patience, cx_prob, mut_prob, tournament, elite: GA / NSGA-II
            settings (:class:`~ensprune.ensemble.selection._evolve.GAConfig`).
        local_search: hill-climb from the GA's / NSGA-II's pick.
        max_combinations: the exhaustive search refuses menus with more choices than this.

    Example:
        >>> menu = Menu.load("menu_val.npz")
        >>> budget = resolve_budget("1x_member", menu.dense_cost())
        >>> choice = JointSelector(search="ga", budget=budget, seed=0).select_menu(menu)
        >>> choice.points, choice.total_cost, choice.accuracy(test_menu)
    """

    name = "joint"

    search: str = "ga"
    population: int = 100
    generations: int = 200
    patience: int = 20
    cx_prob: float = 0.7
    mut_prob: float = 1.0
    tournament: int = 3
    elite: int = 2
    local_search: bool = True
    max_combinations: int = 200_000

    def __post_init__(self) -> None:
        super().__post_init__()
        self.search = JOINT_SEARCHES.canonical(self.search)
        _ = self.ga_config

    @property
    def ga_config(self) -> GAConfig:
        """The GA / NSGA-II loop settings (validated)."""
        return GAConfig.of(self)

    def select_menu(self, menu: Menu) -> JointSelection:
        """Choose the points (validation menu); see the module docstring.

        Raises:
            PredictionError: fewer than 2 members.
            SpecError: a budget that no two members' cheapest points fit.
        """
        if menu.n_members < 2:
            raise PredictionError(
                f"joint selection needs at least 2 members; the menu holds {menu.n_members}"
            )
        cheapest = np.sort([menu.cost[menu.points_of(int(m))[0]] for m in menu.members])[:2]
        if self.budget is not None and not within_budget(float(cheapest.sum()), self.budget):
            raise SpecError(
                f"budget {self.budget:g} is below the cost of the two cheapest operating points "
                f"of different members ({cheapest.sum():g}); no team of 2 fits"
            )
        problem = JointProblem.build(menu, self)
        rng = random.Random(self.seed)
        genes, extra, table, front, history = JOINT_SEARCHES.get(self.search)(self, problem, rng)
        mask = problem.masks([genes])
        final = problem.evaluator.evaluate(mask)
        scores = self.team_scores(final, 0)
        scores.update(extra)
        points = [int(i) for i in np.flatnonzero(mask[0])]
        single = best_single_point(menu, self.budget)
        if single is not None:
            scores["best_single_point_val_accuracy"] = single[1]
            if single[1] > float(final.accuracy[0]):
                name = menu.points.names[single[0]] if menu.points.names else f"#{single[0]}"
                logger.warning(
                    "one operating point alone, %s (validation accuracy %.4f), beats the chosen "
                    "team (%.4f) within the budget: every team of 2 that fits is weaker; raise "
                    "the budget or use that point on its own",
                    name,
                    single[1],
                    float(final.accuracy[0]),
                )
        selection = self.make_selection(
            menu.points,
            points,
            scores=scores,
            table=table if table is not None else front,
            n_evaluated=problem.evaluator.n_evaluated,
            history=history,
        )
        selection.selector = f"joint-{self.search}"
        return JointSelection(
            search=self.search,
            selection=selection,
            members=[int(menu.member[i]) for i in points],
            total_cost=float(menu.cost[points].sum()),
            cost_name=menu.cost_name,
            front=front,
        )

    def _select(self, preds: PredictionSet) -> Selection:
        """Ordinary team selection: the joint search on one point per member."""
        return self.select_menu(Menu.from_predictions(preds)).selection
