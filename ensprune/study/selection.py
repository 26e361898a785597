"""The selection stage of a run: spec -> selector -> selection.json (+ teams.csv), validation only."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ensprune.ensemble import SELECTORS, PredictionSet, Selection
from ensprune.errors import SpecError
from ensprune.study.spec import SelectionSpec


def selector_options(spec: SelectionSpec, seed: int) -> dict[str, Any]:
    """Keyword arguments for the spec's selector: shared settings plus those it declares."""
    cls = SELECTORS.get(spec.selector)
    fields = {f.name for f in dataclasses.fields(cls)}
    options: dict[str, Any] = {"voting": spec.voting, "max_size": spec.max_size, "seed": seed}
    if "metrics" in fields:
        options["metrics"] = tuple(m.strip() for m in spec.metric.split(",") if m.strip())
    if "beta" in fields:
        options["beta"] = spec.beta
    options.update(spec.options)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise SpecError(
            f"[selection.options] {unknown} are not settings of selector {spec.selector!r}; "
            f"its settings: {', '.join(sorted(fields))}"
        )
    return options


def select_team(preds: PredictionSet, spec: SelectionSpec, seed: int) -> Selection:
    """Run the spec's selector on validation predictions."""
    selector = SELECTORS.get(spec.selector)(**selector_options(spec, seed))
    return selector.select(preds)


def write_selection(selection: Selection, spec: SelectionSpec, run_dir: Path) -> None:
    """Write ``selection.json`` and, when the selector made one, ``teams.csv``."""
    payload = {**selection.to_dict(), "metric": spec.metric}
    (run_dir / "selection.json").write_text(json.dumps(payload, indent=2))
    teams = run_dir / "teams.csv"
    if selection.table is not None:
        selection.table.to_csv(teams, index=False)
    elif teams.exists():
        teams.unlink()  # a stale table from an earlier selector would mislead the report
