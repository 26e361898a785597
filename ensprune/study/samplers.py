"""Optuna samplers for the per-member searches, one registered factory each.

A factory takes the member's ``seed`` (supplied by the study) and its own knobs as keyword
arguments, and a factory that declares ``constraints_func`` gets Optuna's constraints function
when the search sets constraints (``min_accuracy``/``min_sparsity``); a spec sets the knobs under ``[search.sampler_params]``, and they are checked against
the factory's signature when the spec is loaded. Register a new one with::

    @SAMPLERS.register("qmc")
    def qmc(seed: int, scramble: bool = True) -> optuna.samplers.BaseSampler:
        return optuna.samplers.QMCSampler(seed=seed, scramble=scramble)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ensprune._registry import Registry
from ensprune.errors import SpecError

__all__ = ["SAMPLERS", "make_sampler"]

# Imported lazily in the factories: listing the samplers must not pay for importing Optuna.
SAMPLERS: Registry[Any] = Registry("sampler", supplied=("seed", "constraints_func"))
ConstraintsFunc = Callable[[Any], Sequence[float]]


@SAMPLERS.register("tpe")
def tpe(
    seed: int,
    n_startup_trials: int = 6,
    multivariate: bool = True,
    constraints_func: ConstraintsFunc | None = None,
) -> Any:
    """Tree-structured Parzen estimator, multivariate (Optuna's TPESampler); takes constraints."""
    import optuna

    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=n_startup_trials,
        multivariate=multivariate,
        constraints_func=constraints_func,
    )


@SAMPLERS.register("nsga2")
def nsga2(
    seed: int, population_size: int = 8, constraints_func: ConstraintsFunc | None = None
) -> Any:
    """NSGA-II evolutionary multi-objective search (Optuna's NSGAIISampler); takes constraints."""
    import optuna

    return optuna.samplers.NSGAIISampler(
        seed=seed, population_size=population_size, constraints_func=constraints_func
    )


@SAMPLERS.register("random")
def random(seed: int) -> Any:
    """Independent uniform sampling (Optuna's RandomSampler)."""
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def make_sampler(
    name: str, seed: int, constraints_func: ConstraintsFunc | None = None, **knobs: Any
) -> Any:
    """The seeded sampler ``name`` (any case) with its knobs; a bad knob raises :class:`SpecError`.

    ``constraints_func`` goes to samplers that declare it; the others sample without it (the
    study still marks infeasible trials and never chooses them).
    """
    SAMPLERS.check_knobs(name, knobs)
    factory = SAMPLERS.get(name)
    if constraints_func is not None and "constraints_func" in inspect.signature(factory).parameters:
        knobs = {**knobs, "constraints_func": constraints_func}
    try:
        return factory(seed=seed, **knobs)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"bad knob value for sampler {SAMPLERS.canonical(name)!r}: {exc}") from None
