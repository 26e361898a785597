"""NSGA-II multi-objective sub-ensemble selection (DEAP): accuracy, diversity and cost.

Objectives: validation accuracy (maximise), consensus focal diversity (maximise) and cost
(minimise): the summed member cost when the pool carries costs, else the team size. The
binary-mask individuals, crossover, mutation, repair and the NSGA-II loop
(:func:`~ensprune.ensemble.selection._evolve.evolve_pareto`) come from the shared GA toolkit:
parents are chosen by binary tournament on (Pareto rank, crowding distance) and survivors by
``deap.tools.selNSGA2``. The run stops after ``generations`` or when the first front has not
changed for ``patience`` generations.

``Selection.table`` is the Pareto front of every team evaluated during the run (not just the
last population), sorted by cost. Final pick (the documented rule): the front's most accurate
team; ties go to the more diverse, then the cheaper, then the lexicographically first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from ensprune.ensemble.objective import TeamScores
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._base import ObjectiveSelector, Selection, register_selector
from ensprune.ensemble.selection._evolve import (
    ChoiceSpace,
    GAConfig,
    cx_two_point,
    evolve_pareto,
    mut_flip_bit,
    pareto_mask,
)


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
        _ = self.ga_config

    @property
    def ga_config(self) -> GAConfig:
        """The loop settings (validated)."""
        return GAConfig(
            self.population, self.generations, self.patience, self.cx_prob, self.mut_prob
        )

    def _select(self, preds: PredictionSet) -> Selection:
        m = preds.n_members
        rng = random.Random(self.seed)
        evaluator = self.evaluator(preds)
        space = ChoiceSpace.binary(
            preds.cost, m, budget=self.budget, max_active=self.size_limit(preds)
        )
        seen: dict[bytes, TeamScores] = {}
        progress: list[dict[str, float]] = []

        def on_generation(gen: int, first: list[Any]) -> None:
            accuracy = np.array([ind.fitness.values[0] for ind in first], dtype=np.float64)
            progress.append(
                {
                    "gen": gen,
                    "n_evaluated": evaluator.n_evaluated,
                    "front_size": len(first),
                    "best": float(accuracy.max()),
                    "mean": float(accuracy.mean()),
                    "median": float(np.median(accuracy)),
                }
            )
            self.log(
                f"gen {gen}: best val_acc {accuracy.max():.5f}, first front {len(first)} teams, "
                f"{evaluator.n_evaluated} scored"
            )

        def objectives(genomes: list[list[int]]) -> np.ndarray:
            masks = np.asarray(genomes, dtype=bool)
            scores = evaluator.evaluate(masks)
            cost = scores.cost if scores.cost is not None else scores.size.astype(np.float64)
            for r in range(len(masks)):
                seen.setdefault(np.packbits(masks[r]).tobytes(), scores.take(np.array([r])))
            return np.column_stack([scores.accuracy, scores.diversity, cost])

        evolve_pareto(
            self.ga_config,
            rng,
            new_genome=partial(space.random_genome, rng),
            mate=partial(cx_two_point, rng=rng),
            mutate=partial(mut_flip_bit, indpb=1.0 / m, rng=rng),
            repair=partial(space.repair, rng=rng),
            fitness=objectives,
            weights=(1.0, 1.0, -1.0),
            on_generation=on_generation,
        )
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
            history=pd.DataFrame(progress),
        )
