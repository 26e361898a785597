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
    for name in ("trials.csv", "members.csv", "teams.csv", "comparison.csv", "summary.json"):
        assert (out / name).is_file(), name
    members = pd.read_csv(out / "members.csv")
    assert {"dense_test_accuracy", "pruned_test_accuracy"} <= set(members.columns)
    assert len(pd.read_csv(out / "comparison.csv")) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["report_html"] == str(html_path.resolve())

    page = html_path.read_text(encoding="utf-8")
    assert page.count("<table") == 4  # comparison, members, trials, teams
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4
    assert all(base64.b64decode(img).startswith(PNG_MAGIC) for img in images)
    # Self-contained: no script at all, nothing fetched from elsewhere.
    assert "<script" not in page.lower()
    assert not re.search(r"https?://", page)
    assert not re.search(r"<link\b", page, re.I)
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
    assert page.count("data:image/png;base64,") == 3
    assert "Candidate teams" not in page


def test_report_shows_a_selector_log_as_a_table(make_run: Callable[..., Path]) -> None:
    run = make_run()
    (run / "teams.csv").write_text("generation,best_fitness\n0,0.5\n1,0.6\n")
    page = build_report(run).read_text(encoding="utf-8")
    assert "Selector&#x27;s table" in page or "Selector's table" in page
    assert "<th>best_fitness</th>" in page
    assert page.count("data:image/png;base64,") == 3
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
