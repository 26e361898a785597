"""The shared GA toolkit: budget rule, genomes, repair, neighbourhoods, loops, parallel fitness."""

from __future__ import annotations

import itertools
import random
from functools import partial

import numpy as np
import pytest

from ensprune.ensemble.budget import within_budget
from ensprune.ensemble.selection._evolve import (
    ChoiceSpace,
    GAConfig,
    batch_fitness,
    cx_two_point,
    evolve,
    evolve_pareto,
    hill_climb,
    mut_choice,
    mut_flip_bit,
    pareto_mask,
)
from ensprune.errors import SpecError
from ensprune.parallel import parallel_config


def test_within_budget_tolerates_float_sums_only() -> None:
    assert 0.1 + 0.2 > 0.3
    assert within_budget(0.1 + 0.2, 0.3)
    assert not within_budget(0.3001, 0.3)
    assert within_budget(1e30, None)
    assert within_budget(np.array([1.0, 2.0, 1.5]), 1.5).tolist() == [True, False, True]


def _menu_space(seed: int, budget: float | None, max_active: int | None = None) -> ChoiceSpace:
    rng = np.random.default_rng(seed)
    costs = tuple(
        np.concatenate([[0.0], np.sort(rng.uniform(0.1, 3.0, size=k))])
        for k in rng.integers(1, 5, size=9)
    )
    return ChoiceSpace(costs, budget=budget, max_active=max_active)


@pytest.mark.parametrize("budget", [None, 1.0, 3.0, 8.0])
def test_repair_always_gives_a_feasible_genome(budget: float | None) -> None:
    space = _menu_space(0, budget, max_active=5)
    rng = random.Random(1)
    for _ in range(300):
        genes = [rng.randrange(k) for k in space.n_values]
        space.repair(genes, rng)
        assert space.feasible(genes), genes
        assert all(0 <= g < k for g, k in zip(genes, space.n_values, strict=True))
        assert space.feasible(space.random_genome(rng))


def test_repair_keeps_feasible_genomes_and_is_seeded() -> None:
    space = _menu_space(2, 4.0)
    rng = random.Random(0)
    genes = space.random_genome(rng)
    kept = list(genes)
    space.repair(kept, random.Random(5))
    assert kept == genes
    over = [k - 1 for k in space.n_values]
    a, b = list(over), list(over)
    space.repair(a, random.Random(3))
    space.repair(b, random.Random(3))
    assert a == b and space.feasible(a)


def test_binary_space_and_limits() -> None:
    space = ChoiceSpace.binary(np.array([3.0, 1.0, 2.0, 5.0]), budget=4.0)
    assert space.n_values == (2, 2, 2, 2)
    assert space.cost([1, 1, 0, 0]) == 4.0 and space.feasible([1, 1, 0, 0])
    assert not space.feasible([1, 0, 1, 0]) and not space.feasible([0, 1, 0, 0])
    assert ChoiceSpace.binary(None, 3).cost([1, 1, 1]) == 0.0
    with pytest.raises(SpecError, match="min_active"):
        ChoiceSpace.binary(None, 3, min_active=4)
    with pytest.raises(SpecError, match="two values"):
        ChoiceSpace((np.array([0.0]),))


def test_neighbours_are_every_one_move() -> None:
    space = _menu_space(3, None)
    genes = space.random_genome(random.Random(2))
    rows = space.neighbours(genes)
    g = np.asarray(genes)
    # reference: every genome at Hamming distance 1, and every swap (one on gene off, one off on)
    expected = set()
    for i, k in enumerate(space.n_values):
        for v in range(k):
            if v != g[i]:
                expected.add(tuple(np.where(np.arange(g.size) == i, v, g)))
    for i, j in itertools.product(np.flatnonzero(g), np.flatnonzero(g == 0)):
        for v in range(1, space.n_values[j]):
            row = g.copy()
            row[i], row[j] = 0, v
            expected.add(tuple(row))
    assert len(rows) == len(expected)
    assert {tuple(r) for r in rows} == expected


def test_binary_neighbours_order_flips_then_swaps() -> None:
    space = ChoiceSpace.binary(None, 4)
    rows = space.neighbours([1, 0, 1, 0]).tolist()
    assert rows[:4] == [[0, 0, 1, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 0, 1, 1]]
    assert rows[4:] == [[0, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0], [1, 0, 0, 1]]


def test_mut_choice_on_binary_genes_is_flip_bit() -> None:
    genes = [0, 1, 1, 0, 1, 0, 0, 1]
    a, b = list(genes), list(genes)
    mut_choice(a, [2] * 8, 0.5, random.Random(7))
    mut_flip_bit(b, 0.5, random.Random(7))
    assert a == b
    c = [0, 1, 2, 3]
    mut_choice(c, [4, 4, 4, 4], 1.0, random.Random(0))
    assert all(x != y for x, y in zip(c, [0, 1, 2, 3], strict=True))


def _separable(values: np.ndarray, cost: tuple[np.ndarray, ...], budget: float):
    """Fitness: sum of per-gene values, -inf over the budget (the optimum by enumeration)."""

    def fitness(genomes: list[list[int]]) -> np.ndarray:
        g = np.asarray(genomes)
        score = np.array([sum(values[i][v] for i, v in enumerate(row)) for row in g], dtype=float)
        spent = np.array([sum(cost[i][v] for i, v in enumerate(row)) for row in g])
        return np.where(within_budget(spent, budget), score, -np.inf)

    return fitness


def test_evolve_and_hill_climb_find_the_enumerated_optimum() -> None:
    rng_np = np.random.default_rng(0)
    cost = tuple(np.array([0.0, *sorted(rng_np.uniform(1, 4, 3))]) for _ in range(6))
    values = [np.array([0.0, *rng_np.uniform(0, 2, 3)]) for _ in range(6)]
    budget = 9.0
    space = ChoiceSpace(cost, budget=budget, min_active=1)
    fitness = _separable(np.array(values, dtype=object), cost, budget)
    every = [list(t) for t in itertools.product(range(4), repeat=6)]
    best = float(np.max(fitness(every)))
    for seed in range(3):
        rng = random.Random(seed)
        result = evolve(
            GAConfig(population=30, generations=60, patience=15),
            rng,
            new_genome=partial(space.random_genome, rng),
            mate=partial(cx_two_point, rng=rng),
            mutate=partial(mut_choice, n_values=space.n_values, indpb=1 / 6, rng=rng),
            repair=partial(space.repair, rng=rng),
            fitness=fitness,
        )
        genes, _ = hill_climb(result.best, space, fitness)
        assert space.feasible(genes)
        assert float(fitness([genes])[0]) == pytest.approx(best)
        assert result.logbook[-1]["gen"] == result.generations
        # the progress the report draws: per generation, mean and median never above the best,
        # and (with elitism) the best never falls
        top = np.array(result.logbook.select("best"))
        assert (np.array(result.logbook.select("mean")) <= top + 1e-12).all()
        assert (np.array(result.logbook.select("median")) <= top + 1e-12).all()
        assert (np.diff(top) >= -1e-12).all()


def test_evolve_is_deterministic_per_seed() -> None:
    space = _menu_space(4, 5.0)

    def run(seed: int) -> list[int]:
        rng = random.Random(seed)
        fit = _separable(np.array([c * 0.7 for c in space.option_cost], dtype=object),
                         space.option_cost, 5.0)  # fmt: skip
        return evolve(
            GAConfig(population=10, generations=5),
            rng,
            new_genome=partial(space.random_genome, rng),
            mate=partial(cx_two_point, rng=rng),
            mutate=partial(mut_choice, n_values=space.n_values, indpb=0.2, rng=rng),
            repair=partial(space.repair, rng=rng),
            fitness=fit,
        ).best

    assert run(3) == run(3)


def test_evolve_pareto_returns_a_population_with_a_non_dominated_front() -> None:
    space = _menu_space(5, None)
    gain = [np.sqrt(c) for c in space.option_cost]

    def objectives(genomes: list[list[int]]) -> np.ndarray:
        return np.array(
            [[sum(gain[i][v] for i, v in enumerate(g)), space.cost(g)] for g in genomes]
        )

    rng = random.Random(0)
    pop = evolve_pareto(
        GAConfig(population=20, generations=15, patience=5),
        rng,
        new_genome=partial(space.random_genome, rng),
        mate=partial(cx_two_point, rng=rng),
        mutate=partial(mut_choice, n_values=space.n_values, indpb=0.2, rng=rng),
        repair=partial(space.repair, rng=rng),
        fitness=objectives,
        weights=(1.0, -1.0),
    )
    assert len(pop) == 20
    points = np.array([ind.fitness.values for ind in pop])
    front = pareto_mask(points, (True, False))
    assert front.any()
    assert np.array_equal(pareto_mask(points[front], (True, False)), np.ones(front.sum(), bool))


def _square_sum(genome: list[float]) -> float:
    return float(sum(x * x for x in genome))


def test_batch_fitness_same_with_workers() -> None:
    genomes = [[float(i), 1.0, -2.0] for i in range(7)]
    one = batch_fitness(_square_sum, n_jobs=1)(genomes)
    with parallel_config("threading"):
        two = batch_fitness(_square_sum, n_jobs=2)(genomes)
    assert one.tolist() == two.tolist() == [5.0 + i * i for i in range(7)]


def test_ga_config_validation() -> None:
    with pytest.raises(SpecError, match="population"):
        GAConfig(population=2)
    with pytest.raises(SpecError, match="cx_prob"):
        GAConfig(cx_prob=1.5)
    with pytest.raises(SpecError, match="elite"):
        GAConfig(population=4, elite=4)
