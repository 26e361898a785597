"""The selection stage of a run: spec -> selector -> selection.json (+ teams.csv), validation only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ensprune.ensemble import SELECTORS, PredictionSet
from ensprune.errors import SpecError
from ensprune.study.spec import SelectionSpec


@dataclass(frozen=True)
class TeamChoice:
    """The team chosen for a run, as written to ``selection.json``."""

    selector: str
    metric: str
    voting: str
    members: list[int]
    names: list[str]
    val_accuracy: float
    scores: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    table: pd.DataFrame | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "selector": self.selector,
            "metric": self.metric,
            "voting": self.voting,
            "members": self.members,
            "names": self.names,
            "val_accuracy": self.val_accuracy,
            "scores": self.scores,
            **self.options,
        }

    def write(self, run_dir: Path) -> None:
        """Write ``selection.json`` and, when the selector made one, ``teams.csv``."""
        (run_dir / "selection.json").write_text(json.dumps(self.to_json(), indent=2, default=float))
        teams = run_dir / "teams.csv"
        if self.table is not None:
            self.table.to_csv(teams, index=False)
        elif teams.exists():
            teams.unlink()  # a stale table from an earlier selector would mislead the report


def select_team(preds: PredictionSet, spec: SelectionSpec, seed: int) -> TeamChoice:
    """Run the spec's selector on validation predictions."""
    options = {"metric": spec.metric, "beta": spec.beta, "max_size": spec.max_size, **spec.options}
    selector_cls = SELECTORS.get(spec.selector)
    try:
        selector = selector_cls(**options)
    except TypeError as exc:
        raise SpecError(f"bad [selection] options for selector {spec.selector!r}: {exc}") from None
    selection = selector.select(preds, voting=spec.voting, seed=seed)
    return TeamChoice(
        selector=spec.selector,
        metric=spec.metric,
        voting=spec.voting,
        members=[int(i) for i in selection.members],
        names=[preds.names[i] for i in selection.members],
        val_accuracy=float(selection.val_accuracy),
        scores=dict(selection.scores),
        options={"beta": spec.beta, "max_size": spec.max_size, **spec.options},
        table=selection.table,
    )
