"""Figures of a run: trial scatter per member, dense vs pruned accuracy, teams, team vs pool.

Every function takes the frames of :mod:`ensprune.report.frames` and returns a
:class:`matplotlib.figure.Figure` built without pyplot, so nothing needs a display, nothing is
kept in pyplot's global figure list, and the Agg canvas renders it to PNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ensprune.report.frames import BEST_SINGLE, DENSE_POOL, POOL, TEAM

DPI = 110
_COMPLETE = "COMPLETE"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly: no backend selection, no display
    return fig


def _method_colours(methods: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One stable colour per pruning method (sorted names, so every panel agrees)."""
    palette = colormaps["tab10"]
    return {m: palette(i % 10) for i, m in enumerate(sorted(set(methods)))}


def plot_trials(trials: pd.DataFrame, members: pd.DataFrame | None = None) -> Figure:
    """One panel per member: every completed trial's validation accuracy against sparsity.

    Points are coloured by pruning method; the Pareto front is drawn as a line, the chosen
    trial as a star, and the dense member's validation accuracy (when ``members`` is given) as
    a dotted line.

    Args:
        trials: :func:`~ensprune.report.frames.trials_frame`.
        members: :func:`~ensprune.report.frames.members_frame` (optional, for the dense line).
    """
    names = list(dict.fromkeys(members["member"])) if members is not None else []
    names += [m for m in dict.fromkeys(trials["member"]) if m not in names]
    n_cols = max(1, min(3, len(names)))
    n_rows = max(1, math.ceil(len(names) / n_cols))
    fig = _figure(4.2 * n_cols, 3.3 * n_rows + 0.6)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    done = trials[trials["state"].astype(str).str.upper() == _COMPLETE]
    colours = _method_colours([str(m) for m in done["method"].dropna()])
    dense = (
        dict(zip(members["member"], members["dense_val_accuracy"], strict=True))
        if members is not None
        else {}
    )
    for ax, name in zip(axes.flat, names, strict=False):
        rows = done[done["member"] == name]
        for method, group in rows.groupby(rows["method"].astype(str), sort=True):
            ax.scatter(
                group["sparsity"],
                group["val_accuracy"],
                s=18,
                alpha=0.7,
                color=colours.get(str(method)),
            )
        front = rows[rows["pareto"]].sort_values("sparsity")
        if len(front):
            ax.plot(front["sparsity"], front["val_accuracy"], color="black", lw=1, alpha=0.8)
        chosen = rows[rows["chosen"]]
        if len(chosen):
            ax.scatter(
                chosen["sparsity"],
                chosen["val_accuracy"],
                marker="*",
                s=180,
                color="gold",
                edgecolor="black",
                zorder=5,
            )
        if name in dense and np.isfinite(dense[name]):
            ax.axhline(dense[name], color="grey", ls=":", lw=1)
        ax.set_title(str(name), fontsize=10)
        ax.set_xlabel("sparsity (share of weights removed)")
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], ls="", marker="o", color=c, label=str(m)) for m, c in colours.items()
    ] + [
        Line2D([], [], color="black", lw=1, label="Pareto front"),
        Line2D([], [], ls="", marker="*", ms=12, mfc="gold", mec="black", label="chosen trial"),
        Line2D([], [], color="grey", ls=":", label="dense member"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6))
    return fig


def plot_member_accuracy(members: pd.DataFrame) -> Figure:
    """Dense vs pruned accuracy of every member, on validation and on test.

    A dumbbell per member (dense circle -> pruned square) instead of bars, so a zoomed axis
    does not exaggerate small differences; tick labels carry each member's sparsity.

    Args:
        members: :func:`~ensprune.report.frames.members_frame`.
    """
    n = len(members)
    fig = _figure(max(6.0, 0.9 * n + 3.0), 3.8)
    axes = fig.subplots(1, 2, sharey=True)
    x = np.arange(n)
    labels = [
        f"{name}\n{100 * float(s):.0f}% sparse"
        for name, s in zip(members["member"], members["sparsity"], strict=True)
    ]
    for ax, split in zip(axes, ("val", "test"), strict=True):
        dense = members[f"dense_{split}_accuracy"].to_numpy(dtype=float)
        pruned = members[f"pruned_{split}_accuracy"].to_numpy(dtype=float)
        ax.vlines(x, dense, pruned, color="grey", lw=1.5)
        ax.scatter(x, dense, marker="o", s=40, color="tab:blue", label="dense", zorder=3)
        ax.scatter(x, pruned, marker="s", s=40, color="tab:orange", label="pruned", zorder=3)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
        ax.set_title("validation" if split == "val" else "test", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="best", fontsize=8)
    return fig


def plot_teams(teams: pd.DataFrame, focal: Sequence[str]) -> Figure:
    """Validation accuracy against focal diversity for every candidate team.

    Colour is the team size, a circle marks a kept team and a cross a pruned one (HQ), and a
    star the selected team. One panel per focal-score column.

    Args:
        teams: :func:`~ensprune.report.frames.teams_frame`.
        focal: the focal columns to plot (:func:`~ensprune.report.frames.focal_columns`).
    """
    columns = list(focal)[:4] or []
    n_panels = max(1, len(columns))
    fig = _figure(4.6 * n_panels + 1.0, 3.8)
    axes = fig.subplots(1, n_panels, squeeze=False, sharey=True)[0]
    sizes = sorted(int(s) for s in teams["size"].dropna().unique())
    palette = colormaps["viridis"]
    colour = {s: palette(i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}
    status = teams["status"] if "status" in teams.columns else pd.Series("kept", index=teams.index)
    for ax, column in zip(axes, columns, strict=False):
        for size in sizes:
            for state, marker in (("kept", "o"), ("pruned", "x")):
                rows = teams[
                    (teams["size"] == size) & ((status == "pruned") == (state == "pruned"))
                ]
                if len(rows):
                    ax.scatter(
                        rows[column],
                        rows["val_accuracy"],
                        marker=marker,
                        s=22,
                        alpha=0.75,
                        color=colour[size],
                    )
        chosen = teams[teams["selected"]]
        if len(chosen):
            ax.scatter(
                chosen[column],
                chosen["val_accuracy"],
                marker="*",
                s=220,
                color="red",
                edgecolor="black",
                zorder=5,
            )
        ax.set_xlabel("focal diversity (consensus)" if column == "diversity" else str(column))
        ax.grid(alpha=0.3)
    if not columns:
        axes[0].text(0.5, 0.5, "teams.csv has no focal-score column", ha="center", va="center")
    axes[0].set_ylabel("validation accuracy")
    handles = [
        Line2D([], [], ls="", marker="o", color=colour[s], label=f"size {s}") for s in sizes
    ] + [
        Line2D([], [], ls="", marker="o", color="grey", label="kept"),
        Line2D([], [], ls="", marker="x", color="grey", label="pruned"),
        Line2D([], [], ls="", marker="*", ms=12, mfc="red", mec="black", label="selected"),
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    return fig


def plot_comparison(comparison: pd.DataFrame) -> Figure:
    """Selected team vs full pool vs best single member vs dense pool: test accuracy and cost.

    Args:
        comparison: :func:`~ensprune.report.frames.comparison_frame`.
    """
    order = [TEAM, POOL, BEST_SINGLE, DENSE_POOL]
    rows = comparison.set_index("ensemble").reindex(
        [o for o in order if o in set(comparison["ensemble"])]
    )
    labels = [f"{name} ({int(n)})" for name, n in zip(rows.index, rows["n_members"], strict=True)]
    y = np.arange(len(rows))[::-1]
    colours = ["tab:red", "tab:blue", "tab:green", "tab:grey"][: len(rows)]
    fig = _figure(10.0, 0.55 * len(rows) + 1.8)
    acc_ax, cost_ax = fig.subplots(1, 2, sharey=True)
    acc = rows["test_accuracy"].to_numpy(dtype=float)
    acc_ax.hlines(y, np.nanmin(acc), acc, color="lightgrey", lw=1)
    acc_ax.scatter(acc, y, color=colours, s=60, zorder=3)
    for yi, a in zip(y, acc, strict=True):
        acc_ax.annotate(f"{a:.4f}", (a, yi), xytext=(6, 4), textcoords="offset points", fontsize=8)
    acc_ax.set_yticks(y, labels)
    acc_ax.set_xlabel("test accuracy")
    _pad_x(acc_ax, acc)
    share = 100 * rows["cost_share"].to_numpy(dtype=float)
    cost_ax.barh(y, share, color=colours, alpha=0.8)
    for yi, s in zip(y, share, strict=True):
        cost_ax.annotate(
            f"{s:.1f}%", (s, yi), xytext=(4, -3), textcoords="offset points", fontsize=8
        )
    cost_ax.axvline(100, color="black", lw=0.8, ls=":")
    cost_ax.set_xlabel("MACs, % of the full pruned pool")
    cost_ax.set_xlim(0, 1.18 * float(np.nanmax(share)) if np.isfinite(share).any() else 1)
    for ax in (acc_ax, cost_ax):
        ax.grid(alpha=0.3, axis="x")
    return fig


def _pad_x(ax: Axes, values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        pad = max(0.01, 0.25 * (high - low))
        ax.set_xlim(low - pad, high + 2 * pad)  # room on the right for the value labels


def figure_png(fig: Figure) -> bytes:
    """The figure rendered as PNG bytes."""
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write the figure as a PNG file (parent folders are created) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_png(fig))
    return path


def plot_joint_front(
    front: pd.DataFrame,
    references: pd.DataFrame,
    budget: float | None,
    cost_name: str,
) -> Figure:
    """Joint selection: team test accuracy against total cost, with the references and budget.

    Args:
        front: :func:`~ensprune.report.joint.joint_front_frame` (kind, total_cost,
            val_accuracy, test_accuracy).
        references: :func:`~ensprune.report.joint.joint_references`.
        budget: the budget (a vertical line), or None.
        cost_name: what the cost measures (the x axis).
    """
    fig = _figure(8.0, 4.6)
    ax = fig.subplots()
    line = front[front["kind"] == "front"]
    if len(line):
        ax.step(line["total_cost"], line["test_accuracy"], where="post", color="tab:red",
                label="joint front (test)")  # fmt: skip
        ax.step(line["total_cost"], line["val_accuracy"], where="post", color="tab:red",
                ls=":", alpha=0.6, label="joint front (validation)")  # fmt: skip
    chosen = front[front["kind"] == "chosen"]
    ax.scatter(chosen["total_cost"], chosen["test_accuracy"], marker="*", s=220,
               color="tab:red", edgecolor="black", zorder=4, label="joint choice")  # fmt: skip
    markers = ("s", "D", "o", "^", "v", "P")
    palette = colormaps["tab10"]
    for i, (name, n, cost, acc) in enumerate(
        zip(references["reference"], references["n_members"], references["total_cost"],
            references["test_accuracy"], strict=True)
    ):  # fmt: skip
        ax.scatter([float(cost)], [float(acc)], marker=markers[i % len(markers)], s=60,
                   color=palette((i + 1) % 10), zorder=3, label=f"{name} ({int(n)})")  # fmt: skip
    if budget is not None and math.isfinite(budget) and budget > 0:
        ax.axvline(budget, color="black", lw=0.8, ls="--", label="budget")
    costs = np.concatenate([front["total_cost"], references["total_cost"]]).astype(float)
    if np.all(costs[np.isfinite(costs)] > 0):
        ax.set_xscale("log")
    ax.set_xlabel(f"total {cost_name}")
    ax.set_ylabel("ensemble test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_method_comparison(table: pd.DataFrame) -> Figure:
    """Methods at equal sparsity, one panel per architecture: best (solid) and median (dashed)
    validation accuracy per sparsity bin (:func:`~ensprune.report.breakdown.method_comparison_frame`).
    """
    architectures = sorted(table["architecture"].astype(str).unique()) or ["all"]
    fig = _figure(4.2 * len(architectures), 3.4)
    axes = fig.subplots(1, len(architectures), squeeze=False, sharey=True)[0]
    colours = _method_colours(table["method"].astype(str).tolist())
    for ax, arch in zip(axes, architectures, strict=True):
        rows = table[table["architecture"].astype(str) == arch]
        for method, group in rows.groupby(rows["method"].astype(str), sort=True):
            centre = (group["sparsity_low"] + group["sparsity_high"]) / 2
            colour = colours[str(method)]
            ax.plot(centre, group["best_val_accuracy"], "o-", color=colour, ms=4, label=method)
            ax.plot(centre, group["median_val_accuracy"], "--", color=colour, lw=1)
        ax.set_title(arch, fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_xlabel("sparsity (bin centre)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy")
    axes[0].legend(fontsize=8, title="best (solid), median (dashed)", title_fontsize=8)
    return fig


def plot_layer_sparsity(layers: pd.DataFrame) -> Figure:
    """Per-layer sparsity of the chosen pruned members as grouped bars
    (:func:`~ensprune.report.breakdown.layer_sparsity_frame`)."""
    names = list(dict.fromkeys(layers["layer"].astype(str)))
    members = list(dict.fromkeys(layers["member"].astype(str)))
    fig = _figure(max(5.0, 0.9 * len(names) * max(1, len(members)) ** 0.5 + 2), 3.6)
    ax = fig.subplots()
    width = 0.8 / max(1, len(members))
    palette = colormaps["tab10"]
    x = np.arange(len(names))
    for i, member in enumerate(members):
        rows = layers[layers["member"].astype(str) == member].set_index("layer")["sparsity"]
        heights = [float(rows.get(name, np.nan)) for name in names]
        ax.bar(x + (i - (len(members) - 1) / 2) * width, heights, width, label=member,
               color=palette(i % 10))  # fmt: skip
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of the layer's weights removed")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig
