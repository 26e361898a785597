"""Evolutionary weight pruning: polynomial fits allocate per-layer sparsity, DEAP refines it.

The method searches *how many* weights each layer loses under one global budget
``‖W‖₀ ≤ k`` (k = the weights kept at the target sparsity); inside a layer the smallest |w| go.
Evolving per-weight masks does not scale (a genome of 10⁵-10⁶ bits); per-layer ratios do.

1. **Polynomial fits.** For each layer the cumulative distribution of the normalised magnitude
   ``u = |w| / rms(w)`` is fitted by a least-squares polynomial of degree ``degree``
   (:func:`fit_magnitude_cdf`; made monotone and clipped to [0, 1]). Pruning layer l up to
   normalised threshold ``u_l`` removes the share ``F_l(u_l)`` of it and, by the magnitude
   criterion, the relative energy ``∫₀^{u_l} u² dF_l``. Minimising the sum over layers of the
   relative energy removed subject to the budget gives (Lagrange) equal marginal costs per
   weight, ``u_l² / n_l`` equal: thresholds ``u_l = λ n_l^{exponent / 2}`` with λ found by
   bisection so that ``Σ n_l F_l(u_l)`` is the number to prune (:func:`polynomial_allocation`).
   ``exponent = 1`` is that optimum (larger layers are pruned harder); ``0`` gives every layer
   the same normalised threshold.
2. **Budget repair.** Every candidate allocation is turned into integer counts meeting the
   budget exactly (:func:`repair_counts`): rounded, clipped to each layer's bounds (the usual
   per-layer cap; every layer keeps a weight), the difference spread over the layers with room
   in proportion to their size.
3. **DEAP refinement.** Individuals are per-layer sparsities (evolved as logits); the first
   population holds the polynomial allocation, the uniform one, those of global magnitude and
   of LAMP at the same budget, and mutants of the first. Blend crossover, Gaussian mutation,
   tournament selection and elitism (the project's one GA toolkit,
   :mod:`ensprune.ensemble.selection._evolve`: DEAP's algorithms drawing from a per-run seeded
   :class:`random.Random`); fitness is the
   validation loss after a short masked fine-tune (``eval_steps`` optimiser steps from the
   dense weights, the same batches for every individual), evaluated in parallel through joblib
   on whatever backend the caller configured (:func:`ensprune.parallel.parallel_map`). The loop
   stops after ``generations`` or ``patience`` generations without a better best; each
   generation is logged.
4. The best allocation is pruned and fine-tuned with ``context.finetune`` (the same budget as
   every other method), ending at ``lr * anneal``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ensprune.data.batching import as_batch_source
from ensprune.errors import DataError, SpecError
from ensprune.models.measure import prunable_parameters
from ensprune.models.training import TrainConfig, evaluate, train_model
from ensprune.pruning._base import (
    METHODS,
    Masks,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
)
from ensprune.pruning._masks import (
    MaskEnforcer,
    _keep_all_but_lowest,
    apply_masks,
    layer_cap,
    mask_sparsity,
    masks_from_scores,
)
from ensprune.pruning.finetune import finetune
from ensprune.pruning.lamp import lamp_scores

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

CDF_POINTS = 256  # quantile points of each layer's |w| distribution the polynomial is fitted to
_EPS = 1e-6


# --- polynomial fits and the allocation derived from them -------------------------------------


def fit_magnitude_cdf(weight: torch.Tensor, degree: int) -> np.polynomial.Polynomial:
    """Least-squares polynomial ``F(u)`` of the CDF of ``u = |w| / rms(w)`` (one layer).

    Fitted to ``CDF_POINTS`` evenly spaced quantiles of u (and the point (0, 0)); evaluate it
    through :func:`cdf_values`, which makes it monotone and clips it to [0, 1].
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
        raise SpecError(f"evolutionary: degree must be an integer >= 1; got {degree!r}")
    w = weight.detach().flatten().double().abs()
    rms = float(torch.sqrt((w * w).mean()))
    u = torch.sort(w / rms).values.numpy() if rms > 0 else np.zeros(w.numel())
    probs = (np.arange(CDF_POINTS) + 0.5) / CDF_POINTS
    xs = np.concatenate([[0.0], np.quantile(u, probs)])
    ys = np.concatenate([[0.0], probs])
    span = max(float(xs[-1]), _EPS)
    return np.polynomial.Polynomial.fit(xs, ys, deg=min(degree, len(xs) - 1), domain=[0, span])


def cdf_values(poly: np.polynomial.Polynomial, u: np.ndarray) -> np.ndarray:
    """``poly`` at ascending points ``u``, made non-decreasing and clipped to [0, 1]."""
    values = np.clip(poly(np.asarray(u, dtype=np.float64)), 0.0, 1.0)
    return np.maximum.accumulate(values)


def polynomial_allocation(
    weights: Sequence[torch.Tensor], n_prune: int, degree: int, exponent: float
) -> list[float]:
    """Per-layer sparsities from polynomial CDF fits that prune about ``n_prune`` weights.

    Layer l's normalised threshold is ``λ · n_l^(exponent/2)``; λ is bisected so the fitted
    CDFs remove ``n_prune`` weights in all. The result is approximate (a fit); pass it through
    :func:`repair_counts` for the exact budget.
    """
    sizes = np.array([w.numel() for w in weights], dtype=np.float64)
    fits = [fit_magnitude_cdf(w, degree) for w in weights]
    reach = np.array([f.domain[1] for f in fits])  # largest normalised magnitude of each layer
    scale = sizes ** (exponent / 2.0)
    grid = np.linspace(0.0, 1.0, 2049)

    def shares(lam: float) -> np.ndarray:
        u = np.minimum(lam * scale, reach)
        return np.array([cdf_values(f, grid * ui)[-1] for f, ui in zip(fits, u, strict=True)])

    lo, hi = 0.0, float(np.max(reach / scale)) * 1.01
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(shares(mid) @ sizes) < n_prune:
            lo = mid
        else:
            hi = mid
    return [float(s) for s in shares(hi)]


def repair_counts(
    sparsities: Sequence[float], sizes: Sequence[int], upper: Sequence[int], n_prune: int
) -> list[int]:
    """Integer prune counts meeting the budget exactly: ``Σ c_l = n_prune``, ``0 ≤ c_l ≤ upper_l``.

    Rounds ``s_l · n_l``, clips to the bounds, then spreads the remaining difference over the
    layers that still have room in its direction, in proportion to their size (largest
    remainders first, ties to the earlier layer) until none is left. Deterministic; an
    allocation that already meets the budget is returned unchanged.

    Raises:
        SpecError: when the bounds cannot hold ``n_prune`` (``Σ upper < n_prune``).
    """
    if n_prune > sum(upper) or n_prune < 0:
        raise SpecError(
            f"evolutionary: cannot prune {n_prune} weights when the per-layer caps allow "
            f"{sum(upper)}; raise max_layer_sparsity or lower the sparsity"
        )
    counts = [
        min(max(round(s * n), 0), u) for s, n, u in zip(sparsities, sizes, upper, strict=True)
    ]
    while (diff := n_prune - sum(counts)) != 0:
        sign = 1 if diff > 0 else -1
        room = [(u - c) if sign > 0 else c for c, u in zip(counts, upper, strict=True)]
        open_layers = [i for i, r in enumerate(room) if r > 0]
        total = sum(sizes[i] for i in open_layers)
        quota = {i: abs(diff) * sizes[i] / total for i in open_layers}
        add = {i: math.floor(q) for i, q in quota.items()}
        short = abs(diff) - sum(add.values())
        for i in sorted(open_layers, key=lambda i: (-(quota[i] - add[i]), i))[:short]:
            add[i] += 1
        for i in open_layers:
            counts[i] += sign * min(add[i], room[i])
    return counts


def masks_from_counts(weights: Mapping[str, torch.Tensor], counts: Sequence[int]) -> Masks:
    """Keep-masks removing the ``counts[l]`` smallest |w| of each layer (stable ties)."""
    return {
        name: _keep_all_but_lowest(w.detach().abs().flatten().float(), int(c)).view_as(w)
        for (name, w), c in zip(weights.items(), counts, strict=True)
    }


# --- fitness ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FitnessTask:
    """Everything one fitness evaluation needs (picklable, for joblib workers)."""

    model: nn.Module
    counts: tuple[int, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    config: TrainConfig


def _fitness(task: _FitnessTask) -> float:
    """Validation loss of the dense model pruned to ``counts`` after a short masked fine-tune."""
    net = copy.deepcopy(task.model)
    masks = masks_from_counts(prunable_parameters(net), task.counts)
    apply_masks(net, masks)
    enforcer = MaskEnforcer(masks)
    if task.config.epochs > 0 and len(task.x_train):
        train_model(
            net,
            task.x_train,
            task.y_train,
            task.x_val,
            task.y_val,
            task.config,
            before_step=enforcer.before_step,
            after_step=enforcer.after_step,
            progress=False,
            keep_best=False,
        )
    loss, _ = evaluate(net, task.x_val, task.y_val, device=task.config.device)
    return loss if math.isfinite(loss) else math.inf


def _score_counts(task: _FitnessTask, counts: Sequence[int]) -> float:
    """Fitness of one allocation: minus its validation loss (the GA maximises)."""
    return -_fitness(dataclasses.replace(task, counts=tuple(int(c) for c in counts)))


def _logit(s: float) -> float:
    s = min(max(s, _EPS), 1 - _EPS)
    return math.log(s / (1 - s))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@METHODS.register("evolutionary")
class EvolutionaryPruning(PruningMethod):
    """Per-layer sparsities from polynomial fits, refined by a DEAP genetic algorithm.

    Args:
        degree: degree of each layer's polynomial CDF fit.
        exponent: how much harder larger layers are pruned by the polynomial allocation (see
            the module docstring; 1 = the equal-relative-distortion optimum).
        population: individuals per generation (>= 4).
        generations: most generations (0 keeps the polynomial allocation).
        patience: stop after this many generations without a lower best validation loss.
        eval_steps: optimiser steps of the short masked fine-tune behind each fitness value.
        eval_samples: validation samples the fitness loss is computed on (the first ones).
        sigma: standard deviation of the Gaussian mutation of a layer's logit sparsity.
        cx_prob, mut_prob: crossover probability of a pair, mutation probability of a child.
        elite: best individuals carried over unchanged.
        anneal: the final fine-tune ends at ``lr * anneal``; ``None`` disables it.
        max_layer_sparsity: per-layer cap (``None``: every layer keeps at least a tenth of the
            network's density), as in the other global methods.
        n_jobs: joblib workers for fitness evaluations (``None``: the enclosing
            :func:`ensprune.parallel.parallel_config`, else 1). Results do not depend on it.
    """

    name = "evolutionary"
    description = (
        "per-layer sparsities from polynomial fits of |w| distributions, refined by a DEAP GA "
        "(exact L0 budget, fitness = val loss after a short masked fine-tune), then fine-tuned"
    )

    def __init__(
        self,
        degree: int = 5,
        exponent: float = 1.0,
        population: int = 10,
        generations: int = 10,
        patience: int = 3,
        eval_steps: int = 20,
        eval_samples: int = 2000,
        sigma: float = 0.5,
        cx_prob: float = 0.6,
        mut_prob: float = 0.5,
        elite: int = 2,
        anneal: float | None = 0.1,
        max_layer_sparsity: float | None = None,
        n_jobs: int | None = None,
    ) -> None:
        ints = {
            "degree": (degree, 1),
            "population": (population, 4),
            "generations": (generations, 0),
            "patience": (patience, 1),
            "eval_steps": (eval_steps, 0),
            "eval_samples": (eval_samples, 1),
            "elite": (elite, 0),
        }
        for knob, (value, low) in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SpecError(f"evolutionary: {knob} must be an integer >= {low}; got {value!r}")
        if elite >= population:
            raise SpecError(
                f"evolutionary: elite must be < population; got {elite} >= {population}"
            )
        floats = {
            "exponent": (exponent, lambda v: 0.0 <= v <= 4.0, "in [0, 4]"),
            "sigma": (sigma, lambda v: v > 0, "> 0"),
            "cx_prob": (cx_prob, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
            "mut_prob": (mut_prob, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
        }
        for knob, (number, ok, rule) in floats.items():
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not ok(number):
                raise SpecError(f"evolutionary: {knob} must be a number {rule}; got {number!r}")
        if anneal is not None and not 0.0 < float(anneal) <= 1.0:
            raise SpecError(f"evolutionary: anneal must lie in (0, 1] or be None; got {anneal!r}")
        if max_layer_sparsity is not None and not 0.0 <= float(max_layer_sparsity) <= 1.0:
            raise SpecError(
                f"evolutionary: max_layer_sparsity must lie in [0, 1]; got {max_layer_sparsity!r}"
            )
        if n_jobs == 0 or isinstance(n_jobs, bool):
            raise SpecError(
                f"evolutionary: n_jobs must be a non-zero integer or None; got {n_jobs!r}"
            )
        self.degree, self.exponent = degree, float(exponent)
        self.population, self.generations, self.patience = population, generations, patience
        self.eval_steps, self.eval_samples = eval_steps, eval_samples
        self.sigma, self.cx_prob, self.mut_prob = float(sigma), float(cx_prob), float(mut_prob)
        self.elite = elite
        self.anneal = None if anneal is None else float(anneal)
        self.max_layer_sparsity = None if max_layer_sparsity is None else float(max_layer_sparsity)
        self.n_jobs = n_jobs

    def params(self) -> dict[str, Any]:
        return {
            "degree": self.degree,
            "exponent": self.exponent,
            "population": self.population,
            "generations": self.generations,
            "patience": self.patience,
            "eval_steps": self.eval_steps,
            "eval_samples": self.eval_samples,
            "sigma": self.sigma,
            "cx_prob": self.cx_prob,
            "mut_prob": self.mut_prob,
            "elite": self.elite,
            "anneal": self.anneal,
            "max_layer_sparsity": self.max_layer_sparsity,
        }

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """The fit's degree and exponent, and the GA's size and fitness budget."""
        return {
            "degree": trial.suggest_int("evolutionary.degree", 2, 9),
            "exponent": trial.suggest_float("evolutionary.exponent", 0.0, 2.0),
            "population": trial.suggest_int("evolutionary.population", 6, 16),
            "generations": trial.suggest_int("evolutionary.generations", 3, 15),
            "eval_steps": trial.suggest_int("evolutionary.eval_steps", 10, 100, log=True),
        }

    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        target = check_sparsity(sparsity)
        context = context.with_teacher(model)
        weights = {n: p.detach() for n, p in prunable_parameters(model).items()}
        if not weights:
            raise SpecError("evolutionary: the model has no prunable (Linear/Conv2d) weights")
        sizes = [w.numel() for w in weights.values()]
        total = sum(sizes)
        n_prune = round(target * total)
        cap = layer_cap(target, self.max_layer_sparsity)
        upper = [min(math.floor(cap * n + 1e-9), n - 1) for n in sizes]
        n_prune = min(n_prune, sum(upper))  # the caps bind (as in masks_from_scores)
        start = time.perf_counter()
        poly = repair_counts(
            polynomial_allocation(list(weights.values()), n_prune, self.degree, self.exponent),
            sizes,
            upper,
            n_prune,
        )
        counts, log = self._evolve(model, poly, sizes, upper, n_prune, target, context)
        search_seconds = time.perf_counter() - start
        pruned = copy.deepcopy(model)  # never modify the caller's network
        masks = masks_from_counts(prunable_parameters(pruned), counts)
        apply_masks(pruned, masks)
        history = finetune(pruned, masks, context, desc="evolutionary", anneal=self.anneal)
        names = list(weights)
        return PruningResult(
            pruned,
            masks,
            info={
                "sparsity": mask_sparsity(masks),
                "layer_sparsity": {n: c / s for n, c, s in zip(names, counts, sizes, strict=True)},
                "polynomial_allocation": {
                    n: c / s for n, c, s in zip(names, poly, sizes, strict=True)
                },
                "generations": len(log) - 1,
                "evaluations": sum(row["evaluated"] for row in log),
                "best_val_loss": [row["best"] for row in log],
                "search_seconds": search_seconds,
                "finetune_epochs": history.epochs_run,
            },
        )

    def _evolve(
        self,
        model: nn.Module,
        poly: list[int],
        sizes: list[int],
        upper: list[int],
        n_prune: int,
        target: float,
        context: PruningContext,
    ) -> tuple[list[int], list[dict[str, Any]]]:
        """The GA over per-layer sparsities; returns (best counts, per-generation log).

        Genomes are per-layer logit sparsities; fitness is minus the validation loss (the GA
        toolkit maximises), cached per allocation, new allocations scored through joblib.
        """
        from ensprune.ensemble.selection._evolve import (
            GAConfig,
            batch_fitness,
            cx_blend,
            evolve,
            mut_gaussian,
        )

        rng = random.Random(context.seed)
        fitness_config = dataclasses.replace(
            context.finetune,
            epochs=1,
            patience=0,
            seed=context.seed,
            distill=0.0,
            augment=None,
            lr_schedule="constant",
            clean_epochs=0,
        )
        steps = self.eval_steps * fitness_config.batch_size
        # the same training samples (and, through the seed, batches) for every individual
        # a small subset, held as arrays whatever the context's data is (arrays, Dataset, loader)
        train = as_batch_source(context.x_train, context.y_train, "training data")
        val = as_batch_source(context.x_val, context.y_val, "validation data")
        order = np.random.default_rng(context.seed).permutation(len(train))[:steps]
        x_fit, y_fit = train.take(order.tolist()).arrays()
        x_val, y_val = val.take(range(min(self.eval_samples, len(val)))).arrays()
        if y_fit is None or y_val is None:
            raise DataError(f"{self.name}: the training and validation data need labels")
        base_task = _FitnessTask(model, (), x_fit, y_fit, x_val, y_val, fitness_config)
        score = batch_fitness(functools.partial(_score_counts, base_task), self.n_jobs)
        cache: dict[tuple[int, ...], float] = {}
        log: list[dict[str, Any]] = []
        seen = [0]  # allocations scored up to the last progress report

        def repair(genome: list[float]) -> tuple[int, ...]:
            counts = repair_counts([_sigmoid(z) for z in genome], sizes, upper, n_prune)
            genome[:] = [_logit(c / n) for c, n in zip(counts, sizes, strict=True)]
            return tuple(counts)

        def fitness(genomes: list[list[float]]) -> np.ndarray:
            keys = [repair(list(g)) for g in genomes]
            fresh = list(dict.fromkeys(k for k in keys if k not in cache))
            if fresh:
                values = score([list(k) for k in fresh])
                cache.update(zip(fresh, (float(v) for v in values), strict=True))
            scored = np.array([cache[k] for k in keys])
            if not log:  # generation 0: the seeds and their mutants
                self._report(0, len(fresh), scored, keys[int(np.argmax(scored))], sizes, log)
                seen[0] = len(cache)
            return scored

        def genomes() -> Iterator[list[float]]:
            uniform = [round(target * n) for n in sizes]
            weights = prunable_parameters(model)
            # the allocations of global magnitude and LAMP at the same budget start the search
            # next to the fit's and the uniform one, so the GA begins from the known baselines
            known = []
            for scores in (
                {n: p.detach().abs() for n, p in weights.items()},
                {n: lamp_scores(p.detach()) for n, p in weights.items()},
            ):
                masks = masks_from_scores(scores, target, "global", self.max_layer_sparsity)
                known.append([int((~m).sum()) for m in masks.values()])
            for counts in (poly, uniform, *known):
                yield [_logit(c / n) for c, n in zip(counts, sizes, strict=True)]
            while True:
                mutant = [_logit(c / n) for c, n in zip(poly, sizes, strict=True)]
                mut_gaussian(mutant, self.sigma, 1.0, rng)
                repair(mutant)
                yield mutant

        seeds = genomes()
        if self.generations == 0:  # only the first population: keep its best
            population = [next(seeds) for _ in range(self.population)]
            values = fitness(population)
            return list(repair(population[int(np.argmax(values))])), log
        config = GAConfig(
            population=self.population,
            generations=self.generations,
            patience=self.patience,
            cx_prob=self.cx_prob,
            mut_prob=self.mut_prob,
            tournament=3,
            elite=self.elite,
        )

        def on_generation(gen: int, row: dict[str, Any]) -> None:
            best_counts = max(cache, key=lambda k: cache[k])  # the hall of fame's allocation
            self._report(gen, len(cache) - seen[0], None, best_counts, sizes, log, best=row["best"])
            seen[0] = len(cache)

        def repair_in_place(genome: list[float]) -> None:
            repair(genome)

        result = evolve(
            config,
            rng,
            new_genome=lambda: next(seeds),
            mate=lambda a, b: cx_blend(a, b, 0.3, rng),
            mutate=lambda g: mut_gaussian(g, self.sigma, 1.0 / len(sizes) ** 0.5, rng),
            repair=repair_in_place,
            fitness=fitness,
            on_generation=on_generation,
        )
        return list(repair(list(result.best))), log

    @staticmethod
    def _report(
        gen: int,
        evaluated: int,
        values: np.ndarray | None,
        counts: Sequence[int] | None,
        sizes: Sequence[int],
        log: list[dict[str, Any]],
        best: float | None = None,
    ) -> None:
        """Log one generation's progress and keep its row."""
        best_fitness = float(np.max(values)) if values is not None else float(best)  # type: ignore[arg-type]
        row = {"generation": gen, "evaluated": evaluated, "best": -best_fitness}
        log.append(row)
        detail = (
            f", best layer sparsities {[round(c / n, 4) for c, n in zip(counts, sizes, strict=True)]}"
            if counts is not None
            else ""
        )
        logger.info(
            "evolutionary generation %d: best val loss %.5f, %d new allocations scored%s",
            gen,
            row["best"],
            evaluated,
            detail,
        )
