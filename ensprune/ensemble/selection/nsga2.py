"""NSGA-II multi-objective sub-ensemble selection (DEAP): accuracy, diversity and cost.

Objectives: validation accuracy (maximise), consensus focal diversity (maximise) and cost
(minimise): the summed member cost when the pool carries costs, else the team size. The
binary-mask individuals, crossover, mutation and repair are those of the single-objective GA
(:mod:`ensprune.ensemble.selection.genetic`); parents are chosen by binary tournament on
(Pareto rank, crowding distance) and survivors by ``deap.tools.selNSGA2``. The run stops after
``generations`` or when the first front has not changed for ``patience`` generations.

``Selection.table`` is the Pareto front of every team evaluated during the run (not just the
last population), sorted by cost. Final pick (the documented rule): the front's most accurate
team; ties go to the more diverse, then the cheaper, then the lexicographically first.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from deap import base, tools

from ensprune.ensemble.objective import TeamScores
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import ObjectiveSelector, Selection, register_selector
from ensprune.ensemble.selection.genetic import (
    Individual,
    _Search,
    cx_two_point,
    mut_flip_bit,
)
from ensprune.errors import SpecError


class FitnessAccDivCost(base.Fitness):
    """(accuracy, diversity, cost): the first two maximised, cost minimised."""

    weights = (1.0, 1.0, -1.0)


def pareto_mask(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Bool mask of the non-dominated rows of ``points`` (n, k).

    A row is dominated when another row is at least as good in every objective and strictly
    better in one.
    """
    signs = np.where(np.asarray(maximize), 1.0, -1.0)
    p = np.asarray(points, dtype=np.float64) * signs
    keep = np.ones(len(p), dtype=bool)
    for i in range(len(p)):
        ge = np.all(p >= p[i], axis=1)
        gt = np.any(p > p[i], axis=1)
        if np.any(ge & gt):
            keep[i] = False
    return keep


def _crowded_tournament(
    pop: Sequence[Any], rank: dict[int, int], k: int, rng: random.Random
) -> list[Any]:
    """``k`` binary-tournament winners: lower Pareto rank, then larger crowding distance."""
    chosen = []
    for _ in range(k):
        a, b = rng.choice(pop), rng.choice(pop)
        key_a = (-rank[id(a)], a.fitness.crowding_dist)
        key_b = (-rank[id(b)], b.fitness.crowding_dist)
        chosen.append(a if key_a >= key_b else b)
    return chosen


@register_selector("nsga2")
@dataclass(kw_only=True)
class NSGA2Selector(ObjectiveSelector):
    """Pareto search over (accuracy, diversity, cost) with NSGA-II.

    Attributes:
        population: individuals per generation.
        generations: most generations.
        patience: stop after this many generations with an unchanged first front.
        cx_prob: crossover probability per pair of offspring.
        mut_prob: mutation probability per offspring (bit flips with rate 1/M).

    The objective weights (``w_accuracy`` ...) of :class:`ObjectiveSelector` play no part here.
    """

    population: int = 60
    generations: int = 100
    patience: int = 15
    cx_prob: float = 0.7
    mut_prob: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.population < 4 or self.generations < 1 or self.patience < 1:
            raise SpecError("population must be >= 4, generations and patience >= 1")
        if not (0 <= self.cx_prob <= 1 and 0 <= self.mut_prob <= 1):
            raise SpecError("cx_prob and mut_prob must lie in [0, 1]")

    def _select(self, preds: PredictionSet) -> Selection:
        m = preds.n_members
        rng = random.Random(self.seed)
        evaluator = self.evaluator(preds)
        search = _Search(evaluator, rng, self.size_limit(preds), True, preds.cost, self.budget)
        seen: dict[bytes, TeamScores] = {}

        def evaluate(individuals: Sequence[Individual]) -> None:
            todo = [ind for ind in individuals if not ind.fitness.valid]
            if not todo:
                return
            masks = np.asarray(todo, dtype=bool)
            scores = evaluator.evaluate(masks)
            cost = scores.cost if scores.cost is not None else scores.size.astype(np.float64)
            for r, ind in enumerate(todo):
                ind.fitness.values = (
                    float(scores.accuracy[r]),
                    float(scores.diversity[r]),
                    float(cost[r]),
                )
                seen.setdefault(np.packbits(masks[r]).tobytes(), scores.take(np.array([r])))

        def new(genes: list[int]) -> Individual:
            return Individual(genes, FitnessAccDivCost)

        pop = [new(search.random_team(m)) for _ in range(self.population)]
        evaluate(pop)
        pop = tools.selNSGA2(pop, len(pop))
        front_key: frozenset[bytes] = frozenset()
        stale = 0
        for gen in range(1, self.generations + 1):
            fronts = tools.sortNondominated(pop, len(pop))
            rank = {id(ind): r for r, front in enumerate(fronts) for ind in front}
            parents = _crowded_tournament(pop, rank, len(pop), rng)
            offspring = [new(list(p)) for p in parents]
            for a, b in zip(offspring[::2], offspring[1::2], strict=False):
                if rng.random() < self.cx_prob:
                    cx_two_point(a, b, rng)
            for ind in offspring:
                if rng.random() < self.mut_prob:
                    mut_flip_bit(ind, 1.0 / m, rng)
                search.fix(ind)
            evaluate(offspring)
            pop = tools.selNSGA2(pop + offspring, self.population)
            first = tools.sortNondominated(pop, len(pop), first_front_only=True)[0]
            key = frozenset(np.packbits(np.asarray(ind, dtype=bool)).tobytes() for ind in first)
            self.log(
                f"gen {gen}: first front {len(first)} teams, {evaluator.n_evaluated} teams scored"
            )
            if key == front_key:
                stale += 1
                if stale >= self.patience:
                    break
            else:
                front_key, stale = key, 0
        everything = TeamScores.concat(list(seen.values()))
        cost = (
            everything.cost if everything.cost is not None else everything.size.astype(np.float64)
        )
        on_front = np.flatnonzero(
            pareto_mask(
                np.column_stack([everything.accuracy, everything.diversity, cost]),
                (True, True, False),
            )
        )
        front = everything.take(on_front)
        front_cost = cost[on_front]
        teams = [tuple(int(i) for i in np.flatnonzero(mk)) for mk in front.masks]
        lex_rank = np.empty(len(teams), dtype=np.int64)
        lex_rank[sorted(range(len(teams)), key=teams.__getitem__)] = np.arange(len(teams))
        pick = int(np.lexsort((lex_rank, front_cost, -front.diversity, -front.accuracy))[0])
        table = front.frame(preds.names)
        if "cost" not in table:
            table.insert(3, "cost", front_cost)
        table = table.drop(columns="fitness").sort_values(
            ["cost", "val_accuracy"], ascending=[True, False], kind="stable"
        )
        scores = self.team_scores(front, pick)
        scores.pop("fitness")
        scores["front_size"] = float(len(on_front))
        return self.make_selection(
            preds,
            list(teams[pick]),
            scores=scores,
            table=table.reset_index(drop=True),
            n_evaluated=evaluator.n_evaluated,
        )
