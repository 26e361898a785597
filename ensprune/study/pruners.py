"""Optuna pruners that stop hopeless trials early, one registered factory each.

A trial's fine-tuning reports the pruned network's validation accuracy after every epoch (every
epoch of every round of a gradual or iterative schedule, counted as one step each); the spec's
pruner compares that curve with the other trials of the member's study and stops a trial that
falls behind (its state is then ``PRUNED`` and it never becomes an operating point).

A spec sets ``[search] pruner = "median"`` and the factory's knobs under
``[search.pruner_params]``; they are checked against the factory's signature when the spec is
loaded. Register a new one with::

    @PRUNERS.register("percentile")
    def percentile(percentile: float = 25.0, n_startup_trials: int = 4) -> optuna.pruners.BasePruner:
        return optuna.pruners.PercentilePruner(percentile, n_startup_trials=n_startup_trials)

Member studies have two objectives (accuracy and sparsity), and Optuna's ``Trial.report``
refuses multi-objective studies; :mod:`ensprune.study.search` therefore keeps the curves in a
single-objective companion study per member study and asks the pruner there (see
``docs/search.md``).
"""

from __future__ import annotations

from typing import Any

from ensprune._registry import Registry
from ensprune.errors import SpecError

__all__ = ["NO_PRUNER", "PRUNERS", "make_pruner"]

NO_PRUNER = "none"

# Imported lazily in the factories: listing the pruners must not pay for importing Optuna.
PRUNERS: Registry[Any] = Registry("pruner")


@PRUNERS.register(NO_PRUNER)
def none() -> Any:
    """Every trial fine-tunes to the end (no curves are recorded)."""
    return None


@PRUNERS.register("median")
def median(n_startup_trials: int = 4, n_warmup_steps: int = 1, interval_steps: int = 1) -> Any:
    """Stop a trial whose accuracy is below the median of earlier trials at the same step."""
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=n_startup_trials,
        n_warmup_steps=n_warmup_steps,
        interval_steps=interval_steps,
    )


@PRUNERS.register("successive_halving")
def successive_halving(
    min_resource: int = 1, reduction_factor: int = 3, min_early_stopping_rate: int = 0
) -> Any:
    """Asynchronous successive halving (ASHA): keep the top 1/reduction_factor at each rung."""
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=min_resource,
        reduction_factor=reduction_factor,
        min_early_stopping_rate=min_early_stopping_rate,
    )


@PRUNERS.register("hyperband")
def hyperband(
    min_resource: int = 1, max_resource: int | str = "auto", reduction_factor: int = 3
) -> Any:
    """Hyperband: several successive-halving brackets with different aggressiveness."""
    import optuna

    return optuna.pruners.HyperbandPruner(
        min_resource=min_resource, max_resource=max_resource, reduction_factor=reduction_factor
    )


# Optuna checks some of these only when the first trial reports; check them all at spec load.
_MINIMUM = {"min_resource": 1, "max_resource": 1, "reduction_factor": 2, "interval_steps": 1}


def make_pruner(name: str, **knobs: Any) -> Any:
    """The pruner ``name`` (any case) with its knobs, ``None`` for ``"none"``.

    Raises:
        SpecError: an unknown knob or a value Optuna refuses (one line).
    """
    PRUNERS.check_knobs(name, knobs)
    for knob, value in knobs.items():  # Optuna accepts floats and bools where it means integers
        if knob == "max_resource" and value == "auto":
            continue
        minimum = _MINIMUM.get(knob, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SpecError(
                f"[search.pruner_params] {knob} of pruner {PRUNERS.canonical(name)!r} must be an "
                f"integer >= {minimum}; got {value!r}"
            )
    try:
        return PRUNERS.get(name)(**knobs)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"bad knob value for pruner {PRUNERS.canonical(name)!r}: {exc}") from None
