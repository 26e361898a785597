"""Trial checkpoints checked against the trial that made them, and rebuilt when they are not.

A trial checkpoint records its study and trial number (``meta["study"]``, ``meta["trial"]``). On
every run each complete trial's checkpoint is checked: missing, unreadable or belonging to
another trial, it is rebuilt by running the objective again with the trial's recorded parameters
and seed slot (a :class:`optuna.trial.FixedTrial`), which reproduces it: the trial is redone
under its own number rather than replaced, so the study's record stays whole.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import cast

import optuna
from optuna.trial import TrialState

from ensprune.errors import CheckpointError
from ensprune.models import load_model
from ensprune.study.search import SLOT_ATTR, STUDY_ATTR, MemberObjective

logger = logging.getLogger("ensprune.study")

__all__ = ["checkpoint_problem", "repair_trial_checkpoints"]


def checkpoint_problem(path: Path, study: str, number: int) -> str | None:
    """What is wrong with the checkpoint of trial ``number`` of ``study`` at ``path``, or None."""
    if not path.is_file():
        return "is missing"
    try:
        _, meta = load_model(path)
    except CheckpointError:
        return "is corrupt"
    # checkpoints from before the identity was recorded carry neither key: accepted
    owner = (meta.get("study", study), meta.get("trial", number))
    if owner != (study, number):
        return f"belongs to trial {owner[1]} of study {owner[0]!r}"
    return None


def repair_trial_checkpoints(study: optuna.Study, objective: MemberObjective) -> int:
    """Check every complete trial's checkpoint; rebuild the bad ones. Returns how many."""
    rebuilt = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        name = trial.user_attrs.get("checkpoint") or f"trial-{trial.number:04d}.pt"
        path = objective.trial_dir / name
        problem = checkpoint_problem(path, study.study_name, trial.number)
        if problem is None:
            continue
        logger.warning(
            "[%s] %s %s: rebuilding it from trial %d's parameters",
            objective.member,
            path,
            problem,
            trial.number,
        )
        fixed = optuna.trial.FixedTrial(dict(trial.params), number=trial.number)
        fixed.set_user_attr(STUDY_ATTR, study.study_name)
        fixed.set_user_attr(SLOT_ATTR, trial.user_attrs.get(SLOT_ATTR, trial.number))
        values = objective(cast(optuna.Trial, fixed))  # Optuna's stand-in for a recorded trial
        recorded = trial.values or []
        if not all(
            math.isclose(a, b, abs_tol=1e-9) for a, b in zip(values, recorded, strict=False)
        ):
            logger.warning(
                "[%s] trial %d rebuilt with values %s (recorded: %s): the dense member changed",
                objective.member,
                trial.number,
                [round(v, 4) for v in values],
                [round(v, 4) for v in recorded],
            )
        rebuilt += 1
    return rebuilt
