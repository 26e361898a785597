"""The report's joint parts (``[selection] mode = "joint"``): the chosen operating points, the
team's cost against the budget, and the team accuracy-cost front, scored on test here.

The joint selector chose on the validation menu (``menus/val.npz``); this module is where the
test menu (``menus/test.npz``) is read, to state what the choice does on test.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ensprune.report.frames import (
    BEST_SINGLE,
    DENSE_POOL,
    POOL,
    ensemble_accuracy,
    joint_points,
)
from ensprune.rundir import MENU_CANDIDATES_CSV, MENU_CSV, SELECTION_JSON, TEAMS_CSV, RunDir

__all__ = [
    "COST_LABELS",
    "cost_label",
    "format_cost",
    "is_joint",
    "joint_budget",
    "joint_choice_frame",
    "joint_front_frame",
    "joint_references",
]

#: a menu's ``cost_name`` -> how the report names it (axes, the budget line)
COST_LABELS = {
    "effective_macs": "effective MACs (non-zero weights)",
    "compacted_macs": "MACs of the compacted networks",
    "nonzero_params": "non-zero parameters",
    "compacted_latency_ms": "latency of the compacted networks (ms per batch)",
}

_MENU_COLUMNS = ["point", "name", "member", "member_index", "trial", "method", "sparsity", "cost"]


def cost_label(cost_name: str) -> str:
    """A cost's name for people (``"MACs of the compacted networks"``); unknown names as given."""
    return COST_LABELS.get(cost_name, cost_name)


def format_cost(value: float) -> str:
    """A cost as text: thousands separators for counts, 4 significant digits for small values
    (milliseconds)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def is_joint(run: RunDir) -> bool:
    """Whether the run's selection is a joint choice of operating points."""
    return run.has(SELECTION_JSON) and run.json(SELECTION_JSON).get("mode") == "joint"


def joint_budget(run: RunDir) -> dict[str, Any]:
    """The team's total cost against the budget: cost_name, cost_label (:func:`cost_label`),
    total_cost, budget, budget_spec, share (total over budget; None without a budget)."""
    selection = run.selection
    budget = selection.get("budget")
    total = float(selection["total_cost"])
    return {
        "cost_name": selection.get("cost_name", "cost"),
        "cost_label": cost_label(str(selection.get("cost_name", "cost"))),
        "total_cost": total,
        "budget": budget,
        "budget_spec": selection.get("budget_spec"),
        "share": total / budget if isinstance(budget, int | float) and budget else None,
    }


def joint_choice_frame(run: RunDir) -> pd.DataFrame:
    """Members x chosen operating point: one row per member of the pool.

    Columns: member, chosen (the point's name, "out" when not in the team), trial (empty for
    the dense network or out), method, sparsity, cost, point_val_accuracy, point_test_accuracy,
    dense_cost (the member's dense network) and cost_share (cost over dense_cost).
    """
    points = set(joint_points(run))
    table = run.csv(MENU_CSV, _MENU_COLUMNS)
    val, test = run.menu("val"), run.menu("test")
    val_acc, test_acc = val.points.accuracies(), test.points.accuracies()
    rows = []
    for _, group in table.groupby("member_index", sort=True):
        dense = group[group["trial"] < 0]
        dense_cost = float(dense["cost"].iloc[0]) if len(dense) else float(group["cost"].max())
        chosen = group[group["point"].isin(points)]
        row: dict[str, Any] = {"member": str(group["member"].iloc[0]), "dense_cost": dense_cost}
        if len(chosen):
            pick = chosen.iloc[0]
            p = int(pick["point"])
            row.update(
                chosen=str(pick["name"]),
                trial=None if int(pick["trial"]) < 0 else int(pick["trial"]),
                method=str(pick["method"]),
                sparsity=float(pick["sparsity"]),
                cost=float(pick["cost"]),
                point_val_accuracy=float(val_acc[p]),
                point_test_accuracy=float(test_acc[p]),
                cost_share=float(pick["cost"]) / dense_cost if dense_cost else np.nan,
            )
        else:
            row.update(chosen="out", trial=None, method="", sparsity=np.nan, cost=0.0)
            row.update(point_val_accuracy=np.nan, point_test_accuracy=np.nan, cost_share=0.0)
        rows.append(row)
    order = ["member", "chosen", "trial", "method", "sparsity", "cost", "dense_cost"]
    frame = pd.DataFrame(rows)
    frame["trial"] = frame["trial"].astype("Int64")  # integers, empty for dense or out
    return frame[order + [c for c in frame.columns if c not in order]]


def _parse_points(value: object) -> tuple[int, ...]:
    return tuple(int(v) for v in re.findall(r"\d+", str(value)))


def joint_front_frame(run: RunDir) -> pd.DataFrame:
    """Team accuracy against total cost: the joint front (when the search wrote one) and the
    chosen team, each scored on validation and test, cheapest first.

    Columns: kind (``front`` or ``chosen``), points (tuple), names, size, total_cost,
    val_accuracy, test_accuracy. NSGA-II and exhaustive searches write their front to
    ``teams.csv``; a GA run has the chosen team only.
    """
    val, test = run.menu("val").points, run.menu("test").points
    voting = run.voting
    teams: list[tuple[str, tuple[int, ...]]] = []
    if run.has(TEAMS_CSV):
        table = run.csv(TEAMS_CSV)
        if "points" in table.columns:
            teams += [("front", _parse_points(v)) for v in table["points"]]
    teams.append(("chosen", tuple(joint_points(run))))
    rows = []
    for kind, team in teams:
        idx = list(team)
        rows.append(
            {
                "kind": kind,
                "points": team,
                "names": ", ".join(val.names[i] for i in idx),
                "size": len(idx),
                "total_cost": float(run.menu("val").cost[idx].sum()),
                "val_accuracy": ensemble_accuracy(val, idx, voting),
                "test_accuracy": ensemble_accuracy(test, idx, voting),
            }
        )
    return pd.DataFrame(rows).sort_values(["total_cost", "kind"], kind="stable")


# members.csv columns of the cost kinds it measures: (pruned member, dense member)
_REFERENCE_COST = {
    "macs": ("pruned_macs", "dense_macs"),
    "params": ("pruned_params", "dense_params"),
}
# menu_candidates.csv columns of the compacted cost kinds (members.csv times masked networks)
_CANDIDATE_COST = {"compacted_macs": "compacted_macs", "latency": "compacted_latency_ms"}


def _reference_costs(run: RunDir, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(pruned, dense) cost of every member, in members.csv order, in the choice's cost kind.

    The pruned member is at its two-stage operating point; compacted costs come from
    menu_candidates.csv (NaN where a member's two-stage checkpoint was not measured).
    """
    members = run.csv("members.csv", ["member"])
    if kind not in _CANDIDATE_COST:
        pruned_col, dense_col = _REFERENCE_COST.get(kind, _REFERENCE_COST["macs"])
        members = run.csv("members.csv", ["member", pruned_col, dense_col])
        return (
            members[pruned_col].to_numpy(dtype=np.float64),
            members[dense_col].to_numpy(dtype=np.float64),
        )
    column = _CANDIDATE_COST[kind]
    table = run.csv(MENU_CANDIDATES_CSV, ["member", "trial", "two_stage", column])
    table["two_stage"] = table["two_stage"].astype(str).str.lower() == "true"
    dense = table[table["trial"] < 0].drop_duplicates("member").set_index("member")[column]
    pruned = table[table["two_stage"]].drop_duplicates("member").set_index("member")[column]
    order = list(members["member"])
    return (
        pruned.reindex(order).to_numpy(dtype=np.float64),
        dense.reindex(order).to_numpy(dtype=np.float64),
    )


def joint_references(run: RunDir, comparison: pd.DataFrame) -> pd.DataFrame:
    """The references of the front figure, in the joint choice's cost: the full pruned pool and
    the best single pruned member (each member at its two-stage operating point), the full dense
    pool and the best single dense member (chosen on validation), scored on test.

    Columns: reference, n_members, total_cost, test_accuracy.
    """
    pruned, dense = _reference_costs(run, str(run.selection.get("cost", "macs")))
    rows = comparison.set_index("ensemble")
    best_pruned = int(np.argmax(run.predictions("val").accuracies()))
    best_dense = int(np.argmax(run.predictions("dense_val").accuracies()))
    dense_test = run.predictions("dense_test")
    out = [
        (POOL, len(pruned), pruned.sum(), rows.loc[POOL, "test_accuracy"]),
        (BEST_SINGLE + " (pruned)", 1, pruned[best_pruned], rows.loc[BEST_SINGLE, "test_accuracy"]),
        (DENSE_POOL, len(dense), dense.sum(), rows.loc[DENSE_POOL, "test_accuracy"]),
        (
            "best single dense member",
            1,
            dense[best_dense],
            ensemble_accuracy(dense_test, [best_dense], run.voting),
        ),
    ]
    return pd.DataFrame(out, columns=["reference", "n_members", "total_cost", "test_accuracy"])
