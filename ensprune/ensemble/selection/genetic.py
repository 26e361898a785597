"""Genetic sub-ensemble selection with DEAP: a binary mask over the pool's members.

Each individual is a 0/1 list of length M (member i in the team or not); its fitness is the
shared :class:`~ensprune.ensemble.objective.Objective` (validation accuracy, consensus focal
diversity, team size; teams over ``max_size`` or the budget are infeasible). The loop
(:func:`~ensprune.ensemble.selection._evolve.evolve`, the shared GA toolkit):

1. an initial population of random teams (size uniform in 2 .. max_size);
2. each generation, tournament selection, two-point crossover and bit-flip mutation build the
   offspring; the ``elite`` fittest parents survive unchanged;
3. teams outside the limits are *repaired* (members dropped or added at random until the team
   has 2 .. max_size members within the budget) or, with ``constraint="penalty"``, kept with
   fitness -inf;
4. stop after ``generations`` or ``patience`` generations without a better best team;
5. polish the best team by hill climbing (``local_search``, on by default): move to the fittest
   team that differs by one member added, removed or swapped, until none is fitter.

Fitness is computed through a cached :class:`~ensprune.ensemble.objective.TeamEvaluator`, so a
team seen before costs nothing and ``Selection.n_evaluated`` counts distinct teams; new teams
of a generation are scored in one batch, split over ``n_jobs`` joblib workers. All randomness
comes from a :class:`random.Random` seeded per run.

``GeneticSelector(evolve_weights=True)`` then evolves voting weights for the team it found
(:func:`~ensprune.ensemble.selection.weights.evolve_weights`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import ObjectiveSelector, Selection, register_selector
from ensprune.ensemble.selection._evolve import (
    ChoiceSpace,
    GAConfig,
    cx_two_point,
    evolve,
    hill_climb,
    mut_flip_bit,
)
from ensprune.ensemble.selection.weights import evolve_weights
from ensprune.errors import SpecError


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
            (:func:`~ensprune.ensemble.selection.weights.evolve_weights`); the selection then
            uses ``weighted`` voting.

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
        super().__post_init__()  # first: it turns the voting name into its registered spelling
        if self.voting == "weighted":
            raise SpecError(
                "the ga searches teams with an unweighted rule; keep voting soft/plurality/majority "
                "and set evolve_weights=True (CLI: --evolve-weights) for weighted voting"
            )
        _ = self.ga_config
        if self.constraint not in ("repair", "penalty"):
            raise SpecError(f"constraint must be 'repair' or 'penalty'; got {self.constraint!r}")

    @property
    def ga_config(self) -> GAConfig:
        """The loop settings (validated)."""
        return GAConfig.of(self)

    def _select(self, preds: PredictionSet) -> Selection:
        m = preds.n_members
        rng = random.Random(self.seed)
        evaluator = self.evaluator(preds)
        space = ChoiceSpace.binary(
            preds.cost, m, budget=self.budget, max_active=self.size_limit(preds)
        )
        repair = self.constraint == "repair"

        def fitness(genomes: list[list[int]]) -> np.ndarray:
            return evaluator.evaluate(np.asarray(genomes, dtype=bool)).fitness

        result = evolve(
            self.ga_config,
            rng,
            new_genome=partial(space.random_genome, rng, repair=repair),
            mate=partial(cx_two_point, rng=rng),
            mutate=partial(mut_flip_bit, indpb=1.0 / m, rng=rng),
            repair=partial(space.repair, rng=rng) if repair else None,
            fitness=fitness,
            record=lambda: {"n_evaluated": evaluator.n_evaluated},
            on_generation=lambda gen, row: self.log(
                f"gen {gen}: best {row['best']:.5f}, {evaluator.n_evaluated} teams scored"
            ),
        )
        if not np.isfinite(result.fitness[0]):
            raise SpecError("the ga found no feasible team; loosen max_size or the budget")
        genes, steps = result.best, 0
        if self.local_search:
            genes, steps = hill_climb(genes, space, fitness)
            self.log(f"local search: {steps} steps, {evaluator.n_evaluated} teams scored")
        mask = np.asarray(genes, dtype=bool)
        team = [int(i) for i in np.flatnonzero(mask)]
        final = evaluator.evaluate(mask[None, :])
        scores = self.team_scores(final, 0)
        scores["generations"] = float(result.generations)
        scores["local_search_steps"] = float(steps)
        table = pd.DataFrame(result.logbook)
        if not self.evolve_weights:
            return self.make_selection(
                preds,
                team,
                scores=scores,
                table=table,
                n_evaluated=evaluator.n_evaluated,
                history=table,
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
            history=table,
        )
