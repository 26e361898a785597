"""The selection stage of a run: spec -> selector -> selection.json (+ teams.csv), validation only.

``mode = "two_stage"`` runs the spec's team selector on the chosen pruned members;
``mode = "joint"`` runs the joint selector on the run's menus (every member's operating points).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ensprune import rundir as rd
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection import JointSelection, Selection
from ensprune.study.build import make_selector
from ensprune.study.spec import SelectionSpec


def select_team(preds: PredictionSet, spec: SelectionSpec, seed: int) -> Selection:
    """Run the spec's selector on validation predictions (its steps logged at INFO)."""
    selector = make_selector(spec, seed)
    selector.progress = True
    return selector.select(preds)


def write_selection(selection: Selection, spec: SelectionSpec, run_dir: Path) -> None:
    """Write ``selection.json`` and, when the selector made one, ``teams.csv``."""
    payload = {**selection.to_dict(), "metric": spec.metric}
    rd.write_json(Path(run_dir) / rd.SELECTION_JSON, payload)
    teams = Path(run_dir) / rd.TEAMS_CSV
    if selection.table is not None:
        rd.write_csv(teams, selection.table)
    else:
        teams.unlink(missing_ok=True)  # a stale table from an earlier selector would mislead


def select_joint(run_dir: Path, spec: SelectionSpec, seed: int) -> JointSelection:
    """Joint selection on the run's VALIDATION menu (``menus/val.npz``) under the spec's budget.

    Only the validation split of the menu is read here; the test split is for the report.
    """
    from ensprune.ensemble.menu import resolve_budget
    from ensprune.study.build import make_joint_selector

    menu = rd.RunDir(run_dir).menu("val")
    budget = resolve_budget(spec.options.get("budget"), menu.dense_cost())
    selector = make_joint_selector(spec, seed, budget)
    selector.progress = True  # one INFO line per generation, as the ordinary selectors log
    return selector.select_menu(menu)


def write_joint_selection(
    choice: JointSelection, spec: SelectionSpec, run_dir: Path
) -> list[dict[str, Any]]:
    """Write ``selection.json`` for a joint choice: each chosen member's operating point (trial,
    method, sparsity, cost) and the team's total cost against the budget; the front, if any,
    goes to ``teams.csv``. Returns the operating points as written."""
    import pandas as pd

    run_dir = Path(run_dir)
    menu = pd.read_csv(run_dir / rd.MENU_CSV).set_index("point")
    budget = choice.selection.params.get("budget")
    operating_points = []
    for point in choice.points:
        row = menu.loc[point]
        trial = int(row["trial"])
        operating_points.append(
            {
                "member": str(row["member"]),
                "member_index": int(row["member_index"]),
                "point": int(point),
                "name": str(row["name"]),
                "trial": None if trial < 0 else trial,  # None: the dense network
                "method": str(row["method"]),
                "sparsity": float(row["sparsity"]),
                "cost": float(row["cost"]),
                "val_accuracy": float(row["val_accuracy"]),
            }
        )
    payload = {
        **choice.to_dict(),
        "metric": spec.metric,
        "cost": spec.cost,
        "names": [p["member"] for p in operating_points],
        "budget": budget,
        "budget_spec": spec.options.get("budget"),
        "budget_used": (
            choice.total_cost / budget if isinstance(budget, int | float) and budget else None
        ),
        "operating_points": operating_points,
    }
    payload.pop("front", None)  # the front is a table: teams.csv
    rd.write_json(run_dir / rd.SELECTION_JSON, payload)
    teams = run_dir / rd.TEAMS_CSV
    table = choice.front if choice.front is not None else choice.selection.table
    if table is not None:
        rd.write_csv(teams, table)
    else:
        teams.unlink(missing_ok=True)
    return operating_points
