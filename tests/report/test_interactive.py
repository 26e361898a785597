"""Interactive (plotly) figures and parameter importances, from small hand-made frames."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from ensprune.report.importance import param_importances
from ensprune.report.interactive import (
    comparison_figure,
    figure_div,
    focus_range,
    importance_figure,
    member_front_figure,
    plotly_script,
    teams_figure,
)


def _trials() -> pd.DataFrame:
    rows = []
    for n, (method, sp, acc) in enumerate(
        [
            ("magnitude", 0.2, 0.95),
            ("magnitude", 0.5, 0.945),
            ("lamp", 0.7, 0.942),
            ("lamp", 0.9, 0.80),
            ("random", 0.5, 0.30),  # far below the band: outside the zoomed range
        ]
    ):
        rows.append(
            {
                "member": "m<0>",
                "number": n,
                "state": "COMPLETE",
                "method": method,
                "val_accuracy": acc,
                "sparsity": sp,
                "macs": 1000 * (1 - sp),
                "pareto": n in (0, 1, 2, 3),
                "chosen": n == 2,
                "param.scope": "global",
            }
        )
    rows.append({**rows[0], "number": 5, "state": "FAIL", "val_accuracy": np.nan})
    return pd.DataFrame(rows)


def test_member_front_shows_front_chosen_band_and_zooms() -> None:
    fig = member_front_figure(_trials(), "m<0>", dense_accuracy=0.95, tolerance=0.01)
    by_name: dict[str, list] = {}
    for trace in fig.data:
        by_name.setdefault(trace.name, []).append(trace)
    assert {"magnitude", "lamp", "random", "Pareto front", "chosen trial"} <= set(by_name)
    sparsity_front, macs_front = by_name["Pareto front"]  # one per panel
    assert list(sparsity_front.x) == [0.2, 0.5, 0.7, 0.9]
    assert list(macs_front.x) == sorted(macs_front.x)
    star = by_name["chosen trial"][0]
    assert (star.x[0], star.y[0]) == (0.7, 0.942)
    # the band [0.94, 0.95] is drawn, and the y range is zoomed onto it (0.30 and 0.80 are
    # left out; a double click shows every point)
    band = [s for s in fig.layout.shapes if s.type == "rect"]
    assert band and band[0].y0 == pytest.approx(0.94) and band[0].y1 == pytest.approx(0.95)
    low, high = fig.layout.yaxis.range
    assert 0.80 < low < 0.92 and 0.95 < high <= 1.0
    assert "m&lt;0&gt;" in fig.layout.title.text  # plotly renders HTML: names are escaped
    assert "param.scope: global" in star.hovertext[0]


def test_member_front_without_costs_has_one_panel() -> None:
    fig = member_front_figure(_trials().drop(columns="macs"), "m<0>")
    assert sum(t.name == "Pareto front" for t in fig.data) == 1


def test_focus_range() -> None:
    assert focus_range([], 0.9, 0.01, None) is None
    low, high = focus_range([0.1, 0.9, 0.95], 0.95, 0.01, 0.94)
    assert low < 0.92 and low > 0.85 and high > 0.95
    assert focus_range([0.999], None, 0.01, None)[1] == 1.0  # clipped to accuracy's range


def test_teams_and_comparison_figures() -> None:
    teams = pd.DataFrame(
        {
            "members": [(0, 1), (0, 2), (0, 1, 2)],
            "names": ["a,b", "a,c", "a,b,c"],
            "size": [2, 2, 3],
            "status": ["pruned", "kept", "kept"],
            "val_accuracy": [0.8, 0.85, 0.9],
            "focal_gd": [0.3, 0.5, 0.6],
        }
    )
    fig = teams_figure(teams, "focal_gd", selected=[2, 1, 0])
    names = [t.name for t in fig.data]
    assert names == ["size 2 (kept)", "size 2 (pruned)", "size 3 (kept)", "selected team"]
    assert fig.data[-1].y[0] == 0.9
    comparison = pd.DataFrame(
        {
            "ensemble": ["selected team", "full pool"],
            "n_members": [3, 5],
            "test_accuracy": [0.9, 0.92],
            "test_accuracy_low": [0.85, 0.88],
            "test_accuracy_high": [0.93, 0.95],
            "macs": [3e5, 5e5],
        }
    )
    fig = comparison_figure(comparison)
    team = fig.data[0]
    assert team.error_y.array[0] == pytest.approx(0.03)
    assert team.error_y.arrayminus[0] == pytest.approx(0.05)


def test_div_leaves_out_plotly_js_and_the_script_is_whole() -> None:
    fig = teams_figure(
        pd.DataFrame({"size": [2], "val_accuracy": [0.9], "focal_gd": [0.5]}), "focal_gd"
    )
    div = figure_div(fig, "teams")
    assert 'id="teams"' in div and "Plotly.newPlot" in div and len(div) < 50_000
    script = plotly_script()
    assert len(script) > 1_000_000 and "https://" not in script[:2000]


def _study(storage: optuna.storages.BaseStorage, name: str, n: int) -> None:
    study = optuna.create_study(
        study_name=name, storage=storage, directions=["maximize", "maximize"]
    )
    rng = np.random.default_rng(0)
    dists = {
        "sparsity": optuna.distributions.FloatDistribution(0.0, 0.99),
        "junk": optuna.distributions.FloatDistribution(0.0, 1.0),
    }
    for _ in range(n):
        sp, junk = float(rng.uniform(0, 0.99)), float(rng.uniform())
        study.add_trial(
            optuna.trial.create_trial(
                params={"sparsity": sp, "junk": junk},
                distributions=dists,
                values=[1.0 - sp**2, sp],  # accuracy depends on sparsity only
            )
        )


def test_param_importances_rank_the_parameter_that_matters() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    _study(storage, "s-a", 30)
    _study(storage, "s-b", 2)
    frame, skipped = param_importances(storage, {"a": "s-a", "b": "s-b", "c": "missing"})
    imp = dict(zip(frame["param"], frame["importance"], strict=True))
    assert set(frame["member"]) == {"a"}
    assert imp["sparsity"] > 0.9 > imp["junk"]
    assert sum(imp.values()) == pytest.approx(1.0)
    assert "2 completed trials" in skipped["b"] and "not in the storage" in skipped["c"]
    fig = importance_figure(frame)
    assert list(fig.data[0].y) == list(frame["param"])
