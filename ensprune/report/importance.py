"""Optuna's hyperparameter importances of every member study, as one DataFrame.

The member studies are multi-objective (validation accuracy, sparsity); importances are computed
for the first objective, validation accuracy: which knobs (method, sparsity, the methods' own
parameters) decide how accurate a pruned member is. Optuna's default evaluator (fANOVA) is used,
seeded, on the parameters that every completed trial of a study has.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

MIN_TRIALS = 3  # fewer completed trials carry no information about importance


def param_importances(
    storage: Any, studies: Mapping[str, str], seed: int = 0
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Parameter importances for validation accuracy, per member study.

    Args:
        storage: an Optuna storage (object or URL).
        studies: member name -> study name.
        seed: seeds the importance evaluator.

    Returns:
        (frame with columns member, param, importance, sorted by member then importance
        descending; {member: why no importances} for the studies that could not be analysed).
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for member, name in studies.items():
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            skipped[member] = f"study {name!r} is not in the storage"
            continue
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(done) < MIN_TRIALS:
            skipped[member] = f"{len(done)} completed trials (needs {MIN_TRIALS})"
            continue
        try:
            found = get_param_importances(
                study,
                evaluator=FanovaImportanceEvaluator(seed=seed),
                target=lambda t: t.values[0],
            )
        except (RuntimeError, ValueError) as exc:  # e.g. no parameter varies
            skipped[member] = str(exc).splitlines()[0]
            continue
        if not found:
            skipped[member] = "no parameter is shared by all completed trials"
            continue
        rows += [{"member": member, "param": p, "importance": float(v)} for p, v in found.items()]
    for member, why in skipped.items():
        logger.info("no parameter importances for %s: %s", member, why)
    return pd.DataFrame(rows, columns=["member", "param", "importance"]), skipped
