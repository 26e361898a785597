"""Genetic sub-ensemble selection with DEAP: a binary mask over the pool's members.

Each individual is a 0/1 list of length M (member i in the team or not); its fitness is the
shared :class:`~ensprune.ensemble.objective.Objective` (validation accuracy, consensus focal
diversity, team size; teams over ``max_size`` or the budget are infeasible). The loop:

1. an initial population of random teams (size uniform in 2 .. max_size);
2. each generation, tournament selection, two-point crossover and bit-flip mutation build the
   offspring; the ``elite`` fittest parents survive unchanged;
3. teams outside the limits are *repaired* (members dropped or added at random until the team
   has 2 .. max_size members within the budget) or, with ``constraint="penalty"``, kept with
   fitness -inf;
4. stop after ``generations`` or ``patience`` generations without a better best team;
5. polish the best team by hill climbing (``local_search``, on by default): move to the fittest
   team that differs by one member added, removed or swapped, until none is fitter. A GA finds
   the right region quickly but often stops one swap away from its optimum; the climb costs
   at most ``M + |T| (M - |T|)`` teams per step.

Fitness is computed through a cached :class:`~ensprune.ensemble.objective.TeamEvaluator`, so a
team seen before costs nothing and ``Selection.n_evaluated`` counts distinct teams; new teams
of a generation are scored in one batch, split over ``n_jobs`` joblib workers.

DEAP supplies the individuals' fitness (:class:`deap.base.Fitness`), the toolbox, the hall of
fame, statistics and the logbook. DEAP's own operators draw from the global :mod:`random`
state, so the operators here are the same algorithms (``cxTwoPoint``, ``mutFlipBit``,
``selTournament``) drawing from a :class:`random.Random` seeded per run: the same seed gives
the same team, whatever else runs in the process.

:func:`evolve_weights` evolves real-valued voting weights for a chosen team (weighted soft
voting); ``GeneticSelector(evolve_weights=True)`` applies it to the team it finds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from deap import base, tools

from ensprune.ensemble.objective import TeamEvaluator
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import (
    ObjectiveSelector,
    Selection,
    register_selector,
)
from ensprune.ensemble.voting import TeamVoter
from ensprune.errors import SpecError


class FitnessMax(base.Fitness):
    """Single-objective fitness, maximised."""

    weights = (1.0,)


class Individual(list):
    """A DEAP individual: a list of genes with a ``fitness`` attribute."""

    fitness: base.Fitness

    def __init__(self, genes: Sequence[Any], fitness_cls: type[base.Fitness] = FitnessMax) -> None:
        super().__init__(genes)
        self.fitness = fitness_cls()

    def __deepcopy__(self, memo: dict[int, Any]) -> Individual:
        twin = Individual(list(self), type(self.fitness))
        twin.fitness.values = self.fitness.values
        return twin


# --- operators drawing from a per-run random.Random (same algorithms as DEAP's tools) ---------


def cx_two_point(a: list[Any], b: list[Any], rng: random.Random) -> tuple[list[Any], list[Any]]:
    """Two-point crossover in place (as ``deap.tools.cxTwoPoint``)."""
    size = min(len(a), len(b))
    if size < 2:
        return a, b
    p1 = rng.randint(1, size)
    p2 = rng.randint(1, size - 1)
    if p2 >= p1:
        p2 += 1
    else:
        p1, p2 = p2, p1
    a[p1:p2], b[p1:p2] = b[p1:p2], a[p1:p2]
    return a, b


def mut_flip_bit(ind: list[int], indpb: float, rng: random.Random) -> tuple[list[int]]:
    """Flip each bit with probability ``indpb`` (as ``deap.tools.mutFlipBit``)."""
    for i in range(len(ind)):
        if rng.random() < indpb:
            ind[i] = 1 - ind[i]
    return (ind,)


def sel_tournament(
    individuals: Sequence[Any], k: int, tournsize: int, rng: random.Random
) -> list[Any]:
    """``k`` tournament winners, each the fittest of ``tournsize`` random picks."""
    return [
        max((rng.choice(individuals) for _ in range(tournsize)), key=lambda ind: ind.fitness)
        for _ in range(k)
    ]


def cx_blend(
    a: list[float], b: list[float], alpha: float, rng: random.Random
) -> tuple[list[float], list[float]]:
    """Blend crossover in place (as ``deap.tools.cxBlend``)."""
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        gamma = (1.0 + 2.0 * alpha) * rng.random() - alpha
        a[i] = (1.0 - gamma) * x + gamma * y
        b[i] = gamma * x + (1.0 - gamma) * y
    return a, b


def mut_gaussian(
    ind: list[float], sigma: float, indpb: float, rng: random.Random
) -> tuple[list[float]]:
    """Add N(0, sigma) noise to each gene with probability ``indpb`` (as ``mutGaussian``)."""
    for i in range(len(ind)):
        if rng.random() < indpb:
            ind[i] += rng.gauss(0.0, sigma)
    return (ind,)


# --- repair -----------------------------------------------------------------------------------


def repair_team(
    genes: list[int],
    rng: random.Random,
    max_size: int,
    cost: np.ndarray | None = None,
    budget: float | None = None,
) -> None:
    """Make ``genes`` a feasible team in place: 2 .. max_size members within the budget.

    Drops random members while the team is too large or over budget, then adds random members
    that fit (cheapest first when none fits at random) until it has 2.
    """
    m = len(genes)
    limit = None if budget is None or cost is None else budget * (1 + 1e-9)
    team = [i for i in range(m) if genes[i]]

    def spent() -> float:
        return 0.0 if cost is None else float(cost[team].sum())

    while len(team) > max_size or (limit is not None and spent() > limit and len(team) > 0):
        team.pop(rng.randrange(len(team)))
    while len(team) < 2:
        outside = [i for i in range(m) if i not in team]
        fitting = [i for i in outside if limit is None or spent() + float(cost[i]) <= limit]  # type: ignore[index]
        if fitting:
            team.append(rng.choice(fitting))
        elif team:
            team.pop()  # the remaining member leaves no room: start from the cheapest
        else:
            assert cost is not None
            team = [int(i) for i in np.argsort(cost, kind="stable")[:2]]
    for i in range(m):
        genes[i] = 1 if i in team else 0


@dataclass
class _Search:
    """State shared by the GA and NSGA-II loops: evaluator, RNG, repair settings."""

    evaluator: TeamEvaluator
    rng: random.Random
    max_size: int
    repair: bool
    cost: np.ndarray | None
    budget: float | None

    def random_team(self, m: int) -> list[int]:
        size = self.rng.randint(2, self.max_size)
        members = set(self.rng.sample(range(m), size))
        genes = [1 if i in members else 0 for i in range(m)]
        if self.repair:
            repair_team(genes, self.rng, self.max_size, self.cost, self.budget)
        return genes

    def fix(self, ind: list[int]) -> None:
        if self.repair:
            repair_team(ind, self.rng, self.max_size, self.cost, self.budget)


@register_selector("ga")
@dataclass(kw_only=True)
class GeneticSelector(ObjectiveSelector):
    """Binary-mask genetic algorithm on the shared objective (DEAP).

    Attributes:
        population: individuals per generation.
        generations: most generations.
        patience: stop after this many generations without a better best team.
        cx_prob: probability that a pair of offspring is crossed over (two-point).
        mut_prob: probability that an offspring is mutated (bit flips with rate 1/M).
        tournament: tournament size of the parent selection.
        elite: fittest individuals copied unchanged into the next generation.
        constraint: ``"repair"`` (default) or ``"penalty"`` (infeasible teams get -inf).
        local_search: hill-climb from the best team at the end (add/remove/swap one member).
        evolve_weights: after the search, evolve voting weights for the team
            (:func:`evolve_weights`); the selection then uses ``weighted`` voting.

    Example:
        >>> sel = GeneticSelector(seed=1, max_size=6, n_jobs=2).select(val_preds)
        >>> sel.n_evaluated, sel.table.tail()      # distinct teams scored, per-generation log
    """

    makes_weights = True

    population: int = 100
    generations: int = 200
    patience: int = 20
    cx_prob: float = 0.7
    mut_prob: float = 1.0
    tournament: int = 3
    elite: int = 2
    constraint: str = "repair"
    local_search: bool = True
    evolve_weights: bool = False

    def __post_init__(self) -> None:
        if self.voting == "weighted":
            raise SpecError(
                "the ga searches teams with an unweighted rule; keep voting soft/plurality/majority "
                "and set evolve_weights=True (CLI: --evolve-weights) for weighted voting"
            )
        super().__post_init__()
        if self.population < 4 or self.generations < 1 or self.patience < 1:
            raise SpecError("population must be >= 4, generations and patience >= 1")
        if not (0 <= self.cx_prob <= 1 and 0 <= self.mut_prob <= 1):
            raise SpecError("cx_prob and mut_prob must lie in [0, 1]")
        if self.tournament < 1 or not 0 <= self.elite < self.population:
            raise SpecError("tournament must be >= 1 and elite in [0, population)")
        if self.constraint not in ("repair", "penalty"):
            raise SpecError(f"constraint must be 'repair' or 'penalty'; got {self.constraint!r}")

    def _select(self, preds: PredictionSet) -> Selection:
        m = preds.n_members
        rng = random.Random(self.seed)
        evaluator = self.evaluator(preds)
        search = _Search(
            evaluator,
            rng,
            self.size_limit(preds),
            self.constraint == "repair",
            preds.cost,
            self.budget,
        )
        toolbox = base.Toolbox()
        toolbox.register("individual", lambda: Individual(search.random_team(m)))
        toolbox.register("mate", cx_two_point, rng=rng)
        toolbox.register("mutate", mut_flip_bit, indpb=1.0 / m, rng=rng)
        toolbox.register("select", sel_tournament, tournsize=self.tournament, rng=rng)
        evaluate = _batch_evaluator(evaluator)

        stats = tools.Statistics(lambda ind: ind.fitness.values[0])
        stats.register("best", np.max)
        stats.register("median", np.median)
        logbook = tools.Logbook()
        hof = tools.HallOfFame(1)

        pop = [toolbox.individual() for _ in range(self.population)]
        evaluate(pop)
        hof.update(pop)
        logbook.record(gen=0, n_evaluated=evaluator.n_evaluated, **stats.compile(pop))
        best = hof[0].fitness.values[0]
        stale = 0
        for gen in range(1, self.generations + 1):
            elite = tools.selBest(pop, self.elite) if self.elite else []
            offspring = [toolbox.clone(ind) for ind in toolbox.select(pop, len(pop) - len(elite))]
            for a, b in zip(offspring[::2], offspring[1::2], strict=False):
                if rng.random() < self.cx_prob:
                    toolbox.mate(a, b)
                    del a.fitness.values, b.fitness.values
            for ind in offspring:
                if rng.random() < self.mut_prob:
                    toolbox.mutate(ind)
                    del ind.fitness.values
                if not ind.fitness.valid:
                    search.fix(ind)
            evaluate(offspring)
            pop = [toolbox.clone(ind) for ind in elite] + offspring
            hof.update(pop)
            record = stats.compile(pop)
            logbook.record(gen=gen, n_evaluated=evaluator.n_evaluated, **record)
            self.log(f"gen {gen}: best {record['best']:.5f}, {evaluator.n_evaluated} teams scored")
            if hof[0].fitness.values[0] > best:
                best, stale = hof[0].fitness.values[0], 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if not np.isfinite(best):
            raise SpecError("the ga found no feasible team; loosen max_size or the budget")
        mask = np.asarray(hof[0], dtype=bool)
        steps = 0
        if self.local_search:
            mask, steps = hill_climb(evaluator, mask)
            self.log(f"local search: {steps} steps, {evaluator.n_evaluated} teams scored")
        team = [int(i) for i in np.flatnonzero(mask)]
        final = evaluator.evaluate(mask[None, :])
        scores = self.team_scores(final, 0)
        scores["generations"] = float(logbook[-1]["gen"])
        scores["local_search_steps"] = float(steps)
        table = pd.DataFrame(logbook)
        if not self.evolve_weights:
            return self.make_selection(
                preds, team, scores=scores, table=table, n_evaluated=evaluator.n_evaluated
            )
        weights, _ = evolve_weights(preds, team, seed=self.seed)
        return self.make_selection(
            preds,
            team,
            scores=scores,
            table=table,
            n_evaluated=evaluator.n_evaluated,
            weights=weights,
            voting="weighted",
        )


def neighbours(mask: np.ndarray) -> np.ndarray:
    """All teams one member away from ``mask``: one added, one removed, or one swapped."""
    m = mask.size
    inside, outside = np.flatnonzero(mask), np.flatnonzero(~mask)
    flips = np.repeat(mask[None, :], m, axis=0)
    flips[np.arange(m), np.arange(m)] ^= True
    pairs = np.array([(i, j) for i in inside for j in outside], dtype=np.int64).reshape(-1, 2)
    swaps = np.repeat(mask[None, :], len(pairs), axis=0)
    swaps[np.arange(len(pairs)), pairs[:, 0]] = False
    swaps[np.arange(len(pairs)), pairs[:, 1]] = True
    return np.concatenate([flips, swaps])


def hill_climb(evaluator: TeamEvaluator, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Best-improvement hill climbing over :func:`neighbours` from ``mask``.

    Returns:
        (the local optimum, the number of improving moves).
    """
    current = np.asarray(mask, dtype=bool)
    fitness = float(evaluator.evaluate(current[None, :]).fitness[0])
    steps = 0
    while True:
        cand = neighbours(current)
        scores = evaluator.evaluate(cand)
        best = int(np.argmax(scores.fitness))  # first max: deterministic
        if not scores.fitness[best] > fitness:
            return current, steps
        current, fitness = cand[best], float(scores.fitness[best])
        steps += 1


def _batch_evaluator(evaluator: TeamEvaluator) -> Callable[[Sequence[Individual]], None]:
    """Assign fitness to every individual without one, scoring the batch in one call."""

    def evaluate(individuals: Sequence[Individual]) -> None:
        todo = [ind for ind in individuals if not ind.fitness.valid]
        if not todo:
            return
        scores = evaluator.evaluate(np.asarray(todo, dtype=bool))
        for ind, fit in zip(todo, scores.fitness, strict=True):
            ind.fitness.values = (float(fit),)

    return evaluate


class _FitnessLex(base.Fitness):
    """(accuracy, -log-loss), compared lexicographically by DEAP."""

    weights = (1.0, 1.0)


def evolve_weights(
    preds: PredictionSet,
    members: Sequence[int],
    *,
    population: int = 30,
    generations: int = 60,
    patience: int = 15,
    sigma: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Evolve weighted-soft-voting weights for a fixed team on the validation split.

    Real-valued genes in [0, 1], one per member; blend crossover, Gaussian mutation, tournament
    selection and elitism (the best individual always survives). Fitness is the validation
    accuracy of the weighted ensemble, ties broken by the lower log-loss. Equal weights (plain
    soft voting) are in the first population, so the result never scores below soft voting on
    validation (validation is where the weights are fitted: report test accuracy separately).

    Args:
        preds: validation predictions of the pool.
        members: the team (indices into the pool).
        population, generations, patience: GA size and stopping.
        sigma: standard deviation of the Gaussian mutation.
        seed: seeds the run.

    Returns:
        (weights aligned with ``members`` and summing to 1, validation accuracy).
    """
    idx = list(members)
    if len(idx) < 2:
        raise SpecError("evolving voting weights needs a team of at least 2 members")
    rng = random.Random(seed)
    voter = TeamVoter(preds.proba[idx], "weighted")
    n = len(idx)

    def evaluate(individuals: Sequence[Individual]) -> None:
        todo = [ind for ind in individuals if not ind.fitness.valid]
        if not todo:
            return
        w = np.asarray(todo, dtype=np.float64)
        acc = voter.accuracy(w, preds.y)
        nll = voter.log_loss(w, preds.y)
        for ind, a, loss in zip(todo, acc, nll, strict=True):
            ind.fitness.values = (float(a), -float(loss))

    def clip(ind: list[float]) -> None:
        for i in range(n):
            ind[i] = min(1.0, max(0.0, ind[i]))
        if sum(ind) <= 0:
            ind[:] = [1.0] * n

    pop = [Individual([1.0] * n, _FitnessLex)] + [
        Individual([rng.random() for _ in range(n)], _FitnessLex) for _ in range(population - 1)
    ]
    evaluate(pop)
    best = tools.selBest(pop, 1)[0]
    stale = 0
    for _ in range(generations):
        parents = sel_tournament(pop, population - 1, 3, rng)
        offspring = [Individual(list(p), _FitnessLex) for p in parents]
        for a, b in zip(offspring[::2], offspring[1::2], strict=False):
            if rng.random() < 0.7:
                cx_blend(a, b, 0.5, rng)
        for ind in offspring:
            mut_gaussian(ind, sigma, 1.0 / n, rng)
            clip(ind)
        evaluate(offspring)
        pop = [best, *offspring]
        champion = tools.selBest(pop, 1)[0]
        if champion.fitness > best.fitness:
            best, stale = champion, 0
        else:
            stale += 1
            if stale >= patience:
                break
    weights = np.asarray(best, dtype=np.float64)
    return weights / weights.sum(), float(best.fitness.values[0])
