"""Interactive figures for the HTML report (plotly), drawn from the report's DataFrames.

Each function takes plain frames and returns a :class:`plotly.graph_objects.Figure`; nothing is
read from disk here. :func:`figure_div` renders one figure as an HTML fragment WITHOUT plotly's
JavaScript; the page embeds that script once (:func:`plotly_script`), so the report stays a
single file that opens with no network and every figure can be zoomed, hovered and toggled.

Figures:

* :func:`member_front_figure`: one member's trials, validation accuracy against sparsity and
  against MACs (when the trials carry them), the Pareto front, the chosen trial and the
  tolerance band under the dense accuracy, zoomed to the band and the front around it (double
  click resets to all points).
* :func:`importance_figure`: Optuna's parameter importances per member.
* :func:`teams_figure`: ensemble validation accuracy against focal diversity, one colour per team
  size, kept and pruned teams with different symbols, the selected team marked.
* :func:`comparison_figure`: the team and its references, test accuracy with 95 % intervals
  against total MACs (the accuracy-cost front).
* :func:`method_comparison_figure`: pruning methods at equal sparsity, per architecture.
* :func:`layer_sparsity_figure`: per-layer sparsity of the chosen pruned members.
* :func:`ga_progress_figure`: a GA selector's best, mean and median fitness per generation.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

# One colour per pruning method / team size, stable across figures (plotly's default cycle).
PALETTE = (
    "#636efa",
    "#ef553b",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
    "#ff97ff",
    "#fecb52",
)
_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png"}}
_COMPLETE = "COMPLETE"


def plotly_script() -> str:
    """plotly.js, to be embedded ONCE in a page (about 4.5 MB, no network at view time)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def figure_div(fig: go.Figure, div_id: str) -> str:
    """The HTML fragment of one figure (a div and its drawing call), without plotly.js."""
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config=_CONFIG,
            default_width="100%",
        )
    )


def _colours(keys: Sequence[Any]) -> dict[str, str]:
    return {str(k): PALETTE[i % len(PALETTE)] for i, k in enumerate(sorted({str(k) for k in keys}))}


def _hover(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """One hover text per row: ``column: value`` for the columns present."""
    present = [c for c in columns if c in frame.columns]
    texts = []
    for _, row in frame[present].iterrows():
        parts = []
        for c in present:
            v = row[c]
            if isinstance(v, float):
                if math.isnan(v):
                    continue
                v = f"{v:.4g}"
            parts.append(f"{c}: {html.escape(str(v))}")  # plotly renders a subset of HTML
        texts.append("<br>".join(parts))
    return texts


def focus_range(
    values: Sequence[float], dense: float | None, tolerance: float, chosen: float | None
) -> tuple[float, float] | None:
    """The accuracy range worth looking at: the tolerance band and the trials near it.

    From a little below the lower of (band bottom minus two tolerances, chosen trial) to a little
    above the highest accuracy. None when there is nothing finite to show.
    """
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return None
    top = max(finite + ([dense] if dense is not None and np.isfinite(dense) else []))
    anchors = [top - 4 * max(tolerance, 1e-3)]
    if dense is not None and np.isfinite(dense):
        anchors.append(dense - 3 * max(tolerance, 1e-3))
    if chosen is not None and np.isfinite(chosen):
        anchors.append(chosen)
    low = min(anchors)
    pad = max((top - low) * 0.08, 1e-3)
    return max(0.0, low - pad), min(1.0, top + pad)


def member_front_figure(
    trials: pd.DataFrame,
    member: str,
    *,
    dense_accuracy: float | None = None,
    tolerance: float = 0.01,
    cost_column: str = "macs",
) -> go.Figure:
    """One member's search: accuracy against sparsity (and against MACs when known).

    Args:
        trials: the trials frame (member, state, method, val_accuracy, sparsity, pareto, chosen;
            optionally ``macs`` and method-parameter columns shown on hover).
        member: which member.
        dense_accuracy: the dense member's validation accuracy (draws the tolerance band).
        tolerance: the operating-point rule's accuracy tolerance.
        cost_column: the per-trial cost column for the second panel.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = trials[(trials["member"].astype(str) == str(member))]
    done = rows[rows["state"].astype(str).str.upper() == _COMPLETE]
    has_cost = cost_column in done.columns and bool(done[cost_column].notna().any())
    panels = [("sparsity", "sparsity (share of weights removed)")]
    if has_cost:
        panels.append((cost_column, f"{cost_column} of the pruned member"))
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, horizontal_spacing=0.06)
    colours = _colours(done["method"].dropna().tolist() if "method" in done else [])
    hover_cols = [
        "number",
        "method",
        "val_accuracy",
        "sparsity",
        cost_column,
        *[c for c in done.columns if c.startswith("param.")],
    ]
    for col, (x, title) in enumerate(panels, start=1):
        for method, group in done.groupby(done["method"].astype(str), sort=True):
            fig.add_trace(
                go.Scatter(
                    x=group[x],
                    y=group["val_accuracy"],
                    mode="markers",
                    name=html.escape(str(method)),
                    legendgroup=str(method),
                    showlegend=col == 1,
                    marker={"color": colours.get(str(method)), "size": 8, "opacity": 0.75},
                    hovertext=_hover(group, hover_cols),
                    hoverinfo="text",
                ),
                row=1,
                col=col,
            )
        front = done[done["pareto"].astype(bool)].sort_values(x)
        if len(front):
            fig.add_trace(
                go.Scatter(
                    x=front[x],
                    y=front["val_accuracy"],
                    mode="lines",
                    name="Pareto front",
                    legendgroup="front",
                    showlegend=col == 1,
                    line={
                        "color": "black",
                        "width": 1.5,
                        "shape": "hv" if x != "sparsity" else "linear",
                    },
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
        chosen = done[done["chosen"].astype(bool)]
        if len(chosen):
            fig.add_trace(
                go.Scatter(
                    x=chosen[x],
                    y=chosen["val_accuracy"],
                    mode="markers",
                    name="chosen trial",
                    legendgroup="chosen",
                    showlegend=col == 1,
                    marker={
                        "symbol": "star",
                        "size": 18,
                        "color": "gold",
                        "line": {"color": "black", "width": 1},
                    },
                    hovertext=_hover(chosen, hover_cols),
                    hoverinfo="text",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text=title, row=1, col=col)
    if dense_accuracy is not None and np.isfinite(dense_accuracy):
        fig.add_hrect(
            y0=dense_accuracy - tolerance,
            y1=dense_accuracy,
            fillcolor="#2ca02c",
            opacity=0.12,
            line_width=0,
            annotation_text=f"tolerance {tolerance:g}",
            annotation_position="bottom left",
            row="all",
            col="all",
        )
        fig.add_hline(
            y=dense_accuracy,
            line={"color": "grey", "dash": "dot"},
            annotation_text="dense",
            annotation_position="top left",
            row="all",
            col="all",
        )
    chosen_acc = done.loc[done["chosen"].astype(bool), "val_accuracy"]
    zoom = focus_range(
        done["val_accuracy"].tolist(),
        dense_accuracy,
        tolerance,
        float(chosen_acc.iloc[0]) if len(chosen_acc) else None,
    )
    fig.update_yaxes(title_text="validation accuracy", row=1, col=1)
    if zoom is not None:
        fig.update_yaxes(range=list(zoom))
    fig.update_layout(
        title={
            "text": f"{html.escape(str(member))}: trials, Pareto front and chosen operating point"
        },
        height=380,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def importance_figure(importances: pd.DataFrame) -> go.Figure:
    """Parameter importances per member (frame columns: member, param, importance)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colours = _colours(importances["member"].tolist())
    for member, group in importances.groupby(importances["member"].astype(str), sort=False):
        fig.add_trace(
            go.Bar(
                x=group["importance"],
                y=group["param"],
                orientation="h",
                name=html.escape(str(member)),
                marker={"color": colours[str(member)]},
                hovertemplate="%{y}: %{x:.3f}<extra>" + html.escape(str(member)) + "</extra>",
            )
        )
    n_params = max(1, importances["param"].nunique())
    fig.update_layout(
        barmode="group",
        title={"text": "Parameter importances for validation accuracy (Optuna, per member)"},
        xaxis={"title": {"text": "importance (sums to 1 per member)"}, "range": [0, 1]},
        height=max(260, 60 + 40 * n_params * max(1, importances["member"].nunique()) // 2),
        margin={"l": 140, "r": 20, "t": 60, "b": 50},
    )
    return fig


def teams_figure(
    teams: pd.DataFrame, focal: str, selected: Sequence[int] | None = None
) -> go.Figure:
    """Ensemble validation accuracy against focal diversity, by team size, kept vs pruned.

    Args:
        teams: the teams frame (size, val_accuracy, the ``focal`` column; optionally status,
            names, members).
        focal: the focal-diversity column on the x axis.
        selected: the selected team's member indices (marked with a ring).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    sizes = sorted(int(s) for s in teams["size"].dropna().unique())
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sizes)}
    status = (
        teams["status"].astype(str)
        if "status" in teams.columns
        else pd.Series("kept", index=teams.index)
    )
    hover_cols = ["names", "size", "val_accuracy", focal, "status"]
    for size in sizes:
        for state, symbol in (("kept", "circle"), ("pruned", "x")):
            group = teams[(teams["size"] == size) & (status == state)]
            if not len(group):
                continue
            fig.add_trace(
                go.Scatter(
                    x=group[focal],
                    y=group["val_accuracy"],
                    mode="markers",
                    name=f"size {size} ({state})",
                    legendgroup=f"size {size}",
                    marker={
                        "color": colours[size],
                        "symbol": symbol,
                        "size": 8,
                        "opacity": 0.8 if state == "kept" else 0.45,
                    },
                    hovertext=_hover(group, hover_cols),
                    hoverinfo="text",
                )
            )
    if selected is not None and "members" in teams.columns:
        key = tuple(sorted(int(i) for i in selected))
        mask = teams["members"].map(
            lambda m: (
                tuple(sorted(int(i) for i in m)) == key if isinstance(m, tuple | list) else False
            )
        )
        chosen = teams[mask]
        if len(chosen):
            fig.add_trace(
                go.Scatter(
                    x=chosen[focal],
                    y=chosen["val_accuracy"],
                    mode="markers",
                    name="selected team",
                    marker={
                        "symbol": "circle-open",
                        "size": 20,
                        "color": "black",
                        "line": {"width": 2},
                    },
                    hoverinfo="skip",
                )
            )
    fig.update_layout(
        title={"text": f"Candidate teams: validation accuracy vs {focal}, by team size"},
        xaxis={"title": {"text": focal}},
        yaxis={"title": {"text": "ensemble validation accuracy"}},
        height=420,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return fig


def comparison_figure(comparison: pd.DataFrame, cost: str = "macs") -> go.Figure:
    """Test accuracy with its 95 % interval against total cost, one point per ensemble.

    Args:
        comparison: the comparison frame (ensemble, test_accuracy, test_accuracy_low/high,
            ``cost``; optionally mcnemar_p and verdict for the hover).
        cost: the cost column on the x axis.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    colours = _colours(comparison["ensemble"].tolist())
    for _, row in comparison.iterrows():
        acc = float(row["test_accuracy"])
        low = float(row.get("test_accuracy_low", acc))
        high = float(row.get("test_accuracy_high", acc))
        name = str(row["ensemble"])
        fig.add_trace(
            go.Scatter(
                x=[float(row[cost])],
                y=[acc],
                mode="markers",
                name=html.escape(name),
                marker={"size": 12, "color": colours[name]},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [high - acc],
                    "arrayminus": [acc - low],
                },
                hovertext=_hover(
                    pd.DataFrame([row]),
                    [
                        "ensemble",
                        "n_members",
                        "test_accuracy",
                        "test_accuracy_low",
                        "test_accuracy_high",
                        cost,
                        "verdict",
                    ],
                ),
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title={"text": "Test accuracy (95 % Wilson interval) against total cost"},
        xaxis={"title": {"text": f"total {cost}"}, "type": "log"},
        yaxis={"title": {"text": "test accuracy"}},
        height=400,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return fig


def joint_front_figure(
    front: pd.DataFrame,
    references: pd.DataFrame,
    budget: float | None,
    cost_name: str,
) -> go.Figure:
    """Joint selection: team test accuracy against total cost (the front when the search wrote
    one, the chosen team starred), the references of :func:`~ensprune.report.joint.joint_references`
    and the budget as a vertical line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    hover = ["names", "size", "total_cost", "val_accuracy", "test_accuracy"]
    line = front[front["kind"] == "front"]
    if len(line):
        fig.add_trace(
            go.Scatter(
                x=line["total_cost"],
                y=line["test_accuracy"],
                mode="lines+markers",
                line={"shape": "hv", "color": PALETTE[0]},
                name="joint front (test)",
                hovertext=_hover(line, hover),
                hoverinfo="text",
            )
        )
    chosen = front[front["kind"] == "chosen"]
    fig.add_trace(
        go.Scatter(
            x=chosen["total_cost"],
            y=chosen["test_accuracy"],
            mode="markers",
            marker={"symbol": "star", "size": 18, "color": PALETTE[0], "line": {"width": 1}},
            name="joint choice",
            hovertext=_hover(chosen, hover),
            hoverinfo="text",
        )
    )
    colours = _colours(references["reference"].tolist())
    for _, row in references.iterrows():
        name = str(row["reference"])
        fig.add_trace(
            go.Scatter(
                x=[float(row["total_cost"])],
                y=[float(row["test_accuracy"])],
                mode="markers",
                marker={"size": 11, "color": colours[name], "symbol": "square"},
                name=html.escape(f"{name} ({int(row['n_members'])})"),
                hovertext=_hover(
                    pd.DataFrame([row]), ["reference", "n_members", "total_cost", "test_accuracy"]
                ),
                hoverinfo="text",
            )
        )
    if budget is not None and math.isfinite(budget) and budget > 0:
        fig.add_vline(x=budget, line={"dash": "dash", "width": 1}, annotation_text="budget")
    costs = pd.concat([front["total_cost"], references["total_cost"]]).astype(float)
    fig.update_layout(
        title={"text": f"Joint choice: team test accuracy against total {html.escape(cost_name)}"},
        xaxis={
            "title": {"text": f"total {html.escape(cost_name)}"},
            "type": "log" if bool((costs > 0).all()) else "linear",
        },
        yaxis={"title": {"text": "ensemble test accuracy"}},
        height=420,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return fig


def method_comparison_figure(table: pd.DataFrame) -> go.Figure:
    """Pruning methods at equal sparsity: best (solid) and median (dotted) validation accuracy
    per sparsity bin, one panel per architecture (frame of
    :func:`~ensprune.report.breakdown.method_comparison_frame`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    architectures = sorted(table["architecture"].astype(str).unique()) or ["all"]
    fig = make_subplots(
        rows=1,
        cols=len(architectures),
        shared_yaxes=True,
        horizontal_spacing=0.05,
        subplot_titles=[html.escape(a) for a in architectures],
    )
    colours = _colours(table["method"].tolist())
    for col, arch in enumerate(architectures, start=1):
        rows = table[table["architecture"].astype(str) == arch]
        for method, group in rows.groupby(rows["method"].astype(str), sort=True):
            centre = (group["sparsity_low"] + group["sparsity_high"]) / 2
            hover = _hover(
                group,
                [
                    "method",
                    "sparsity_low",
                    "sparsity_high",
                    "n_trials",
                    "best_val_accuracy",
                    "median_val_accuracy",
                ],
            )
            for stat, dash, show in (("best", "solid", col == 1), ("median", "dot", False)):
                fig.add_trace(
                    go.Scatter(
                        x=centre,
                        y=group[f"{stat}_val_accuracy"],
                        mode="lines+markers",
                        name=html.escape(str(method)),
                        legendgroup=str(method),
                        showlegend=show,
                        line={"color": colours[str(method)], "dash": dash},
                        marker={"size": 7 if stat == "best" else 5},
                        hovertext=[f"{stat}<br>{h}" for h in hover],
                        hoverinfo="text",
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(title_text="sparsity (bin centre)", range=[0, 1], row=1, col=col)
    fig.update_yaxes(title_text="validation accuracy", row=1, col=1)
    fig.update_layout(
        title={"text": "Methods at equal sparsity: best (solid) and median (dotted) trial"},
        height=380,
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def layer_sparsity_figure(layers: pd.DataFrame) -> go.Figure:
    """Per-layer sparsity of the chosen pruned members, one bar group per layer (frame of
    :func:`~ensprune.report.breakdown.layer_sparsity_frame`)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colours = _colours(layers["member"].tolist())
    for member, group in layers.groupby(layers["member"].astype(str), sort=False):
        fig.add_trace(
            go.Bar(
                x=[html.escape(str(name)) for name in group["layer"]],
                y=group["sparsity"],
                name=html.escape(str(member)),
                marker={"color": colours[str(member)]},
                hovertext=_hover(group, ["member", "layer", "weights", "nonzero", "sparsity"]),
                hoverinfo="text",
            )
        )
    fig.update_layout(
        barmode="group",
        title={"text": "Per-layer sparsity of the chosen pruned members"},
        xaxis={"title": {"text": "prunable layer (qualified name)"}},
        yaxis={"title": {"text": "share of the layer's weights removed"}, "range": [0, 1]},
        height=400,
        margin={"l": 60, "r": 20, "t": 60, "b": 90},
    )
    return fig


def ga_progress_figure(log: pd.DataFrame, title: str = "GA progress") -> go.Figure:
    """Best, mean and median fitness of each generation's population (frame of
    :func:`~ensprune.report.breakdown.ga_progress_frame`)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    styles = {
        "best": ("solid", PALETTE[0]),
        "mean": ("dash", PALETTE[1]),
        "median": ("dot", "grey"),
    }
    for stat, (dash, colour) in styles.items():
        if stat not in log.columns:
            continue
        fig.add_trace(
            go.Scatter(
                x=log["gen"],
                y=log[stat],
                mode="lines+markers",
                name=f"{stat} fitness",
                line={"dash": dash, "color": colour},
                marker={"size": 5},
                hovertext=_hover(log, ["gen", stat, "n_evaluated"]),
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title={"text": html.escape(title)},
        xaxis={"title": {"text": "generation"}},
        yaxis={"title": {"text": "fitness (validation)"}},
        height=360,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return fig
