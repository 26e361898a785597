"""Voting weights for a fixed team, evolved on the validation split (real-valued genes).

Built from the shared GA toolkit (:mod:`ensprune.ensemble.selection._evolve`): blend crossover,
Gaussian mutation, a repair that clips genes to [0, 1], tournament selection and an elite of one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial

import numpy as np

from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection._evolve import (
    GAConfig,
    cx_blend,
    evolve,
    mut_gaussian,
)
from ensprune.ensemble.voting import TeamVoter
from ensprune.errors import SpecError

__all__ = ["evolve_weights"]


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

    def fitness(genomes: list[list[float]]) -> np.ndarray:
        w = np.asarray(genomes, dtype=np.float64)
        return np.column_stack([voter.accuracy(w, preds.y), -voter.log_loss(w, preds.y)])

    def clip(ind: list[float]) -> None:
        for i in range(n):
            ind[i] = min(1.0, max(0.0, ind[i]))
        if sum(ind) <= 0:
            ind[:] = [1.0] * n

    first = iter([[1.0] * n])  # equal weights first, then random ones

    def new_genome() -> list[float]:
        return next(first, None) or [rng.random() for _ in range(n)]

    result = evolve(
        GAConfig(population, generations, patience, cx_prob=0.7, tournament=3, elite=1),
        rng,
        new_genome=new_genome,
        mate=partial(cx_blend, alpha=0.5, rng=rng),
        mutate=partial(mut_gaussian, sigma=sigma, indpb=1.0 / n, rng=rng),
        repair=clip,
        fitness=fitness,
        weights=(1.0, 1.0),
    )
    weights = np.asarray(result.best, dtype=np.float64)
    return weights / weights.sum(), float(result.fitness[0])
