"""The one genetic-algorithm toolkit (DEAP): genomes, operators, budget repair, loops, hill climbing.

Every evolutionary search in ensprune is built from these parts:

- the sub-ensemble GA and NSGA-II selectors (binary genes: member in the team or not);
- the joint search over members x operating points (integer genes: 0 = member out, k = the
  member's k-th operating point);
- voting-weight evolution and per-layer ratio genomes (real genes, kept in bounds by a repair).

Pieces, each usable alone:

- :class:`Individual` and :func:`fitness_class`: DEAP individuals (a list of genes with a
  :class:`deap.base.Fitness`).
- Operators (:func:`cx_two_point`, :func:`mut_flip_bit`, :func:`mut_choice`, :func:`cx_blend`,
  :func:`mut_gaussian`, :func:`sel_tournament`): the algorithms of ``deap.tools`` drawing from a
  :class:`random.Random` passed in. DEAP's own operators draw from the global :mod:`random`
  state; these take the run's generator, so the same seed gives the same result whatever else
  runs in the process.
- :class:`ChoiceSpace`: integer genes where gene ``i`` takes a value in ``0 .. n_values[i] - 1``
  (0 = off) and each value has a cost; random genomes within the limits, :meth:`ChoiceSpace.repair`
  to a budget and a number of active genes, and the neighbourhood of a genome for hill climbing.
  Binary masks are the case ``n_values = 2`` everywhere.
- :func:`evolve` (generational GA with elitism, tournament selection, hall of fame and patience)
  and :func:`evolve_pareto` (NSGA-II), generic over the genes: the caller passes how to make,
  mate, mutate, repair and score genomes.
- :func:`hill_climb`: best-improvement local search over :meth:`ChoiceSpace.neighbours`.
- :func:`batch_fitness`: score genomes one by one in parallel through joblib (the caller's
  backend, see :mod:`ensprune.parallel`), for fitness functions that are expensive per genome.

Fitness functions take a batch (a list of genomes) and return an array, so a caller can score a
whole generation at once (e.g. :class:`~ensprune.ensemble.objective.TeamEvaluator`, which caches
teams and spreads new ones over joblib workers).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from deap import base, tools

from ensprune.ensemble.budget import budget_limit, within_budget
from ensprune.errors import SpecError
from ensprune.parallel import parallel_map

Genome = list[Any]
#: scores a batch of genomes: (n,) for one objective or (n, k) for k objectives
BatchFitness = Callable[[list[Genome]], np.ndarray]

__all__ = [
    "ChoiceSpace",
    "EvolveResult",
    "FitnessMax",
    "GAConfig",
    "Individual",
    "batch_fitness",
    "cx_blend",
    "cx_two_point",
    "evolve",
    "evolve_pareto",
    "fitness_class",
    "hill_climb",
    "mut_choice",
    "mut_flip_bit",
    "mut_gaussian",
    "pareto_mask",
    "sel_tournament",
]


class FitnessMax(base.Fitness):
    """Single-objective fitness, maximised."""

    weights = (1.0,)


_FITNESS_CLASSES: dict[tuple[float, ...], type[base.Fitness]] = {(1.0,): FitnessMax}


def fitness_class(weights: Sequence[float]) -> type[base.Fitness]:
    """A DEAP fitness class with these objective weights (+1 maximise, -1 minimise)."""
    key = tuple(float(w) for w in weights)
    if key not in _FITNESS_CLASSES:
        _FITNESS_CLASSES[key] = type(f"Fitness{len(key)}", (base.Fitness,), {"weights": key})
    return _FITNESS_CLASSES[key]


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


def cx_two_point(a: Genome, b: Genome, rng: random.Random) -> tuple[Genome, Genome]:
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


def mut_flip_bit(ind: Genome, indpb: float, rng: random.Random) -> tuple[Genome]:
    """Flip each bit with probability ``indpb`` (as ``deap.tools.mutFlipBit``)."""
    for i in range(len(ind)):
        if rng.random() < indpb:
            ind[i] = 1 - ind[i]
    return (ind,)


def mut_choice(
    ind: Genome, n_values: Sequence[int], indpb: float, rng: random.Random
) -> tuple[Genome]:
    """Give each integer gene, with probability ``indpb``, another of its values at random.

    A gene with two values flips (so on binary genes this is :func:`mut_flip_bit`, drawing the
    same random numbers).
    """
    for i in range(len(ind)):
        if rng.random() < indpb:
            k = n_values[i]
            if k == 2:
                ind[i] = 1 - ind[i]
            elif k > 2:
                other = rng.randrange(k - 1)
                ind[i] = other + 1 if other >= ind[i] else other
    return (ind,)


def sel_tournament(
    individuals: Sequence[Any], k: int, tournsize: int, rng: random.Random
) -> list[Any]:
    """``k`` tournament winners, each the fittest of ``tournsize`` random picks."""
    return [
        max((rng.choice(individuals) for _ in range(tournsize)), key=lambda ind: ind.fitness)
        for _ in range(k)
    ]


def cx_blend(a: Genome, b: Genome, alpha: float, rng: random.Random) -> tuple[Genome, Genome]:
    """Blend crossover in place (as ``deap.tools.cxBlend``)."""
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        gamma = (1.0 + 2.0 * alpha) * rng.random() - alpha
        a[i] = (1.0 - gamma) * x + gamma * y
        b[i] = gamma * x + (1.0 - gamma) * y
    return a, b


def mut_gaussian(ind: Genome, sigma: float, indpb: float, rng: random.Random) -> tuple[Genome]:
    """Add N(0, sigma) noise to each gene with probability ``indpb`` (as ``mutGaussian``)."""
    for i in range(len(ind)):
        if rng.random() < indpb:
            ind[i] += rng.gauss(0.0, sigma)
    return (ind,)


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


# --- integer genes with costs: random genomes, repair to a budget, neighbourhoods -------------


@dataclass(frozen=True)
class ChoiceSpace:
    """Integer genes with a cost per value, a budget and limits on the number of active genes.

    Gene ``i`` takes a value in ``0 .. len(option_cost[i]) - 1``; 0 means "off" and costs
    nothing. A genome is feasible when ``min_active <= #active genes <= max_active`` and its
    summed cost is within ``budget`` (:func:`~ensprune.ensemble.budget.within_budget`).

    Attributes:
        option_cost: per gene, the cost of each value (entry 0 is ignored: off costs 0).
        budget: largest summed cost (None: no budget).
        min_active: fewest active genes.
        max_active: most active genes (None: all).

    Example:
        >>> space = ChoiceSpace.binary(np.array([3.0, 1.0, 2.0]), budget=4.0)
        >>> genes = space.random_genome(random.Random(0))
        >>> space.cost(genes) <= 4.0
        True
    """

    option_cost: tuple[np.ndarray, ...]
    budget: float | None = None
    min_active: int = 2
    max_active: int | None = None
    _values: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        costs = tuple(np.asarray(c, dtype=np.float64).copy() for c in self.option_cost)
        for c in costs:
            if c.ndim != 1 or c.size < 2:
                raise SpecError("every gene needs at least two values (off and one option)")
            c[0] = 0.0
        object.__setattr__(self, "option_cost", costs)
        object.__setattr__(self, "_values", tuple(c.size for c in costs))
        top = len(costs) if self.max_active is None else min(self.max_active, len(costs))
        object.__setattr__(self, "max_active", top)
        if not 1 <= self.min_active <= top:
            raise SpecError(
                f"need 1 <= min_active <= max_active <= {len(costs)} genes; "
                f"got min_active={self.min_active}, max_active={self.max_active}"
            )

    @classmethod
    def binary(
        cls,
        cost: np.ndarray | None,
        n_genes: int | None = None,
        *,
        budget: float | None = None,
        min_active: int = 2,
        max_active: int | None = None,
    ) -> ChoiceSpace:
        """On/off genes (a team mask), gene ``i`` costing ``cost[i]`` (all 0 without costs)."""
        if cost is None:
            if n_genes is None:
                raise ValueError("give the costs or the number of genes")
            cost = np.zeros(n_genes)
        return cls(tuple(np.array([0.0, c]) for c in cost), budget, min_active, max_active)

    @property
    def n_genes(self) -> int:
        return len(self.option_cost)

    @property
    def n_values(self) -> tuple[int, ...]:
        """Number of values of each gene (2 for on/off genes)."""
        return self._values

    @property
    def top(self) -> int:
        """The most active genes allowed."""
        return int(self.max_active)  # type: ignore[arg-type]

    def cost(self, genes: Sequence[int]) -> float:
        """The summed cost of a genome."""
        return float(sum(self.option_cost[i][v] for i, v in enumerate(genes) if v))

    def feasible(self, genes: Sequence[int]) -> bool:
        """Whether a genome meets the limits and the budget."""
        active = sum(1 for v in genes if v)
        return self.min_active <= active <= self.top and within_budget(
            self.cost(genes), self.budget
        )

    def random_genome(self, rng: random.Random, *, repair: bool = True) -> list[int]:
        """A random genome: ``min_active .. max_active`` genes on, each at a random value."""
        m = self.n_genes
        size = rng.randint(self.min_active, self.top)
        on = set(rng.sample(range(m), size))
        genes = [0] * m
        for i in range(m):
            if i in on:
                k = self._values[i]
                genes[i] = 1 if k == 2 else 1 + rng.randrange(k - 1)
        if repair:
            self.repair(genes, rng)
        return genes

    def repair(self, genes: list[int], rng: random.Random) -> None:
        """Make ``genes`` feasible in place (the budget and the limits on active genes).

        While there are too many active genes or the cost is over the budget, a random active
        gene is turned off, or, over the budget with a cheaper non-zero value available, moved
        to a cheaper value with probability 1/2. Then, while too few genes are active, a random
        (gene, value) that fits the budget is switched on; when none fits, the last one switched
        on goes again, and with nothing left the cheapest genes are used.
        """
        limit = budget_limit(self.budget)
        cost = self.option_cost
        active = [i for i, v in enumerate(genes) if v]

        def spent() -> float:
            return float(np.sum([cost[i][genes[i]] for i in active])) if active else 0.0

        while len(active) > self.top or (spent() > limit and active):
            pos = rng.randrange(len(active))
            i = active[pos]
            now = cost[i][genes[i]]
            cheaper = [v for v in range(1, self._values[i]) if cost[i][v] < now]
            if len(active) <= self.top and cheaper and rng.random() < 0.5:
                genes[i] = rng.choice(cheaper)
            else:
                active.pop(pos)
                genes[i] = 0
        restarts = 0
        while len(active) < self.min_active:
            base_cost = spent()
            fitting = [
                (i, v)
                for i in range(self.n_genes)
                if not genes[i]
                for v in range(1, self._values[i])
                if base_cost + cost[i][v] <= limit
            ]
            if fitting and restarts < 100:
                i, v = rng.choice(fitting)
                active.append(i)
                genes[i] = v
            elif active and restarts < 100:
                genes[active.pop()] = 0  # the last one leaves no room: try another
                restarts += 1
            else:
                for i in active:
                    genes[i] = 0
                cheapest = [int(np.argmin(c[1:])) + 1 for c in cost]
                order = np.argsort(
                    [c[v] for c, v in zip(cost, cheapest, strict=True)], kind="stable"
                )
                active = [int(i) for i in order[: self.min_active]]
                for i in active:
                    genes[i] = cheapest[i]

    def neighbours(self, genes: Sequence[int] | np.ndarray) -> np.ndarray:
        """All genomes one move from ``genes``, one per row (int array).

        Moves: one gene set to another of its values (on binary genes: one member added or
        removed), then one active gene turned off while an inactive one is switched on at any
        value (a swap). Rows come in that order, genes ascending.
        """
        g = np.asarray(genes, dtype=np.int64)
        m = g.size
        values = np.asarray(self._values)
        gene_idx = np.repeat(np.arange(m), values - 1)
        # for gene i, the values other than g[i], ascending
        offset = np.concatenate([np.arange(k - 1) for k in values]) if m else np.zeros(0, int)
        new_value = offset + (offset >= g[gene_idx])
        changes = np.repeat(g[None, :], gene_idx.size, axis=0)
        changes[np.arange(gene_idx.size), gene_idx] = new_value
        inside, outside = np.flatnonzero(g), np.flatnonzero(g == 0)
        out_gene = np.repeat(outside, values[outside] - 1)
        out_value = (
            np.concatenate([np.arange(1, values[j]) for j in outside])
            if outside.size
            else np.zeros(0, np.int64)
        )
        n_swaps = inside.size * out_gene.size
        swaps = np.repeat(g[None, :], n_swaps, axis=0)
        rows = np.arange(n_swaps)
        swaps[rows, np.repeat(inside, out_gene.size)] = 0
        swaps[rows, np.tile(out_gene, inside.size)] = np.tile(out_value, inside.size)
        return np.concatenate([changes, swaps])


def hill_climb(
    genes: Sequence[int], space: ChoiceSpace, fitness: BatchFitness
) -> tuple[list[int], int]:
    """Best-improvement hill climbing over :meth:`ChoiceSpace.neighbours` from ``genes``.

    A GA finds the right region quickly but often stops one move away from its optimum; each
    step scores every neighbour and moves to the fittest (the first of equals) until none is
    fitter.

    Returns:
        (the local optimum, the number of improving moves).
    """
    current = np.asarray(genes, dtype=np.int64)
    score = float(np.asarray(fitness([current.tolist()]))[0])
    steps = 0
    while True:
        cand = space.neighbours(current)
        scores = np.asarray(fitness(cand.tolist()), dtype=np.float64)
        best = int(np.argmax(scores))
        if not scores[best] > score:
            return current.tolist(), steps
        current, score = cand[best], float(scores[best])
        steps += 1


# --- the loops ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GAConfig:
    """Size and operator rates of a GA run.

    Attributes:
        population: individuals per generation.
        generations: most generations.
        patience: stop after this many generations without progress (a better best individual
            for :func:`evolve`, a changed first front for :func:`evolve_pareto`).
        cx_prob: probability that a pair of offspring is crossed over.
        mut_prob: probability that an offspring is mutated.
        tournament: tournament size of the parent selection (:func:`evolve`).
        elite: fittest individuals copied unchanged into the next generation (:func:`evolve`).
    """

    population: int = 100
    generations: int = 200
    patience: int = 20
    cx_prob: float = 0.7
    mut_prob: float = 1.0
    tournament: int = 3
    elite: int = 2

    def __post_init__(self) -> None:
        if self.population < 4 or self.generations < 1 or self.patience < 1:
            raise SpecError("population must be >= 4, generations and patience >= 1")
        if not (0 <= self.cx_prob <= 1 and 0 <= self.mut_prob <= 1):
            raise SpecError("cx_prob and mut_prob must lie in [0, 1]")
        if self.tournament < 1 or not 0 <= self.elite < self.population:
            raise SpecError("tournament must be >= 1 and elite in [0, population)")

    @classmethod
    def of(cls, settings: Any) -> GAConfig:
        """The loop settings of an object that carries them as same-named attributes (a selector)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


@dataclass
class EvolveResult:
    """Outcome of :func:`evolve`.

    Attributes:
        best: the fittest genome seen.
        fitness: its fitness values.
        logbook: per generation: ``gen``, ``best``, ``mean`` and ``median`` of the first objective, plus
            whatever the ``record`` callback added.
        generations: generations run.
    """

    best: Genome
    fitness: tuple[float, ...]
    logbook: tools.Logbook
    generations: int


def _assign(individuals: Sequence[Individual], fitness: BatchFitness) -> None:
    """Give every individual without a fitness one, scoring them in one batch."""
    todo = [ind for ind in individuals if not ind.fitness.valid]
    if not todo:
        return
    values = np.asarray(fitness([list(ind) for ind in todo]), dtype=np.float64)
    values = values.reshape(len(todo), -1)
    for ind, row in zip(todo, values, strict=True):
        ind.fitness.values = tuple(float(v) for v in row)


def evolve(
    config: GAConfig,
    rng: random.Random,
    *,
    new_genome: Callable[[], Genome],
    mate: Callable[[Genome, Genome], Any],
    mutate: Callable[[Genome], Any],
    repair: Callable[[Genome], None] | None,
    fitness: BatchFitness,
    weights: Sequence[float] = (1.0,),
    record: Callable[[], dict[str, Any]] | None = None,
    on_generation: Callable[[int, dict[str, Any]], None] | None = None,
) -> EvolveResult:
    """A generational GA with elitism (maximising; lexicographic over several objectives).

    Each generation: ``population - elite`` parents by tournament, cloned; pairs crossed over
    with probability ``cx_prob`` (``mate``), each offspring mutated with probability
    ``mut_prob`` (``mutate``); changed offspring are repaired (``repair``, when given) and
    scored; the ``elite`` fittest parents join them unchanged. Stops after ``generations`` or
    ``patience`` generations without a fitter best genome.

    Args:
        config: sizes and rates.
        rng: the run's random generator (the operators must draw from it too).
        new_genome: a random genome for the first population.
        mate, mutate: operators changing genomes in place.
        repair: makes a changed genome feasible in place (None: keep it; infeasible genomes
            should then score ``-inf``).
        fitness: scores a batch of genomes (see :data:`BatchFitness`).
        weights: DEAP objective weights (several: compared lexicographically).
        record: extra numbers for each logbook row (e.g. genomes scored so far).
        on_generation: called with (generation, logbook row) after each generation.
    """
    cls = fitness_class(weights)
    stats = tools.Statistics(lambda ind: ind.fitness.values[0])
    stats.register("best", np.max)
    stats.register("mean", np.mean)
    stats.register("median", np.median)
    logbook = tools.Logbook()
    hof = tools.HallOfFame(1)

    def log(gen: int, pop: list[Individual]) -> dict[str, Any]:
        row: dict[str, Any] = {"gen": gen, **(record() if record else {}), **stats.compile(pop)}
        logbook.record(**row)
        return row

    pop = [Individual(new_genome(), cls) for _ in range(config.population)]
    _assign(pop, fitness)
    hof.update(pop)
    log(0, pop)
    best = hof[0].fitness.wvalues
    stale = 0
    gen = 0
    for gen in range(1, config.generations + 1):
        elite = tools.selBest(pop, config.elite) if config.elite else []
        parents = sel_tournament(pop, len(pop) - len(elite), config.tournament, rng)
        offspring = [_clone(p) for p in parents]
        for a, b in zip(offspring[::2], offspring[1::2], strict=False):
            if rng.random() < config.cx_prob:
                mate(a, b)
                del a.fitness.values, b.fitness.values
        for ind in offspring:
            if rng.random() < config.mut_prob:
                mutate(ind)
                del ind.fitness.values
            if not ind.fitness.valid and repair is not None:
                repair(ind)
        _assign(offspring, fitness)
        pop = [_clone(ind) for ind in elite] + offspring
        hof.update(pop)
        row = log(gen, pop)
        if on_generation is not None:
            on_generation(gen, row)
        if hof[0].fitness.wvalues > best:
            best, stale = hof[0].fitness.wvalues, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    return EvolveResult(list(hof[0]), tuple(hof[0].fitness.values), logbook, gen)


def _clone(ind: Individual) -> Individual:
    twin = Individual(list(ind), type(ind.fitness))
    twin.fitness.values = ind.fitness.values
    return twin


def evolve_pareto(
    config: GAConfig,
    rng: random.Random,
    *,
    new_genome: Callable[[], Genome],
    mate: Callable[[Genome, Genome], Any],
    mutate: Callable[[Genome], Any],
    repair: Callable[[Genome], None] | None,
    fitness: BatchFitness,
    weights: Sequence[float],
    on_generation: Callable[[int, list[Individual]], None] | None = None,
) -> list[Individual]:
    """NSGA-II (DEAP's ``selNSGA2`` survival) over several objectives.

    Parents are chosen by binary tournament on (Pareto rank, crowding distance); offspring are
    crossed over with probability ``cx_prob``, mutated with probability ``mut_prob``, repaired
    and scored, and the next population is the best ``population`` of parents and offspring by
    ``selNSGA2``. Stops after ``generations`` or when the first front (as a set of genomes) has
    not changed for ``patience`` generations.

    ``fitness`` sees every new genome once per generation, so a caller that wants the front of
    everything evaluated (not only of the last population) records it there.

    Returns:
        the last population (with fitness values).
    """
    cls = fitness_class(weights)

    def new(genes: Genome) -> Individual:
        return Individual(genes, cls)

    pop = [new(new_genome()) for _ in range(config.population)]
    _assign(pop, fitness)
    pop = tools.selNSGA2(pop, len(pop))
    front_key: frozenset[tuple[Any, ...]] = frozenset()
    stale = 0
    for gen in range(1, config.generations + 1):
        fronts = tools.sortNondominated(pop, len(pop))
        rank = {id(ind): r for r, front in enumerate(fronts) for ind in front}
        parents = _crowded_tournament(pop, rank, len(pop), rng)
        offspring = [new(list(p)) for p in parents]
        for a, b in zip(offspring[::2], offspring[1::2], strict=False):
            if rng.random() < config.cx_prob:
                mate(a, b)
        for ind in offspring:
            if rng.random() < config.mut_prob:
                mutate(ind)
            if repair is not None:
                repair(ind)
        _assign(offspring, fitness)
        pop = tools.selNSGA2(pop + offspring, config.population)
        first = tools.sortNondominated(pop, len(pop), first_front_only=True)[0]
        if on_generation is not None:
            on_generation(gen, first)
        key = frozenset(tuple(ind) for ind in first)
        if key == front_key:
            stale += 1
            if stale >= config.patience:
                break
        else:
            front_key, stale = key, 0
    return pop


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


def batch_fitness(
    score: Callable[[Genome], float | Sequence[float]], n_jobs: int | None = None
) -> BatchFitness:
    """A :data:`BatchFitness` scoring each genome with ``score``, in parallel through joblib.

    For fitness functions that are expensive per genome (e.g. evaluating a network pruned with
    per-layer ratios). The workers come from the caller's joblib configuration
    (:func:`ensprune.parallel.parallel_config`; loky by default); ``score`` must then be
    picklable. Results do not depend on ``n_jobs``.
    """

    def fitness(genomes: list[Genome]) -> np.ndarray:
        return np.asarray(parallel_map(score, genomes, n_jobs=n_jobs), dtype=np.float64)

    return fitness
