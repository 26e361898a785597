"""Record the run's choices in the Optuna storage, so optuna-dashboard shows them.

Finished trials cannot be changed in Optuna, so the choices are study-level records on every
member study: user attributes (``ensprune.chosen_trial``, ``ensprune.operating_point``,
``ensprune.selected_team``, ``ensprune.in_selected_team``) and a Markdown note (optuna-dashboard
shows it at the top of the study page) naming the chosen trial and the selected team.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import optuna
import pandas as pd

logger = logging.getLogger(__name__)

CHOSEN_TRIAL = "ensprune.chosen_trial"
OPERATING_POINT = "ensprune.operating_point"
SELECTED_TEAM = "ensprune.selected_team"
IN_TEAM = "ensprune.in_selected_team"


def record_choices(
    storage: optuna.storages.BaseStorage,
    trials: pd.DataFrame,
    team: Sequence[str],
    selector: str,
) -> None:
    """Write each member's chosen trial and the selected team into its study.

    Args:
        storage: the run's Optuna storage.
        trials: trials.csv's frame (member, study_name, number, chosen, method, val_accuracy,
            sparsity).
        team: names of the selected members.
        selector: the selector that chose them (for the note).
    """
    chosen_rows = trials[trials["chosen"].astype(bool)]
    for _, row in chosen_rows.iterrows():
        member, name = str(row["member"]), str(row["study_name"])
        study = optuna.load_study(study_name=name, storage=storage)
        point: dict[str, Any] = {
            "trial": int(row["number"]),
            "method": str(row["method"]),
            "val_accuracy": float(row["val_accuracy"]),
            "sparsity": float(row["sparsity"]),
        }
        study.set_user_attr(CHOSEN_TRIAL, point["trial"])
        study.set_user_attr(OPERATING_POINT, point)
        study.set_user_attr(SELECTED_TEAM, list(team))
        study.set_user_attr(IN_TEAM, member in team)
        _note(study, member, point, team, selector)
    logger.info("chosen trials and the selected team recorded in the studies' user attributes")


def _note(
    study: optuna.Study,
    member: str,
    point: dict[str, Any],
    team: Sequence[str],
    selector: str,
) -> None:
    try:
        from optuna_dashboard import save_note
    except ImportError:  # a dependency, but the record above is what matters
        return
    verdict = "**in** the selected team" if member in team else "not in the selected team"
    save_note(
        study,
        f"## ensprune: member `{member}`\n\n"
        f"- operating point: **trial {point['trial']}** ({point['method']}, sparsity "
        f"{point['sparsity']:.3f}, validation accuracy {point['val_accuracy']:.4f})\n"
        f"- this member is {verdict} ({selector}): {', '.join(team)}\n",
    )


JOINT_POINT = "ensprune.joint_operating_point"


def record_joint_choices(
    storage: optuna.storages.BaseStorage,
    trials: pd.DataFrame,
    operating_points: Sequence[dict[str, Any]],
    search: str,
) -> None:
    """Write a joint choice into every member study: the member's operating point (``None``
    when it is out of the team), the team's members, and whether this member is in.

    Args:
        storage: the run's Optuna storage.
        trials: trials.csv's frame (member, study_name).
        operating_points: selection.json's ``operating_points`` (member, trial, method, ...).
        search: the joint search that chose them (for the note).
    """
    team = [str(p["member"]) for p in operating_points]
    by_member = {str(p["member"]): p for p in operating_points}
    for member, name in (
        trials[["member", "study_name"]].drop_duplicates("member").itertuples(index=False)
    ):
        study = optuna.load_study(study_name=str(name), storage=storage)
        point = by_member.get(str(member))
        study.set_user_attr(JOINT_POINT, point)
        study.set_user_attr(SELECTED_TEAM, team)
        study.set_user_attr(IN_TEAM, point is not None)
    logger.info("the joint choice (%s) recorded in the studies' user attributes", search)
