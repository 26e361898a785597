"""The report of an incomplete run: what exists, and what is missing with the stage that writes it.

A run killed half-way, or written by an older version of ensprune, lacks some of the files the
full report reads. :func:`build_partial_report` still writes ``report.html`` (same style, one
self-contained file) and ``summary.json`` from whatever can be read: the search's trials and
per-member fronts, the members table, the chosen team. A "Missing" section at the top names
each absent or unreadable file, the stage that writes it, and the command that resumes the run.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from ensprune import rundir as rd
from ensprune.errors import EnsPruneError
from ensprune.report import frames, interactive
from ensprune.report.tables import write_table

logger = logging.getLogger(__name__)

T = TypeVar("T")

# the full report's look, in short (this page has no figures but the fronts)
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.4; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; white-space: nowrap; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f5f5f5; } .scroll { overflow-x: auto; max-width: 100%; }
.note { color: #555; font-size: 0.9rem; } .rule { background: #fff8e1; padding: 0.5rem 0.8rem; }
.plot { width: 100%; margin: 0.5rem 0 1rem; } code { background: #f3f3f3; padding: 0 0.2rem; }
"""

#: what a file of another version or a half-written run may raise while it is read
READ_ERRORS = (EnsPruneError, KeyError, ValueError, TypeError)

# outputs of a full report that a partial one does not write: removed, so that a report
# directory never mixes a stale full report's tables with a newer partial page
_FULL_ONLY = ("comparison", "teams", "joint_choice", "joint_front")


def build_partial_report(
    run: rd.RunDir,
    out: Path,
    absent: Sequence[str],
    problems: Sequence[str] = (),
    *,
    tolerance: float = 0.01,
) -> Path:
    """Write the report of what ``run`` holds into ``out`` and return its ``report.html``.

    Args:
        run: the (incomplete) run directory.
        out: the report directory.
        absent: the report inputs the run lacks (relative names, see :func:`rundir.missing`).
        problems: files that exist but could not be read (one message each).
        tolerance: the run's accuracy tolerance, drawn as a band under the dense accuracy.
    """
    problems = list(problems)
    info = _read(run_info, run, problems) or {}
    resume = rd.resume_hint(run.path, info)
    out.mkdir(parents=True, exist_ok=True)
    for stem in _FULL_ONLY:
        for suffix in (".csv", ".parquet"):
            (out / stem).with_suffix(suffix).unlink(missing_ok=True)

    trials = _read(frames.trials_frame, run, problems) if run.has(rd.TRIALS_CSV) else None
    members = _members(run, problems) if run.has(rd.MEMBERS_CSV) else None
    selection = _read(selection_info, run, problems) if run.has(rd.SELECTION_JSON) else None
    for name, frame in (("trials", trials), ("members", members)):
        if frame is not None:
            write_table(frame, out / name)
        else:
            for suffix in (".csv", ".parquet"):
                (out / name).with_suffix(suffix).unlink(missing_ok=True)

    missing_items = [
        {"file": name, "stage": rd.STAGE_OF.get(name, "?"), "path": str(run.path / name)}
        for name in absent
    ]
    facts: dict[str, Any] = {
        "partial": True,
        "run": {
            "name": info.get("name") or run.path.name,
            "dataset": info.get("dataset"),
            "run_dir": str(run.path.resolve()),
            "report_html": str((out / "report.html").resolve()),
            "storage": info.get("storage"),
        },
        "stages": sorted(k for k, v in (info.get("stages") or {}).items() if v == "done"),
        "missing": missing_items,
        "problems": problems,
        "resume": resume,
        "members": _records(members),
        "selection": selection,
    }
    rd.write_json(out / "summary.json", facts)
    page = _page(facts, trials, members, tolerance)
    return rd.write_text(out / "report.html", page)


def run_info(run: rd.RunDir) -> dict[str, Any]:
    """``run.json``."""
    return run.info


def selection_info(run: rd.RunDir) -> dict[str, Any]:
    """``selection.json`` with its team checked (member indices and, if any, names)."""
    return dict(run.selection)


def _read(read: Callable[[rd.RunDir], T], run: rd.RunDir, problems: list[str]) -> T | None:
    """``read(run)``, or None with the reason added to ``problems`` (once)."""
    try:
        return read(run)
    except READ_ERRORS as exc:
        message = str(exc) if isinstance(exc, EnsPruneError) else f"{type(exc).__name__}: {exc}"
        if message not in problems:
            problems.append(message)
        logger.debug("partial report: %s", message, exc_info=True)
        return None


def _members(run: rd.RunDir, problems: list[str]) -> pd.DataFrame | None:
    """members.csv with test accuracies when the test predictions can be read, else as written."""
    if all(run.has(rd.PREDICTIONS[split]) for split in ("test", "dense_test")):
        frame = _read(frames.members_frame, run, problems)
        if frame is not None:
            return frame
    return _read(lambda r: r.csv(rd.MEMBERS_CSV, ["member"]), run, problems)


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None:
        return []
    return json.loads(frame.to_json(orient="records"))  # NaN -> null: valid JSON


def _page(
    facts: Mapping[str, Any],
    trials: pd.DataFrame | None,
    members: pd.DataFrame | None,
    tolerance: float,
) -> str:
    e = html.escape
    name = str(facts["run"]["name"])
    divs = _fronts(trials, members, tolerance) if trials is not None else []
    missing_rows = "".join(
        f"<li><code>{e(m['file'])}</code> (the '{e(m['stage'])}' stage writes it)</li>"
        for m in facts["missing"]
    )
    problem_rows = "".join(f"<li>{e(p)}</li>" for p in facts["problems"])
    stages = ", ".join(facts["stages"]) or "none"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ensprune report (partial): {e(name)}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{interactive.plotly_script()}</script>" if divs else "",
        "</head><body>",
        f"<h1>ensprune report (partial): {e(name)}</h1>",
        "<h2>Missing</h2>",
        "<p class='rule'><strong>This run is incomplete</strong>: the report shows what exists. "
        f"Finished stages: {e(stages)}.</p>",
        f"<p>missing:</p><ul>{missing_rows}</ul>" if missing_rows else "",
        f"<p>unreadable (written by another version, or half-written):</p><ul>{problem_rows}</ul>"
        if problem_rows
        else "",
        f"<p>resume with: {e(str(facts['resume']))}, then <code>ensprune report "
        f"{e(str(facts['run']['run_dir']))}</code> again.</p>",
    ]
    selection = facts.get("selection")
    if selection:
        team = selection.get("names") or [str(i) for i in selection.get("members", [])]
        parts += [
            "<h2>Selected team</h2>",
            f"<p><strong>{len(team)} members:</strong> {e(', '.join(map(str, team)))} "
            f"(selector <code>{e(str(selection.get('selector')))}</code>, validation accuracy "
            f"{e(str(selection.get('val_accuracy')))}); test accuracies need the missing files.</p>",
        ]
    if members is not None:
        parts += [
            "<h2>Members: dense vs pruned</h2>",
            _table(members),
        ]
    if trials is not None:
        parts += [
            "<h2>Pruning search</h2>",
            "<p class='note'>Per member: validation accuracy against sparsity, the Pareto front "
            "and the chosen trial.</p>",
            *[f"<div class='plot'>{div}</div>" for div in divs],
            "<details><summary>All trials (also in trials.csv / trials.parquet)</summary>",
            _table(trials),
            "</details>",
        ]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _table(frame: pd.DataFrame) -> str:
    """A DataFrame as an escaped HTML table in a box that scrolls sideways when it is wide."""
    table = frame.to_html(
        index=False, escape=True, border=0, na_rep="", float_format=lambda v: f"{v:.4f}"
    )
    return f"<div class='scroll'>{table}</div>"


def _fronts(trials: pd.DataFrame, members: pd.DataFrame | None, tolerance: float) -> list[str]:
    """One interactive front per member of the search (the dense accuracy when members.csv has it)."""
    dense: dict[str, float] = {}
    if members is not None and "dense_val_accuracy" in members.columns:
        dense = dict(zip(members["member"].astype(str), members["dense_val_accuracy"], strict=True))
    divs = []
    for i, member in enumerate(dict.fromkeys(trials["member"])):
        accuracy = dense.get(member)
        fig = interactive.member_front_figure(
            trials,
            member,
            dense_accuracy=None if accuracy is None else float(accuracy),
            tolerance=tolerance,
        )
        divs.append(interactive.figure_div(fig, f"front-{i}"))
    return divs


def format_partial_summary(facts: Mapping[str, Any]) -> str:
    """The partial report's summary as a few lines of text for the terminal."""
    run = facts["run"]
    lines = [
        f"Run {run['name']} is incomplete (finished stages: {', '.join(facts['stages']) or 'none'}).",
    ]
    for item in facts["missing"]:
        lines.append(f"  missing: {item['file']} (the '{item['stage']}' stage writes it)")
    for problem in facts["problems"]:
        lines.append(f"  unreadable: {problem}")
    if facts["members"]:
        lines.append(f"Members: {', '.join(str(m.get('member')) for m in facts['members'])}")
    selection = facts.get("selection")
    if selection:
        team = selection.get("names") or selection.get("members") or []
        lines.append(f"Selected team: {', '.join(map(str, team))}")
    lines += [
        f"Resume with {facts['resume']}",
        "",
        f"Report (partial): {run['report_html']}",
    ]
    return "\n".join(lines)
