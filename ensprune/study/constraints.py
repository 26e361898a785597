"""Constraints of a member study (``[search] min_accuracy``, ``min_sparsity``) as Optuna sees them.

Each trial stores ``{constraint: floor - measured}`` (``<= 0``: met) in its user attributes; with
Optuna 5 it also sets them with ``Trial.set_constraint``, which the TPE, NSGA-II and GP samplers
read, and with Optuna 4 :func:`trial_constraints` is the samplers' ``constraints_func``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial

if TYPE_CHECKING:
    from ensprune.study.spec import SearchSpec

__all__ = [
    "CONSTRAINTS_ATTR",
    "TRIALS_SET_CONSTRAINTS",
    "constraint_values",
    "is_feasible",
    "trial_constraints",
]

CONSTRAINTS_ATTR = "constraints"
# Optuna 5 reads constraints that a trial sets itself; Optuna 4 needs a sampler constraints_func.
TRIALS_SET_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")


def trial_constraints(trial: FrozenTrial) -> Sequence[float]:
    """Optuna 4's ``constraints_func``: the values the objective stored (``<= 0`` is feasible).

    A trial that stored none (it failed before measuring) counts as infeasible.
    """
    return list(trial.user_attrs.get(CONSTRAINTS_ATTR, {"unmeasured": 1.0}).values())


def is_feasible(trial: FrozenTrial) -> bool:
    """True when the trial meets the search's constraints (or the search has none)."""
    values = trial.user_attrs.get(CONSTRAINTS_ATTR)
    return values is None or all(v <= 0.0 for v in values.values())


def constraint_values(search: SearchSpec, accuracy: float, sparsity: float) -> dict[str, float]:
    """``{constraint: floor - measured}`` for each constraint the search sets (``<= 0``: met)."""
    return {
        name: float(floor - measured)
        for name, floor, measured in (
            ("min_accuracy", search.min_accuracy, accuracy),
            ("min_sparsity", search.min_sparsity, sparsity),
        )
        if floor is not None
    }
