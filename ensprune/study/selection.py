"""The selection stage of a run: spec -> selector -> selection.json (+ teams.csv), validation only."""

from __future__ import annotations

from pathlib import Path

from ensprune import rundir as rd
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection import Selection
from ensprune.study.build import make_selector
from ensprune.study.spec import SelectionSpec


def select_team(preds: PredictionSet, spec: SelectionSpec, seed: int) -> Selection:
    """Run the spec's selector on validation predictions."""
    return make_selector(spec, seed).select(preds)


def write_selection(selection: Selection, spec: SelectionSpec, run_dir: Path) -> None:
    """Write ``selection.json`` and, when the selector made one, ``teams.csv``."""
    payload = {**selection.to_dict(), "metric": spec.metric}
    rd.write_json(Path(run_dir) / rd.SELECTION_JSON, payload)
    teams = Path(run_dir) / rd.TEAMS_CSV
    if selection.table is not None:
        rd.write_csv(teams, selection.table)
    else:
        teams.unlink(missing_ok=True)  # a stale table from an earlier selector would mislead
