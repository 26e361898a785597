"""The HTML report of a run: one self-contained page plus the tables as CSV and the summary as JSON.

The page embeds its figures as base64 PNG data URIs and carries its CSS inline: no script, no
stylesheet, no font is fetched from anywhere, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ensprune.errors import RunDirError
from ensprune.report import frames, plots
from ensprune.rundir import REPORT_DIR, STAGE_OF, RunDir, missing, open_run, resume_hint

REPORT_HTML = "report.html"
SUMMARY_JSON = "summary.json"
FIGURES_DIR = "figures"
MAX_TEAM_ROWS = 200  # larger team tables stay complete in teams.csv

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9rem; } .rule { background: #fff8e1; padding: 0.5rem 0.8rem; }
img { max-width: 100%; height: auto; } code { background: #f3f3f3; padding: 0 0.2rem; }
details { margin: 0.5rem 0; } summary { cursor: pointer; }
"""


def build_report(run_dir: str | Path | RunDir, out_dir: str | Path | None = None) -> Path:
    """Write the report of a run directory and return the path of its ``report.html``.

    Writes into ``out_dir`` (default ``RUN_DIR/report``): report.html, trials.csv, members.csv
    (with test accuracies), comparison.csv, teams.csv (when the run has one), summary.json, and
    the figures as PNG files under ``figures/``.

    Raises:
        RunDirError: the run directory or one of its files is missing or unreadable.

    Example:
        >>> build_report("runs/mnist")
        PosixPath('runs/mnist/report/report.html')
    """
    run = open_run(run_dir)  # every file below is parsed once, however many frames use it
    absent = missing(run.path)
    if absent:  # name everything that is missing at once, and the stage to finish
        more = f" (and {', '.join(absent[1:])})" if len(absent) > 1 else ""
        raise RunDirError(
            f"{run.path / absent[0]} is missing{more}: the '{STAGE_OF[absent[0]]}' stage writes "
            f"it; finish the run with {resume_hint(run.path, run.info)}, then report again"
        )
    out = Path(out_dir) if out_dir is not None else run.path / REPORT_DIR
    info = run.info
    trials = frames.trials_frame(run)
    members = frames.members_frame(run)
    comparison = frames.comparison_frame(run)
    teams = frames.teams_frame(run)
    selection = run.selection
    facts = frames.summary_from_frames(run, members, comparison, report_dir=out)

    out.mkdir(parents=True, exist_ok=True)
    trials.to_csv(out / "trials.csv", index=False)
    members.to_csv(out / "members.csv", index=False)
    comparison.to_csv(out / "comparison.csv", index=False)
    # A rebuild must not leave a teams table or figure from an earlier build behind.
    for stale in (out / "teams.csv", out / FIGURES_DIR / "teams.png"):
        stale.unlink(missing_ok=True)
    team_table = teams is not None and frames.is_team_table(teams)
    if teams is not None:
        written = teams
        if team_table:
            written = teams.assign(members=[",".join(map(str, t)) for t in teams["members"]])
        written.to_csv(out / "teams.csv", index=False)

    figures = {
        "comparison": (
            "Selected team vs pool vs best single member",
            plots.plot_comparison(comparison),
        ),
        "members": ("Dense vs pruned accuracy per member", plots.plot_member_accuracy(members)),
        "trials": (
            "Pruning search: validation accuracy vs sparsity",
            plots.plot_trials(trials, members),
        ),
    }
    if teams is not None and team_table:
        focal = frames.focal_columns(teams, selection.get("metric"))
        figures["teams"] = (
            "Candidate teams: accuracy vs focal diversity",
            plots.plot_teams(teams, focal),
        )
    images: dict[str, str] = {}
    for key, (_, figure) in figures.items():
        png = plots.figure_png(figure)
        (out / FIGURES_DIR).mkdir(exist_ok=True)
        (out / FIGURES_DIR / f"{key}.png").write_bytes(png)
        images[key] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")

    (out / SUMMARY_JSON).write_text(json.dumps(facts, indent=2, allow_nan=False), encoding="utf-8")
    page = _page(info, facts, selection, trials, members, comparison, teams, figures, images)
    html_path = out / REPORT_HTML
    html_path.write_text(page, encoding="utf-8")
    return html_path


def _page(
    info: Mapping[str, Any],
    facts: Mapping[str, Any],
    selection: Mapping[str, Any],
    trials: pd.DataFrame,
    members: pd.DataFrame,
    comparison: pd.DataFrame,
    teams: pd.DataFrame | None,
    figures: Mapping[str, tuple[str, object]],
    images: Mapping[str, str],
) -> str:
    e = html.escape
    run = facts["run"]
    name = str(run["name"])
    team = facts["selection"]
    voting = facts["voting"]

    def figure(key: str) -> str:
        if key not in images:
            return ""
        title = figures[key][0]
        return (
            f'<figure><img alt="{e(title)}" src="{images[key]}">'
            f"<figcaption class='note'>{e(title)}</figcaption></figure>"
        )

    options = {
        k: v
        for k, v in selection.items()
        if k not in {"selector", "members", "names", "scores", "val_accuracy", "voting"}
    }
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ensprune report: {e(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>ensprune report: {e(name)}</h1>",
        "<p class='note'>"
        + " &middot; ".join(
            f"{e(label)}: <code>{e(str(value))}</code>"
            for label, value in (
                ("dataset", info.get("dataset")),
                ("created", info.get("created")),
                ("ensprune", info.get("ensprune_version")),
                ("storage", info.get("storage")),
            )
            if value
        )
        + "</p>",
        f"<p class='rule'><strong>Voting rule:</strong> every ensemble accuracy on this page uses "
        f"{e(voting['description'])} (<code>{e(voting['rule'])}</code>). The team was selected "
        "on the validation split; test accuracies are computed here, by the report, and were not "
        "used to choose anything.</p>",
        "<h2>Selected team</h2>",
        f"<p><strong>{len(team['names'])} members:</strong> {e(', '.join(team['names']))}</p>",
        f"<p class='note'>selector <code>{e(str(selection.get('selector')))}</code>, options "
        f"<code>{e(json.dumps(options, default=str))}</code></p>",
        _table(comparison, _COMPARISON_FORMAT),
        figure("comparison"),
        "<h2>Members: dense vs pruned</h2>",
        "<p class='note'>Validation accuracies as measured by the search; test accuracies "
        "computed by the report from the prediction files.</p>",
        _table(members[_lead(members, _MEMBER_LEAD)], _MEMBER_FORMAT),
        figure("members"),
        "<h2>Pruning search</h2>",
        figure("trials"),
        "<details><summary>All trials (also in trials.csv)</summary>",
        _table(trials, _TRIAL_FORMAT),
        "</details>",
    ]
    if teams is not None:
        # The names column says the same as the index tuples, readably.
        shown = teams.drop(columns=["members"] if "names" in teams.columns else []).head(
            MAX_TEAM_ROWS
        )
        more = len(teams) - len(shown)
        parts += [
            "<h2>Candidate teams</h2>" if "teams" in images else "<h2>Selector's table</h2>",
            figure("teams"),
            "<details><summary>Table"
            + (f" (first {len(shown)} of {len(teams)} rows; all in teams.csv)" if more else "")
            + "</summary>",
            _table(shown, _TEAM_FORMAT),
            "</details>",
        ]
    parts += [
        "<h2>Where things are</h2>",
        "<ul>",
        f"<li>run directory: <code>{e(str(run['run_dir']))}</code></li>",
        f"<li>Optuna storage: <code>{e(str(run.get('storage')))}</code> &mdash; browse it with "
        f"<code>ensprune dashboard {e(str(run['run_dir']))}</code></li>",
        "<li>tables next to this page: trials.csv, members.csv, comparison.csv"
        + (", teams.csv" if teams is not None else "")
        + ", summary.json</li>",
        "</ul></body></html>",
    ]
    return "\n".join(p for p in parts if p)


# The member table starts with what a reader compares; the remaining columns follow as stored.
_MEMBER_LEAD = (
    "member",
    "method",
    "sparsity",
    "dense_val_accuracy",
    "pruned_val_accuracy",
    "dense_test_accuracy",
    "pruned_test_accuracy",
    "dense_params",
    "pruned_params",
    "dense_macs",
    "pruned_macs",
)


def _lead(frame: pd.DataFrame, lead: Sequence[str]) -> list[str]:
    first = [c for c in lead if c in frame.columns]
    return first + [c for c in frame.columns if c not in first]


Formatter = Callable[[object], str]


def _number(digits: int) -> Formatter:
    return lambda v: "" if _missing(v) else f"{float(v):.{digits}f}"  # type: ignore[arg-type]


def _percent(v: object) -> str:
    return "" if _missing(v) else f"{100 * float(v):.1f}%"  # type: ignore[arg-type]


def _count(v: object) -> str:
    return "" if _missing(v) else f"{float(v):,.0f}"  # type: ignore[arg-type]


def _missing(v: object) -> bool:
    if v is None:
        return True
    try:
        return math.isnan(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


_ACC = _number(4)
_COMPARISON_FORMAT: dict[str, Formatter] = {
    "val_accuracy": _ACC,
    "test_accuracy": _ACC,
    "params": _count,
    "macs": _count,
    "cost_share": _percent,
    "dense_cost_share": _percent,
}
_MEMBER_FORMAT: dict[str, Formatter] = {
    **{f"{k}_{s}_accuracy": _ACC for k in ("dense", "pruned") for s in ("val", "test")},
    **{f"{k}_{c}": _count for k in ("dense", "pruned") for c in ("params", "macs")},
    "dense_latency_ms": _number(3),
    "pruned_latency_ms": _number(3),
    "sparsity": _percent,
    "target_sparsity": _percent,
}
_TRIAL_FORMAT: dict[str, Formatter] = {
    "val_accuracy": _ACC,
    "sparsity": _percent,
    "target_sparsity": _percent,
    "duration_s": _number(1),
}
_TEAM_FORMAT: dict[str, Formatter] = {"val_accuracy": _ACC}


def _table(frame: pd.DataFrame, formats: Mapping[str, Formatter]) -> str:
    """A DataFrame as an HTML table; pandas escapes every cell and header."""
    float_columns = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    formatters = {c: _number(4) for c in float_columns if c not in formats}
    formatters.update({c: f for c, f in formats.items() if c in frame.columns})
    return str(
        frame.to_html(
            index=False,
            escape=True,
            border=0,
            na_rep="",
            formatters=formatters,
        )
    )
