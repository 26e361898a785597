"""The HTML report of a run: one self-contained page plus the tables as CSV/Parquet and a summary.

The page carries its CSS inline and plotly's JavaScript once, embedded; its interactive figures
(zoom, hover, toggle) are small divs drawn by that script, and static figures are base64 PNG
data URIs. Nothing is fetched from anywhere, so it opens offline and can be mailed as one file.
PNG versions of the main figures are also written under ``figures/`` for papers.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ensprune.errors import CheckpointError, EnsPruneError, RunDirError
from ensprune.report import breakdown, frames, interactive, plots
from ensprune.report.importance import param_importances
from ensprune.report.joint import (
    format_cost,
    is_joint,
    joint_budget,
    joint_choice_frame,
    joint_front_frame,
    joint_references,
)
from ensprune.report.partial import READ_ERRORS, build_partial_report
from ensprune.report.tables import write_table
from ensprune.rundir import (
    MENU_CSV,
    MENUS,
    REPORT_DIR,
    RunDir,
    missing,
    open_run,
    resume_hint,
    storage_or_none,
)

logger = logging.getLogger(__name__)

REPORT_HTML = "report.html"
SUMMARY_JSON = "summary.json"
FIGURES_DIR = "figures"
MAX_TEAM_ROWS = 200
DEFAULT_TOLERANCE = (
    0.01  # the spec's default accuracy_tolerance  # larger team tables stay complete in teams.csv
)

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
.scroll { overflow-x: auto; max-width: 100%; } .scroll table { white-space: nowrap; }
.options td, .options th { text-align: left; } .plot { width: 100%; margin: 0.5rem 0 1rem; }
.beyond { color: #b00020; font-weight: 600; } .within { color: #555; }
"""


def build_report(run_dir: str | Path | RunDir, out_dir: str | Path | None = None) -> Path:
    """Write the report of a run directory and return the path of its ``report.html``.

    Writes into ``out_dir`` (default ``RUN_DIR/report``): report.html, trials.csv, members.csv
    (with test accuracies), comparison.csv, teams.csv (when the run has one), summary.json, and
    the figures as PNG files under ``figures/``.

    A run that lacks some of these files (killed half-way), or whose files this version cannot
    read (an older version wrote them), gets a partial report instead: what exists, with a
    "Missing" section naming each absent file, the stage that writes it and how to resume
    (:func:`ensprune.report.partial.build_partial_report`); a warning is logged.

    Raises:
        RunDirError: ``run_dir`` is not a run directory (it does not exist, or has no run.json).

    Example:
        >>> build_report("runs/mnist")
        PosixPath('runs/mnist/report/report.html')
    """
    run = open_run(run_dir)  # every file below is parsed once, however many frames use it
    out = Path(out_dir) if out_dir is not None else run.path / REPORT_DIR
    run.info  # noqa: B018 -- an unreadable run.json is no run directory: one line, exit 2
    absent = missing(run.path) or _missing_menus(run)
    if absent:
        return _partial_report(run, out, absent, [])
    try:
        return _full_report(run, out)
    except READ_ERRORS as exc:  # a file of another version, or half-written: report the rest
        logger.debug("full report failed", exc_info=True)
        problem = str(exc) if isinstance(exc, EnsPruneError) else f"{type(exc).__name__}: {exc}"
        return _partial_report(run, out, [], [problem])


def _missing_menus(run: RunDir) -> list[str]:
    """The menu files a joint run's report also reads, where absent."""
    try:
        joint = is_joint(run)
    except EnsPruneError:  # an unreadable selection.json: the full report names it
        return []
    return [name for name in (MENU_CSV, *MENUS.values()) if joint and not run.has(name)]


def _partial_report(run: RunDir, out: Path, absent: list[str], problems: list[str]) -> Path:
    """The report of what an incomplete run holds, with one warning naming what is missing."""
    path = build_partial_report(run, out, absent, problems, tolerance=_tolerance(run))
    what = ", ".join([*absent, *(f"unreadable: {p}" for p in problems)])
    logger.warning(
        "run %s is incomplete (missing %s); wrote a report of what exists to %s; resume with %s",
        run.path,
        what,
        path,
        resume_hint(run.path, run.info),
    )
    return path


def _full_report(run: RunDir, out: Path) -> Path:
    """The report of a complete run (every input present)."""
    info = run.info
    trials = frames.trials_frame(run)
    members = frames.members_frame(run)
    comparison = frames.comparison_frame(run)
    teams = frames.teams_frame(run)
    selection = run.selection
    facts = frames.summary_from_frames(run, members, comparison, report_dir=out)

    out.mkdir(parents=True, exist_ok=True)
    write_table(trials, out / "trials")
    write_table(members, out / "members")
    write_table(comparison, out / "comparison")
    # A rebuild must not leave a teams table or figure from an earlier build behind.
    for stale in (
        out / "teams.csv",
        out / "teams.parquet",
        out / FIGURES_DIR / "teams.png",
    ):
        stale.unlink(missing_ok=True)
    team_table = teams is not None and frames.is_team_table(teams)
    if teams is not None:
        written = teams
        if team_table:
            written = teams.assign(members=[",".join(map(str, t)) for t in teams["members"]])
        write_table(written, out / "teams")

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

    joint_html = ""
    joint_divs: dict[str, str] = {}
    if is_joint(run):
        joint_html, joint_figure, joint_divs = _joint_parts(run, comparison, out)
        joint_png = plots.figure_png(joint_figure)
        (out / FIGURES_DIR).mkdir(exist_ok=True)
        (out / FIGURES_DIR / "joint.png").write_bytes(joint_png)
        images["joint"] = "data:image/png;base64," + base64.b64encode(joint_png).decode("ascii")
        figures["joint"] = ("Joint choice: team test accuracy against total cost", joint_figure)
    tolerance = _tolerance(run)
    plotly_divs = _interactive(run, trials, members, comparison, teams, selection, tolerance)
    plotly_divs.update(joint_divs)
    sections = _breakdown_sections(run, trials, members, teams, out)
    (out / SUMMARY_JSON).write_text(json.dumps(facts, indent=2, allow_nan=False), encoding="utf-8")
    page = _page(
        info,
        facts,
        selection,
        trials,
        members,
        comparison,
        teams,
        figures,
        images,
        plotly_divs,
        tolerance,
        joint_html,
        sections,
    )
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
    plotly_divs: Mapping[str, str] | None = None,
    tolerance: float = 0.01,
    joint_html: str = "",
    sections: Mapping[str, str] | None = None,
) -> str:
    e = html.escape
    divs = dict(plotly_divs or {})
    extra = dict(sections or {})

    def plot(key: str) -> str:
        return f"<div class='plot'>{divs[key]}</div>" if key in divs else ""

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
        if k
        not in {"selector", "members", "names", "scores", "val_accuracy", "voting", "history"}
        | _JOINT_SHOWN_APART
    }
    script = f"<script>{interactive.plotly_script()}</script>" if divs or extra else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ensprune report: {e(name)}</title>",
        f"<style>{_CSS}</style>",
        script,  # plotly.js, embedded once for every figure below
        "</head><body>",
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
        f"<p class='note'>selector <code>{e(str(selection.get('selector')))}</code></p>",
        _options_table(options),
        "<p class='note'>Accuracies with their 95 % Wilson interval over the test samples. "
        "Each reference is compared with the team on the same test samples: "
        "<em>team &minus; row</em> with a paired bootstrap 95 % interval, and McNemar's mid-p "
        "test on the samples exactly one of them gets right; <em>beyond noise</em> means "
        "p &lt; 0.05.</p>",
        _scroll(_table(_comparison_display(comparison), _COMPARISON_FORMAT)),
        plot("comparison"),
        joint_html,
        plot("joint") or figure("joint"),
        "<h2>Members: dense vs pruned</h2>",
        "<p class='note'>Validation accuracies as measured by the search; test accuracies "
        "(95 % Wilson intervals) computed by the report from the prediction files.</p>",
        _latency_note(members),
        _scroll(_table(_members_display(members), _MEMBER_FORMAT)),
        figure("members"),
        extra.get("layers", ""),
        "<h2>Pruning search</h2>",
        "<p class='note'>Per member: validation accuracy against sparsity (and MACs when the "
        "trials recorded them), the Pareto front, the chosen trial (star) and the tolerance band "
        f"(accuracy tolerance {tolerance:g}) under the dense accuracy. The view is zoomed onto the band; "
        "double-click a plot to see every trial.</p>",
        *[plot(k) for k in divs if k.startswith("front:")],
        plot("importance"),
        extra.get("methods", ""),
        "<details><summary>All trials (also in trials.csv / trials.parquet)</summary>",
        _scroll(_table(trials, _TRIAL_FORMAT)),
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
            plot("teams") or figure("teams"),
            extra.get("ga_progress", ""),
            "<details><summary>Table"
            + (f" (first {len(shown)} of {len(teams)} rows; all in teams.csv)" if more else "")
            + "</summary>",
            _scroll(_table(shown, _TEAM_FORMAT)),
            "</details>",
        ]
    parts += [
        "<h2>Where things are</h2>",
        "<ul>",
        f"<li>run directory: <code>{e(str(run['run_dir']))}</code></li>",
        f"<li>Optuna storage: <code>{e(str(run.get('storage')))}</code> &mdash; browse it with "
        f"<code>ensprune dashboard {e(str(run['run_dir']))}</code></li>",
        "<li>tables next to this page, as CSV and Parquet: trials, members, comparison"
        + (", teams" if teams is not None else "")
        + "; summary.json</li>",
        "<li>PNG figures for papers: "
        + ", ".join(
            f"<a href='{FIGURES_DIR}/{e(k)}.png'>{FIGURES_DIR}/{e(k)}.png</a>" for k in images
        )
        + "</li>",
        "</ul></body></html>",
    ]
    return "\n".join(p for p in parts if p)


# selection.json keys of a joint choice that the joint section shows as a table instead
_JOINT_SHOWN_APART = {"points", "point_names", "operating_points"}


def _joint_parts(
    run: RunDir, comparison: pd.DataFrame, out: Path
) -> tuple[str, Figure, dict[str, str]]:
    """The joint choice's section: (HTML, the front figure, its plotly div).

    Writes joint_choice, joint_references and joint_front tables next to the page.
    """
    e = html.escape
    choice = joint_choice_frame(run)
    front = joint_front_frame(run)
    references = joint_references(run, comparison)
    budget = joint_budget(run)
    write_table(choice, out / "joint_choice")
    write_table(references, out / "joint_references")
    write_table(
        front.assign(points=[",".join(map(str, p)) for p in front["points"]]), out / "joint_front"
    )
    cost_name = str(budget["cost_label"])
    limit = budget["budget"]
    spent = (
        f"{format_cost(budget['total_cost'])} of the budget {format_cost(float(limit))}"
        + (f" ({e(str(budget['budget_spec']))})" if budget["budget_spec"] else "")
        + f": {100 * float(budget['share']):.1f}% used"
        if isinstance(limit, int | float) and budget["share"] is not None
        else f"{format_cost(budget['total_cost'])} (no budget)"
    )
    section = "\n".join(
        [
            "<h2>Joint choice: every member's operating point</h2>",
            f"<p><strong>Team's total {e(cost_name)}:</strong> {spent}.</p>",
            "<p class='note'>Each member is out or at one point of its menu (its dense network "
            "and its Pareto-optimal trials); the points were chosen together on validation. "
            "Point accuracies on test are computed here.</p>",
            _scroll(_table(choice, _JOINT_FORMAT)),
            "<p class='note'>Team test accuracy against total cost: the joint front (when the "
            "search wrote one: nsga2, exhaustive), the joint choice (star), the budget, and "
            "references at the two-stage operating points and dense.</p>",
        ]
    )
    budget_value = float(limit) if isinstance(limit, int | float) else None
    fig = plots.plot_joint_front(front, references, budget_value, cost_name)
    div = interactive.figure_div(
        interactive.joint_front_figure(front, references, budget_value, cost_name), "joint"
    )
    return section, fig, {"joint": div}


def _tolerance(run: RunDir) -> float:
    """The run's operating-point tolerance (``[search] accuracy_tolerance`` of its spec copy)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        spec = tomllib.loads((run.path / "spec.toml").read_text(encoding="utf-8"))
        return float(spec.get("search", {}).get("accuracy_tolerance", DEFAULT_TOLERANCE))
    except (OSError, ValueError, TypeError, AttributeError):  # missing or foreign spec copy
        return DEFAULT_TOLERANCE


def _interactive(
    run: RunDir,
    trials: pd.DataFrame,
    members: pd.DataFrame,
    comparison: pd.DataFrame,
    teams: pd.DataFrame | None,
    selection: Mapping[str, Any],
    tolerance: float,
) -> dict[str, str]:
    """The page's plotly figures as HTML fragments, keyed by their place on the page."""
    divs = {
        "comparison": interactive.figure_div(
            interactive.comparison_figure(comparison), "comparison"
        )
    }
    dense = dict(zip(members["member"], members["dense_val_accuracy"], strict=True))
    for i, member in enumerate(members["member"]):
        fig = interactive.member_front_figure(
            trials, member, dense_accuracy=float(dense[member]), tolerance=tolerance
        )
        divs[f"front:{member}"] = interactive.figure_div(fig, f"front-{i}")
    importances = _importances(run, members)
    if importances is not None:
        divs["importance"] = interactive.figure_div(
            interactive.importance_figure(importances), "importance"
        )
    if teams is not None and frames.is_team_table(teams):
        focal = frames.focal_columns(teams, selection.get("metric"))
        if focal:
            fig = interactive.teams_figure(teams, focal[0], selection.get("members"))
            divs["teams"] = interactive.figure_div(fig, "teams")
    return divs


def _breakdown_sections(
    run: RunDir,
    trials: pd.DataFrame,
    members: pd.DataFrame,
    teams: pd.DataFrame | None,
    out: Path,
) -> dict[str, str]:
    """HTML of the breakdowns (methods at equal sparsity, per-layer sparsity, GA progress), each a
    plotly figure with its table; the tables are also written next to the page."""
    e = html.escape
    sections: dict[str, str] = {}
    methods = breakdown.method_comparison_frame(trials, members)
    for stale in ("method_comparison", "layer_sparsity", "ga_progress"):
        for suffix in (".csv", ".parquet"):
            (out / f"{stale}{suffix}").unlink(missing_ok=True)
        (out / FIGURES_DIR / f"{stale}.png").unlink(missing_ok=True)
    if len(methods):
        write_table(methods, out / "method_comparison")
        _write_png(plots.plot_method_comparison(methods), out / FIGURES_DIR / "method_comparison")
        sections["methods"] = "\n".join(
            [
                "<h3>Methods compared at equal sparsity</h3>",
                "<p class='note'>Every completed trial, binned by the sparsity it reached "
                f"(bins of {breakdown.SPARSITY_BIN:g}), per architecture: the best and the median "
                "validation accuracy of each method in each bin.</p>",
                "<div class='plot'>"
                + interactive.figure_div(
                    interactive.method_comparison_figure(methods), "method-comparison"
                )
                + "</div>",
                "<details><summary>Table (also in method_comparison.csv)</summary>",
                _scroll(_table(methods, _METHODS_FORMAT)),
                "</details>",
            ]
        )
    try:
        layers = breakdown.layer_sparsity_frame(run, members["member"].astype(str))
    except (RunDirError, CheckpointError) as exc:  # checkpoints moved or never written
        logger.info("per-layer sparsity skipped: %s", exc)
        sections["layers"] = f"<p class='note'>Per-layer sparsity not shown: {e(str(exc))}</p>"
    else:
        if len(layers):
            write_table(layers, out / "layer_sparsity")
            _write_png(plots.plot_layer_sparsity(layers), out / FIGURES_DIR / "layer_sparsity")
            sections["layers"] = "\n".join(
                [
                    "<h3>Per-layer sparsity of the chosen models</h3>",
                    "<p class='note'>Each member's chosen pruned network "
                    "(<code>members/&lt;member&gt;/pruned.pt</code>): the share of each prunable "
                    "layer's dense weights that is zero or removed."
                    + (
                        " These are the members' own operating points; the joint choice's "
                        "points are listed in the joint table above.</p>"
                        if is_joint(run)
                        else "</p>"
                    ),
                    "<div class='plot'>"
                    + interactive.figure_div(
                        interactive.layer_sparsity_figure(layers), "layer-sparsity"
                    )
                    + "</div>",
                    "<details><summary>Table (also in layer_sparsity.csv)</summary>",
                    _scroll(_table(layers, _LAYER_FORMAT)),
                    "</details>",
                ]
            )
    progress = breakdown.ga_progress_frame(teams, run.selection)
    if progress is not None and len(progress):
        write_table(progress, out / "ga_progress")
        last = progress.iloc[-1]
        sections["ga_progress"] = "\n".join(
            [
                "<h3>The GA's progress</h3>",
                f"<p class='note'>{int(progress['gen'].max())} generations; "
                + (
                    "validation accuracy of the teams on each generation's first Pareto front: "
                    "the best, mean and median"
                    if "front_size" in progress.columns
                    else "the best fitness of each generation's population on validation, with "
                    "its mean and median"
                )
                + (
                    f"; {int(last['n_evaluated']):,} candidates scored in all"
                    if "n_evaluated" in progress.columns
                    else ""
                )
                + ".</p>",
                "<div class='plot'>"
                + interactive.figure_div(
                    interactive.ga_progress_figure(progress, "GA progress: fitness per generation"),
                    "ga-progress",
                )
                + "</div>",
            ]
        )
    return sections


def _write_png(figure: Figure, stem: Path) -> None:
    """A figure for papers as ``stem.png`` (not embedded: the page shows the interactive one)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".png").write_bytes(plots.figure_png(figure))


def _importances(run: RunDir, members: pd.DataFrame) -> pd.DataFrame | None:
    """Parameter importances of the member studies, or None (logged) when they cannot be read."""
    url = storage_or_none(run.path, run.info)
    if not url or "study_name" not in members.columns:
        return None
    try:
        from ensprune.report.dashboard import open_dashboard_storage

        storage = open_dashboard_storage(str(url), run.path)
    except Exception as exc:  # a storage that moved or a server that is down: no importances
        logger.info("parameter importances skipped: %s", exc)
        return None
    studies = dict(zip(members["member"], members["study_name"].astype(str), strict=True))
    frame, _ = param_importances(storage, studies)
    return frame if len(frame) else None


def _latency_note(members: pd.DataFrame) -> str:
    """How the members' latencies were measured (batch, repeats, threads), when recorded."""
    needed = ("latency_batch", "latency_repeats", "latency_threads")
    if not all(c in members.columns for c in needed) or not len(members):
        return ""

    def values(column: str) -> str:
        return "/".join(str(int(v)) for v in sorted(set(members[column].dropna())))

    return (
        "<p class='note'>Latency: CPU milliseconds per forward pass of a batch of "
        f"{values('latency_batch')}, the median over {values('latency_repeats')} timed blocks "
        f"with its interquartile range (IQR), {values('latency_threads')} torch thread(s).</p>"
    )


def _scroll(table: str) -> str:
    """A table in a box that scrolls sideways when it is wider than the page."""
    return f"<div class='scroll'>{table}</div>"


def _options_table(options: Mapping[str, Any]) -> str:
    """The selector's options as a two-column table (nested values as compact JSON)."""
    if not options:
        return ""
    e = html.escape
    rows = "".join(
        f"<tr><th>{e(str(k))}</th><td><code>"
        f"{e(v if isinstance(v, str) else json.dumps(v, default=str))}</code></td></tr>"
        for k, v in sorted(options.items())
    )
    return f"<div class='scroll'><table class='options'><tbody>{rows}</tbody></table></div>"


def _with_interval(frame: pd.DataFrame, column: str) -> pd.Series:
    low, high = frame[f"{column}_low"], frame[f"{column}_high"]
    return pd.Series(
        [
            "" if _missing(v) else f"{float(v):.4f} [{float(lo):.4f}, {float(hi):.4f}]"
            for v, lo, hi in zip(frame[column], low, high, strict=True)
        ],
        index=frame.index,
    )


def _comparison_display(comparison: pd.DataFrame) -> pd.DataFrame:
    """The comparison with accuracies as ``value [low, high]`` and a noise verdict per row."""
    shown = comparison.copy()
    for column in ("val_accuracy", "test_accuracy"):
        if f"{column}_low" in shown.columns:
            shown[column] = _with_interval(shown, column)
            shown = shown.drop(columns=[f"{column}_low", f"{column}_high"])
    if "team_minus" in shown.columns:
        shown["team − row (test)"] = [
            ""
            if _missing(d)
            else f"{100 * float(d):+.2f} pts [{100 * float(lo):+.2f}, {100 * float(hi):+.2f}]"
            for d, lo, hi in zip(
                comparison["team_minus"],
                comparison["team_minus_low"],
                comparison["team_minus_high"],
                strict=True,
            )
        ]
        shown["McNemar"] = [
            ""
            if _missing(p)
            else ("beyond noise" if beyond else "within noise") + f" (p={float(p):.2g})"
            for p, beyond in zip(comparison["mcnemar_p"], comparison["beyond_noise"], strict=True)
        ]
        shown = shown.drop(
            columns=["team_minus", "team_minus_low", "team_minus_high", "mcnemar_p", "beyond_noise"]
        )
    return shown


def _members_display(members: pd.DataFrame) -> pd.DataFrame:
    """The members table with test accuracies as ``value [low, high]``, key columns first."""
    shown = members.copy()
    for kind in ("dense", "pruned"):
        column = f"{kind}_test_accuracy"
        if f"{column}_low" in shown.columns:
            shown[column] = _with_interval(shown, column)
            shown = shown.drop(columns=[f"{column}_low", f"{column}_high"])
        latency, spread = f"{kind}_latency_ms", f"{kind}_latency_iqr_ms"
        if spread in shown.columns:  # median with its spread (runs before measure(): no IQR)
            shown[latency] = [
                "" if _missing(m) else f"{float(m):.3f} (IQR {float(q):.3f})"
                for m, q in zip(shown[latency], shown[spread], strict=True)
            ]
            shown = shown.drop(columns=[spread])
    return shown[_lead(shown, _MEMBER_LEAD)]


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
    # cells already written as text ("0.8000 [0.70, 0.88]", "0.300 (IQR 0.020)") stay as they are
    return lambda v: (
        v if isinstance(v, str) else "" if _missing(v) else f"{float(v):.{digits}f}"  # type: ignore[arg-type]
    )


def _percent(v: object) -> str:
    return "" if _missing(v) else f"{100 * float(v):.1f}%"  # type: ignore[arg-type]


def _count(v: object) -> str:
    return "" if _missing(v) else f"{float(v):,.0f}"  # type: ignore[arg-type]


def _cost(v: object) -> str:
    return "" if _missing(v) else format_cost(float(v))  # type: ignore[arg-type]


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
_METHODS_FORMAT: dict[str, Formatter] = {
    "sparsity_low": _percent,
    "sparsity_high": _percent,
    "best_val_accuracy": _ACC,
    "median_val_accuracy": _ACC,
}
_LAYER_FORMAT: dict[str, Formatter] = {"weights": _count, "nonzero": _count, "sparsity": _percent}
_JOINT_FORMAT: dict[str, Formatter] = {
    "trial": _count,  # empty for the dense network or a member out of the team
    "sparsity": _percent,
    "cost": _cost,  # MACs and parameters with separators, milliseconds to 4 digits
    "dense_cost": _cost,
    "cost_share": _percent,
    "point_val_accuracy": _ACC,
    "point_test_accuracy": _ACC,
}


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
