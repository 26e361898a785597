"""A run directory as pandas DataFrames: trials, members, teams, and the team-vs-pool comparison.

Every function here reads the run directory written by the study pipeline and returns plain data;
nothing is drawn or written. This is the only place where test predictions are scored: selection
used validation data only, the report states what the chosen team does on test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.voting import DEFAULT_VOTING, VOTING, vote
from ensprune.errors import RunDirError
from ensprune.report.stats import accuracy_interval, paired_comparison, wilson_interval
from ensprune.rundir import (
    MEMBERS_CSV,
    MENU_CSV,
    PREDICTIONS,
    RUN_JSON,
    SELECTION_JSON,
    TEAMS_CSV,
    TRIALS_CSV,
    RunDir,
    open_run,
    storage_or_none,
)

# Frames take a run directory path or an open RunDir (which parses each file once).
Run = str | Path | RunDir

__all__ = [
    "BEST_SINGLE",
    "DEFAULT_VOTING",
    "DENSE_POOL",
    "MEMBERS_CSV",
    "POOL",
    "PREDICTIONS",
    "RUN_JSON",
    "SELECTION_JSON",
    "TEAM",
    "TEAMS_CSV",
    "TRIALS_CSV",
    "comparison_frame",
    "ensemble_accuracy",
    "ensemble_correct",
    "expand_params",
    "focal_columns",
    "format_summary",
    "is_team_table",
    "joint_points",
    "joint_team_sets",
    "members_frame",
    "parse_team",
    "run_info",
    "selection_info",
    "summary",
    "summary_from_frames",
    "teams_frame",
    "trials_frame",
    "voting_rule",
]

# Rows of the comparison frame, in display order.
TEAM = "selected team"
POOL = "full pool"
BEST_SINGLE = "best single member"
DENSE_POOL = "full dense pool"

VOTING_DESCRIPTIONS = {
    "plurality": "plurality voting: every member votes for its most probable class; the class "
    "with the most votes wins, ties go to the lowest class index",
    "soft": "soft voting: the class with the highest mean probability over the members wins "
    "(ties go to the lowest class index)",
    "majority": "majority voting: a class needs more than half of the members' votes, otherwise "
    "the ensemble abstains and the sample counts as wrong",
    "weighted": "weighted soft voting: the class with the highest weighted mean probability wins "
    "(the selected team's weights from selection.json; equal weights elsewhere)",
}


def ensemble_correct(
    predictions: PredictionSet,
    members: Sequence[int] | None = None,
    voting: str = DEFAULT_VOTING,
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """Per-sample correctness (bool, N) of the ensemble of ``members`` under a voting rule.

    The input of every interval and paired test in the report (see :mod:`ensprune.report.stats`);
    :func:`ensemble_accuracy` is its mean. Abstentions count as wrong.
    """
    idx = np.arange(predictions.n_members) if members is None else np.asarray(members)
    if VOTING.get(voting).weighted and weights is None:
        weights = [1.0] * len(idx)
    labels = vote(predictions.proba[idx], voting, weights)
    return np.asarray(labels == predictions.y)


def ensemble_accuracy(
    predictions: PredictionSet,
    members: Sequence[int] | None = None,
    voting: str = DEFAULT_VOTING,
    weights: Sequence[float] | None = None,
) -> float:
    """Accuracy of the ensemble of ``members`` (all when None) under a voting rule.

    Args:
        predictions: the pool's predictions on one split.
        members: pool indices of the ensemble; None for the whole pool.
        voting: a rule of :data:`ensprune.ensemble.voting.VOTING` (any case; default soft voting,
            the library-wide default); abstentions count as wrong.
        weights: one weight per ensemble member, for weighted rules (equal weights when None).

    Example:
        >>> ensemble_accuracy(PredictionSet.load("run/predictions/test.npz"), [0, 3], "soft")
    """
    return float(np.mean(ensemble_correct(predictions, members, voting, weights)))


# ----------------------------------------------------------------------------- reading the run dir


def run_info(run_dir: Run) -> dict[str, Any]:
    """The run's ``run.json`` as a dict."""
    return open_run(run_dir).info


def selection_info(run_dir: Run) -> dict[str, Any]:
    """The selector's ``selection.json`` as a dict, with its member indices checked."""
    return open_run(run_dir).selection


def voting_rule(run_dir: Run) -> str:
    """The voting rule of the run: selection.json's ``voting``, else run.json's, else soft voting."""
    return open_run(run_dir).voting


def _as_bool(values: pd.Series) -> pd.Series:
    """CSV booleans ("True", "false", 1, 0, empty) as a bool column."""
    if values.dtype == bool:
        return values
    truthy = {"true", "1", "1.0", "yes"}
    return values.map(lambda v: str(v).strip().lower() in truthy).astype(bool)


# ----------------------------------------------------------------------------------------- frames


PARAM_PREFIX = "param."


def expand_params(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Replace a column of JSON objects (method parameters) by one ``param.<name>`` column each.

    Rows without a parameter get NaN there; a cell that is not a JSON object is left as it was
    (the column is then kept), so nothing is lost.
    """
    if column not in frame.columns:
        return frame
    parsed: list[dict[str, Any]] = []
    for value in frame[column]:
        if isinstance(value, dict):
            parsed.append(value)
            continue
        try:
            item = json.loads(value) if isinstance(value, str) and value.strip() else {}
        except json.JSONDecodeError:
            return frame
        if not isinstance(item, dict):
            return frame
        parsed.append(item)
    keys = sorted({k for item in parsed for k in item})
    out = frame.drop(columns=[column])
    for key in keys:
        values = [item.get(key, math.nan) for item in parsed]
        # nested values (lists, dicts) stay readable as JSON text
        out[PARAM_PREFIX + key] = [
            json.dumps(v) if isinstance(v, list | dict) else v for v in values
        ]
    return out


def trials_frame(run_dir: Run) -> pd.DataFrame:
    """Every Optuna trial of every member study, one row each (``trials.csv``).

    Columns include member, number, state, method, target_sparsity, val_accuracy, sparsity,
    duration_s, the booleans pareto and chosen, and one ``param.<name>`` column per method
    parameter (the ``params`` JSON of trials.csv, expanded by :func:`expand_params`).
    """
    columns = ["member", "number", "state", "method", "val_accuracy", "sparsity"]
    frame = open_run(run_dir).csv(TRIALS_CSV, [*columns, "pareto", "chosen"])
    frame["member"] = frame["member"].astype(str)
    for column in ("pareto", "chosen"):
        frame[column] = _as_bool(frame[column])
    return expand_params(frame, "params")


def members_frame(run_dir: Run) -> pd.DataFrame:
    """One row per member (``members.csv``) plus its dense and pruned accuracy on test.

    ``dense_test_accuracy`` and ``pruned_test_accuracy`` are computed from the test prediction
    files, each with its 95 % Wilson interval (``..._low``, ``..._high``; ``test_samples`` is N);
    the validation columns are taken from members.csv as the search measured them. Method
    parameters are ``param.<name>`` columns.
    """
    columns = [
        "member",
        "method",
        "sparsity",
        "dense_val_accuracy",
        "pruned_val_accuracy",
        "dense_params",
        "dense_macs",
        "pruned_params",
        "pruned_macs",
    ]
    run = open_run(run_dir)
    frame = run.csv(MEMBERS_CSV, columns)
    frame["member"] = frame["member"].astype(str)
    names = tuple(frame["member"])
    test = _matching_predictions(run, "test", names)
    dense_test = _matching_predictions(run, "dense_test", names)
    _same_labels(run, test, dense_test, "test", "dense_test")
    frame["dense_test_accuracy"] = dense_test.accuracies()
    frame["pruned_test_accuracy"] = test.accuracies()
    n = len(test.y)
    for kind, preds in (("dense", dense_test), ("pruned", test)):
        bounds = [wilson_interval(round(a * n), n) for a in preds.accuracies()]
        frame[f"{kind}_test_accuracy_low"] = [b[0] for b in bounds]
        frame[f"{kind}_test_accuracy_high"] = [b[1] for b in bounds]
    frame["test_samples"] = n
    return expand_params(frame, "method_params")


def _matching_predictions(run: RunDir, split: str, names: tuple[str, ...]) -> PredictionSet:
    """A prediction file whose members are exactly members.csv's, in that order."""
    predictions = run.predictions(split)
    if predictions.names != names:
        raise RunDirError(
            f"{run.path / PREDICTIONS[split]} holds members {list(predictions.names)} but "
            f"members.csv lists {list(names)}; re-run the predictions stage"
        )
    return predictions


def _same_labels(
    run: RunDir, a: PredictionSet, b: PredictionSet, a_split: str, b_split: str
) -> None:
    if not np.array_equal(a.y, b.y):
        raise RunDirError(
            f"{PREDICTIONS[a_split]} and {PREDICTIONS[b_split]} in {run.path} are not on the same "
            "samples (their labels differ); re-run the predictions stage"
        )


# Columns that name a team in a selector's table, most reliable first (indices before names).
_TEAM_COLUMNS = ("team", "members", "names")


def teams_frame(run_dir: Run) -> pd.DataFrame | None:
    """The selector's table (``teams.csv``), or None when the run has none.

    For a table of teams (HQ's kept and pruned teams, a Pareto front, ...; a ``team``,
    ``members`` or ``names`` column, as indices "0,3,5" / "(0, 3, 5)" or member names) this
    adds ``members`` (pool indices as a tuple), ``names`` (comma-separated member names),
    ``size`` when missing, and ``selected`` (True for the team selection.json chose). Any other
    table (e.g. a genetic search's per-generation log) is returned as read.
    """
    run = open_run(run_dir)
    if not run.has(TEAMS_CSV):
        return None
    frame = run.csv(TEAMS_CSV)
    column = next((c for c in _TEAM_COLUMNS if c in frame.columns), None)
    if column is None:
        return frame
    pool = tuple(run.csv(MEMBERS_CSV, ["member"])["member"].astype(str))
    teams = [parse_team(value, pool) for value in frame[column]]
    frame["members"] = teams
    frame["names"] = [", ".join(pool[i] for i in team) for team in teams]
    if "size" not in frame.columns:
        frame["size"] = [len(team) for team in teams]
    if "status" in frame.columns:
        frame["status"] = frame["status"].astype(str).str.strip().str.lower()
    chosen: tuple[int, ...] = ()
    if run.has(SELECTION_JSON):
        chosen = tuple(sorted(run.selection["members"]))
    frame["selected"] = [tuple(sorted(team)) == chosen for team in teams]
    return frame


def is_team_table(teams: pd.DataFrame) -> bool:
    """Whether :func:`teams_frame` found one team per row with its validation accuracy."""
    return {"members", "selected", "val_accuracy", "size"} <= set(teams.columns)


def parse_team(value: object, pool: Sequence[str]) -> tuple[int, ...]:
    """A team written as indices or member names -> pool indices.

    Example:
        >>> parse_team("(0, 3)", ["a", "b", "c", "d"])
        (0, 3)
        >>> parse_team('["b", "d"]', ["a", "b", "c", "d"])
        (1, 3)
    """
    text = str(value).strip()
    tokens: list[str]
    if text.startswith("["):
        try:
            tokens = [str(t) for t in json.loads(text)]
        except json.JSONDecodeError:
            tokens = text.strip("[]").replace("'", "").replace('"', "").split(",")
    else:  # "0,3", "0;3", or a Python tuple "(0, 3)" as pandas writes one
        tokens = text.strip("()").replace(";", ",").replace("'", "").split(",")
    tokens = [t.strip() for t in tokens if t.strip()]
    # Names win over indices when every token is a member name (names may look like numbers).
    if tokens and all(t in pool for t in tokens):
        return tuple(pool.index(t) for t in tokens)
    try:
        indices = tuple(int(t) for t in tokens)
    except ValueError:
        indices = ()
    if not indices or any(not 0 <= i < len(pool) for i in indices):
        raise RunDirError(
            f"teams.csv lists team {text!r}, which is neither member indices in [0, {len(pool)}) "
            "nor member names from members.csv; re-run the selection stage"
        )
    return indices


def focal_columns(teams: pd.DataFrame, metric: str | Sequence[str] | None = None) -> list[str]:
    """The teams table's focal-diversity columns, numeric only.

    First ``diversity`` (the selector's consensus focal score) when present, then the columns
    of the selection metrics (``focal_<metric>`` or ``<metric>``, any case; ``metric`` may be a
    comma-separated string or a list), then any other column whose name starts with ``focal``;
    a column equal to an earlier one is left out.
    """
    names = metric.split(",") if isinstance(metric, str) else list(metric or [])
    lower = {str(c).lower(): c for c in teams.columns}
    found: list[str] = [lower["diversity"]] if "diversity" in lower else []
    for name in (n.strip().lower() for n in names if n.strip()):
        for candidate in (f"focal_{name}", name):
            if candidate in lower and lower[candidate] not in found:
                found.append(lower[candidate])
                break
    found += [c for c in teams.columns if str(c).lower().startswith("focal") and c not in found]
    numeric = [c for c in found if pd.api.types.is_numeric_dtype(teams[c])]
    # With one metric the consensus score is that metric's column: show it once.
    distinct: list[str] = []
    for column in numeric:
        if not any(teams[column].equals(teams[kept]) for kept in distinct):
            distinct.append(column)
    return distinct


def comparison_frame(run_dir: Run) -> pd.DataFrame:
    """Selected team vs full pool vs best single member vs full dense pool.

    The best single member is the pruned member with the highest validation accuracy (ties to
    the first), reported on test like every other row. Accuracies of several members use the
    run's voting rule (:func:`voting_rule`).

    Returns:
        One row per ensemble (``ensemble``: selected team, full pool, best single member, full
        dense pool) with n_members, members (names), val_accuracy, test_accuracy, params and macs
        (totals over the members), cost_share (macs over the full pruned pool's macs) and
        dense_cost_share (macs over the full dense pool's macs). Every accuracy has its 95 %
        Wilson interval (``..._low``, ``..._high``). Each reference row (not the team) compares
        the team with it on the same test samples: ``team_minus`` (team test accuracy minus the
        row's), its paired bootstrap interval (``team_minus_low``, ``team_minus_high``),
        McNemar's mid-p value ``mcnemar_p`` and ``beyond_noise`` (mid-p below 0.05).
    """
    cost_columns = ["dense_params", "dense_macs", "pruned_params", "pruned_macs"]
    run = open_run(run_dir)
    members = run.csv(MEMBERS_CSV, ["member", *cost_columns])
    names = tuple(members["member"].astype(str))
    voting = run.voting
    val = _matching_predictions(run, "val", names)
    test = _matching_predictions(run, "test", names)
    dense_val = _matching_predictions(run, "dense_val", names)
    dense_test = _matching_predictions(run, "dense_test", names)
    _same_labels(run, val, dense_val, "val", "dense_val")
    _same_labels(run, test, dense_test, "test", "dense_test")

    selection = run.selection
    team = list(selection["members"])
    if any(not 0 <= i < len(names) for i in team):
        raise RunDirError(
            f"selection.json picks members {team}, outside the pool of {len(names)}; "
            "re-run the selection stage"
        )
    everyone = list(range(len(names)))
    best = int(np.argmax(val.accuracies()))  # argmax keeps the first of equal accuracies
    pruned_cost = members[["pruned_params", "pruned_macs"]].to_numpy(dtype=np.float64)
    dense_cost = members[["dense_params", "dense_macs"]].to_numpy(dtype=np.float64)
    pool_macs = float(pruned_cost[:, 1].sum())
    dense_macs = float(dense_cost[:, 1].sum())

    # A weighted rule uses the selector's team weights when it wrote them; equal weights elsewhere.
    team_weights = selection.get("weights") if VOTING.get(voting).weighted else None
    if team_weights is not None and len(team_weights) != len(team):
        raise RunDirError(
            f"selection.json gives {len(team_weights)} weights for {len(team)} members; "
            "re-run the selection stage"
        )

    rows = []
    team_idx, team_val, team_test, team_cost = team, val, test, pruned_cost
    if selection.get("mode") == "joint":  # the team is made of menu points, not pruned members
        team_idx, team_val, team_test, team_cost = joint_team_sets(run)
    team_correct = ensemble_correct(team_test, team_idx, voting, team_weights)
    for label, idx, val_set, test_set, cost, weights in (
        (TEAM, team_idx, team_val, team_test, team_cost, team_weights),
        (POOL, everyone, val, test, pruned_cost, None),
        (BEST_SINGLE, [best], val, test, pruned_cost, None),
        (DENSE_POOL, everyone, dense_val, dense_test, dense_cost, None),
    ):
        params, macs = cost[idx].sum(axis=0)
        val_hits = accuracy_interval(ensemble_correct(val_set, idx, voting, weights))
        test_correct = ensemble_correct(test_set, idx, voting, weights)
        test_hits = accuracy_interval(test_correct)
        row: dict[str, Any] = {
            "ensemble": label,
            "n_members": len(idx),
            "members": ", ".join(test_set.names[i] for i in idx),
            "val_accuracy": val_hits.value,
            "val_accuracy_low": val_hits.low,
            "val_accuracy_high": val_hits.high,
            "test_accuracy": test_hits.value,
            "test_accuracy_low": test_hits.low,
            "test_accuracy_high": test_hits.high,
            "test_samples": test_hits.n,
            "params": float(params),
            "macs": float(macs),
            "cost_share": float(macs) / pool_macs if pool_macs > 0 else math.nan,
            "dense_cost_share": float(macs) / dense_macs if dense_macs > 0 else math.nan,
            "team_minus": math.nan,
            "team_minus_low": math.nan,
            "team_minus_high": math.nan,
            "mcnemar_p": math.nan,
            "beyond_noise": None,
        }
        if label != TEAM:  # the same test samples: a paired comparison
            paired = paired_comparison(team_correct, test_correct)
            row.update(
                team_minus=paired.difference,
                team_minus_low=paired.difference_low,
                team_minus_high=paired.difference_high,
                mcnemar_p=paired.test.p_mid,
                beyond_noise=paired.beyond_noise,
            )
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- joint


def joint_points(run: RunDir) -> list[int]:
    """A joint choice's menu point indices (selection.json ``points``), checked."""
    selection = run.selection
    points = selection.get("points")
    n = run.menu("val").n_points
    if not (isinstance(points, list) and points and all(isinstance(p, int) for p in points)):
        raise RunDirError(
            f"{run.path / SELECTION_JSON} is a joint choice without 'points' (menu point "
            "indices); re-run the selection stage"
        )
    if any(not 0 <= p < n for p in points):
        raise RunDirError(
            f"selection.json picks menu points {points}, outside the menu of {n}; "
            "re-run the menu and selection stages"
        )
    return points


def joint_team_sets(
    run: RunDir,
) -> tuple[list[int], PredictionSet, PredictionSet, np.ndarray]:
    """The joint team as (point indices, val menu points, test menu points, (P, 2) costs).

    The costs are (non-zero parameters, effective MACs) per point, the comparison's columns.
    """
    points = joint_points(run)
    val, test = run.menu("val"), run.menu("test")
    table = run.csv(MENU_CSV, ["nonzero_params", "effective_macs"])
    cost = table[["nonzero_params", "effective_macs"]].to_numpy(dtype=np.float64)
    return points, val.points, test.points, cost


# ---------------------------------------------------------------------------------------- summary


def summary(run_dir: Run, report_dir: str | Path | None = None) -> dict[str, Any]:
    """The run's outcome as a JSON-able dict (what ``ensprune report`` prints).

    Args:
        run_dir: the run directory.
        report_dir: where the report is (or will be) written; default ``RUN_DIR/report``.

    Returns:
        Keys ``run`` (name, dataset, storage, directories), ``voting`` (rule and its meaning),
        ``members`` (dense vs pruned accuracy on val and test, sparsity), ``selection`` (team
        names, indices, selector, metric, val and test accuracy), ``comparison`` (one dict per
        row of :func:`comparison_frame`) and ``best_single`` (that member's name).
    """
    run = open_run(run_dir)
    return summary_from_frames(
        run, members_frame(run), comparison_frame(run), report_dir=report_dir
    )


def summary_from_frames(
    run_dir: Run,
    members: pd.DataFrame,
    comparison: pd.DataFrame,
    report_dir: str | Path | None = None,
) -> dict[str, Any]:
    """:func:`summary` from frames already computed (the report builds them once)."""
    run = open_run(run_dir)
    run_dir = run.path
    info = run.info
    selection = run.selection
    voting = run.voting
    report_dir = Path(report_dir) if report_dir is not None else run_dir / "report"
    rows = {row["ensemble"]: row for row in _records(comparison)}
    team, best = rows[TEAM], rows[BEST_SINGLE]
    pool = [str(name) for name in members["member"]]
    member_columns = [
        "member",
        "method",
        "sparsity",
        "dense_val_accuracy",
        "pruned_val_accuracy",
        "dense_test_accuracy",
        "pruned_test_accuracy",
        "pruned_macs",
        "dense_macs",
        "pruned_test_accuracy_low",
        "pruned_test_accuracy_high",
    ]
    return {
        "run": {
            "name": info.get("name", run_dir.name),
            "dataset": info.get("dataset"),
            "ensprune_version": info.get("ensprune_version"),
            "created": info.get("created"),
            "run_dir": str(run_dir.resolve()),
            "storage": storage_or_none(run_dir, info),
            "report_dir": str(report_dir.resolve()),
            "report_html": str((report_dir / "report.html").resolve()),
        },
        "voting": {"rule": voting, "description": VOTING_DESCRIPTIONS.get(voting, voting)},
        "members": _records(members[[c for c in member_columns if c in members.columns]]),
        "selection": {
            "selector": selection.get("selector"),
            "metric": selection.get("metric"),
            "members": list(selection["members"]),
            "names": [pool[i] for i in selection["members"]],
            "val_accuracy": team["val_accuracy"],
            "test_accuracy": team["test_accuracy"],
            "test_accuracy_low": team.get("test_accuracy_low"),
            "test_accuracy_high": team.get("test_accuracy_high"),
            "test_samples": team.get("test_samples"),
            "cost_share": team["cost_share"],
            "dense_cost_share": team["dense_cost_share"],
            **_joint_summary(selection),
        },
        "best_single": best["members"],
        "comparison": list(rows.values()),
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-able dicts (numpy scalars -> Python, NaN -> None)."""
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: object) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as a few lines of text for the terminal.

    Example:
        >>> print(format_summary(summary("runs/mnist")))
    """
    run = summary["run"]
    lines = [
        f"Run {run['name']} (dataset {run.get('dataset') or '?'}); accuracies use "
        f"{summary['voting']['description']}.",
        "",
        "Members: accuracy dense -> pruned",
    ]
    members = summary["members"]
    width = max([len("member"), *(len(str(m["member"])) for m in members)])
    method_width = max([len("method"), *(len(str(m.get("method"))) for m in members)])
    lines.append(f"  {'member':<{width}}  {'method':<{method_width}}  sparsity  {'val':<16}  test")
    for m in members:
        lines.append(
            f"  {m['member']:<{width}}  {m.get('method')!s:<{method_width}}  "
            f"{_pct(m.get('sparsity')):>8}  "
            f"{_acc(m.get('dense_val_accuracy'))} -> {_acc(m.get('pruned_val_accuracy'))}  "
            f"{_acc(m.get('dense_test_accuracy'))} -> {_acc(m.get('pruned_test_accuracy'))}"
        )
    selection = summary["selection"]
    rows = {row["ensemble"]: row for row in summary["comparison"]}
    pool, best, dense = rows[POOL], rows[BEST_SINGLE], rows[DENSE_POOL]
    metric = selection.get("metric")
    metric_text = ", ".join(metric) if isinstance(metric, list) else metric
    team_acc = selection["test_accuracy"]
    n_team = len(selection["names"])
    lines += [
        "",
        f"Selected team ({selection.get('selector')}, metric {metric_text}), "
        f"{n_team} of {pool['n_members']} members: {', '.join(selection['names'])}",
        f"  test accuracy {_acc_ci(rows[TEAM])} (val {_acc(selection['val_accuracy'])}; "
        f"95 % Wilson interval over {rows[TEAM].get('test_samples') or '?'} test samples)",
    ]
    for label, row, note in (
        ("full pool", pool, ""),
        ("best single member", best, f"; {best['members']}, chosen on validation"),
        ("full dense pool", dense, ""),
    ):
        diff = _diff(team_acc, row["test_accuracy"])
        lines.append(f"  {label:<18} {_acc_ci(row)}  (team {diff}, {_noise(row)}{note})")
    lines += [
        f"  cost: {_pct(selection['cost_share'])} of the full pool's MACs, "
        f"{_pct(selection['dense_cost_share'])} of the dense pool's",
        *_joint_lines(selection),
        "",
        f"Report:  {run['report_html']}",
        f"Storage: {run.get('storage') or 'not recorded in run.json'}",
    ]
    if run.get("storage"):
        lines.append(f"         browse the studies with `ensprune dashboard {run['run_dir']}`")
    return "\n".join(lines)


def _joint_summary(selection: Mapping[str, Any]) -> dict[str, Any]:
    """A joint choice's extra summary keys: its operating points and its cost against the budget."""
    if selection.get("mode") != "joint":
        return {}
    return {
        "mode": "joint",
        "operating_points": selection.get("point_names", []),
        "cost_name": selection.get("cost_name"),
        "total_cost": selection.get("total_cost"),
        "budget": selection.get("budget"),
        "budget_spec": selection.get("budget_spec"),
    }


def _joint_lines(selection: Mapping[str, Any]) -> list[str]:
    if selection.get("mode") != "joint":
        return []
    budget, spec = selection.get("budget"), selection.get("budget_spec")
    total = float(selection["total_cost"])
    limit = (
        f"of the budget {float(budget):,.0f}" + (f" ({spec})" if spec else "")
        + f", {100 * total / float(budget):.1f}% used"
        if isinstance(budget, int | float) and budget
        else "(no budget)"
    )  # fmt: skip
    return [
        f"  joint operating points: {', '.join(selection['operating_points'])}",
        f"  total {selection.get('cost_name')}: {total:,.0f} {limit}",
    ]


def _acc(value: object) -> str:
    return f"{float(value):.4f}" if isinstance(value, int | float) else "  -   "


def _acc_ci(row: Mapping[str, Any]) -> str:
    """``0.9123 [0.8950, 0.9270]`` (the interval when the row has one)."""
    low, high = row.get("test_accuracy_low"), row.get("test_accuracy_high")
    if isinstance(low, int | float) and isinstance(high, int | float):
        return f"{_acc(row.get('test_accuracy'))} [{low:.4f}, {high:.4f}]"
    return _acc(row.get("test_accuracy"))


def _noise(row: Mapping[str, Any]) -> str:
    """Whether the team's difference to this row is beyond noise (McNemar's mid-p)."""
    p = row.get("mcnemar_p")
    if not isinstance(p, int | float):
        return "no paired test"
    word = "beyond noise" if row.get("beyond_noise") else "within noise"
    return f"{word}, McNemar p={p:.2g}"


def _pct(value: object) -> str:
    return f"{100 * float(value):.1f}%" if isinstance(value, int | float) else "-"


def _diff(a: object, b: object) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return "-"
    return f"{100 * (float(a) - float(b)):+.2f} pts"
