"""The HTML report: files, tables, embedded figures, escaping, no external references."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
from matplotlib.figure import Figure

from ensprune.report import build_report, frames, plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_files_tables_and_embedded_images(
    make_run: Callable[..., Path], rundir: ModuleType
) -> None:
    run = make_run("soft")
    html_path = build_report(run)
    out = run / "report"
    assert html_path == out / "report.html"
    for name in ("trials", "members", "teams", "comparison"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.parquet").is_file(), name
    assert (out / "summary.json").is_file()
    members = pd.read_csv(out / "members.csv")
    assert {"dense_test_accuracy", "pruned_test_accuracy"} <= set(members.columns)
    assert len(pd.read_csv(out / "comparison.csv")) == 4
    # Parquet keeps the types: booleans stay booleans, method parameters are columns
    trials = pd.read_parquet(out / "trials.parquet")
    assert trials["chosen"].dtype == bool and "params" not in trials.columns
    assert {"param.method", "param.sparsity"} <= set(trials.columns)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "members.parquet")[members.columns], members, check_dtype=False
    )
    for key in ("comparison", "members", "trials", "teams"):  # PNGs for papers
        assert (out / "figures" / f"{key}.png").read_bytes().startswith(PNG_MAGIC)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["report_html"] == str(html_path.resolve())

    page = html_path.read_text(encoding="utf-8")
    # selector options, comparison, members, per-layer sparsity, methods, trials, teams
    assert page.count("<table") == 7
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 1  # the members' dumbbells; the other figures are interactive
    assert all(base64.b64decode(img).startswith(PNG_MAGIC) for img in images)
    # Self-contained: plotly.js embedded exactly once, nothing fetched from elsewhere.
    assert page.count("* plotly.js v") == 1
    # comparison, one front per member, methods at equal sparsity, per-layer sparsity, teams
    # (this run has no study storage: no importances; HQ selector: no GA progress)
    # (figure divs, not "Plotly.newPlot(" calls: plotly.js itself holds that text in some versions)
    assert page.count('class="plotly-graph-div"') == 1 + len(rundir.NAMES) + 3
    # (plotly.js's own source mentions URLs; the browser test checks that none is requested)
    markup = re.sub(r"<script\b.*?</script>", "", page, flags=re.S | re.I)
    assert not re.search(r"https?://", markup)
    assert not re.search(r"<link\b", markup, re.I)
    # accuracies with 95 % intervals; team vs references with McNemar's verdict
    assert "within noise" in page or "beyond noise" in page
    assert "soft voting" in page and "Voting rule" in page
    # Names are escaped wherever they appear.
    assert "cnn<b>&s1" not in page and "cnn&lt;b&gt;&amp;s1" in page
    assert "tiny<run>" not in page and "tiny&lt;run&gt;" in page
    for key in ("test_accuracy", "dense_cost_share", "pruned_test_accuracy", "focal_ck"):
        assert f"<th>{key}</th>" in page
    team_test = summary["selection"]["test_accuracy"]
    assert f"{team_test:.4f}" in page


def test_report_without_teams_and_custom_out_dir(
    make_run: Callable[..., Path], tmp_path: Path
) -> None:
    run = make_run(teams=False)
    out = tmp_path / "elsewhere"
    (out / "figures").mkdir(parents=True)
    (out / "teams.csv").write_text("stale")  # an earlier build's table must not survive
    (out / "figures" / "teams.png").write_bytes(b"stale")
    html_path = build_report(run, out)
    assert html_path == out / "report.html"
    assert not (out / "teams.csv").exists() and not (out / "figures" / "teams.png").exists()
    assert not (run / "report").exists()
    page = html_path.read_text(encoding="utf-8")
    assert len(re.findall(r"<img [^>]*data:image/png;base64,", page)) == 1
    assert "Candidate teams" not in page


def test_report_shows_a_selector_log_as_a_table(make_run: Callable[..., Path]) -> None:
    run = make_run()
    (run / "teams.csv").write_text("generation,best_fitness\n0,0.5\n1,0.6\n")
    page = build_report(run).read_text(encoding="utf-8")
    assert "Selector&#x27;s table" in page or "Selector's table" in page
    assert "<th>best_fitness</th>" in page
    assert len(re.findall(r"<img [^>]*data:image/png;base64,", page)) == 1
    assert (run / "report" / "teams.csv").read_text().startswith("generation,best_fitness")


def test_plot_functions_return_figures(run_dir: Path) -> None:
    members = frames.members_frame(run_dir)
    teams = frames.teams_frame(run_dir)
    assert teams is not None
    figures = [
        plots.plot_trials(frames.trials_frame(run_dir), members),
        plots.plot_member_accuracy(members),
        plots.plot_teams(teams, ["diversity", "focal_gd", "focal_ck"]),
        plots.plot_teams(teams, []),  # no focal column: an explaining panel, not a crash
        plots.plot_comparison(frames.comparison_frame(run_dir)),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
        assert plots.figure_png(figure).startswith(PNG_MAGIC)


def test_report_shows_importances_from_the_study_storage(run_dir: Path) -> None:
    page = build_report(run_dir, run_dir.parent / "report-importance").read_text(encoding="utf-8")
    assert 'id="importance"' in page  # the fixture's two member studies in SQLite


def test_comparison_carries_intervals_and_paired_tests(make_run: Callable[..., Path]) -> None:
    comparison = frames.comparison_frame(make_run())
    team = comparison.iloc[0]
    assert team["ensemble"] == frames.TEAM and pd.isna(team["mcnemar_p"])
    for _, row in comparison.iterrows():
        assert row["test_accuracy_low"] <= row["test_accuracy"] <= row["test_accuracy_high"]
        assert row["test_samples"] == 60
    refs = comparison.iloc[1:]
    assert refs["mcnemar_p"].between(0, 1).all()
    assert (
        refs["team_minus"] - (team["test_accuracy"] - refs["test_accuracy"])
    ).abs().max() < 1e-12
    assert set(refs["beyond_noise"]) <= {True, False}
