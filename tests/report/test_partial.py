"""Reports of incomplete runs: what exists is shown, what is missing is named with its stage.

Each partial state is a fabricated run directory (tests/report/rundir.py) with the files a run
killed at that point would lack removed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ensprune.cli import main
from ensprune.errors import RunDirError
from ensprune.report import build_report

PREDICTIONS = [f"predictions/{s}.npz" for s in ("val", "test", "dense_val", "dense_test")]
AFTER_SEARCH = ["members.csv", *PREDICTIONS, "selection.json", "teams.csv"]


def _remove(run: Path, names: list[str]) -> None:
    for name in names:
        (run / name).unlink()


def _summary(run: Path) -> dict:
    return json.loads((run / "report" / "summary.json").read_text())


def test_only_the_search_finished(
    make_run: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run()
    _remove(run, AFTER_SEARCH)
    with caplog.at_level(logging.WARNING, logger="ensprune"):
        page = build_report(run).read_text()
    facts = _summary(run)
    assert facts["partial"] is True
    missing = {m["file"]: m["stage"] for m in facts["missing"]}
    assert missing == {
        "members.csv": "evaluate",
        **dict.fromkeys(PREDICTIONS, "evaluate"),
        "selection.json": "select",
    }
    # the missing section comes first, then the search: every member's front and the trials
    assert page.index("<h2>Missing</h2>") < page.index("<h2>Pruning search</h2>")
    assert "<code>members.csv</code> (the 'evaluate' stage writes it)" in page
    assert f"ensprune run SPEC.toml --run-dir {run}" in page
    assert page.count('id="front-') == 4 and "Selected team" not in page
    trials = pd.read_csv(run / "report" / "trials.csv")
    assert len(trials) == 24 and not (run / "report" / "members.csv").exists()
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "is incomplete" in warning.getMessage() and "members.csv" in warning.getMessage()


def test_evaluate_finished_but_not_selection(make_run: Callable[..., Path]) -> None:
    run = make_run()
    _remove(run, ["selection.json", "teams.csv"])
    page = build_report(run).read_text()
    facts = _summary(run)
    assert [m["file"] for m in facts["missing"]] == ["selection.json"]
    members = pd.read_csv(run / "report" / "members.csv")
    # test accuracies are computed from the prediction files, as in the full report
    assert members["pruned_test_accuracy"].tolist() == pytest.approx(
        [45 / 60, 42 / 60, 48 / 60, 39 / 60]
    )
    assert "Members: dense vs pruned" in page and "cnn&lt;b&gt;&amp;s1" in page
    assert [m["member"] for m in facts["members"]] == ["mlp-s0", "mlp-s1", "cnn-s0", "cnn<b>&s1"]


def test_members_without_test_predictions_are_shown_as_written(
    make_run: Callable[..., Path],
) -> None:
    run = make_run()
    _remove(run, ["predictions/test.npz", "selection.json"])
    build_report(run)
    members = pd.read_csv(run / "report" / "members.csv")
    assert "pruned_test_accuracy" not in members.columns and len(members) == 4


def test_a_run_killed_right_after_it_started(
    make_run: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run()
    _remove(run, [*AFTER_SEARCH, "trials.csv"])
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "stages": {}}))
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr()
    assert "finished stages: none" in out.out and "missing: trials.csv (the 'search'" in out.out
    assert "Report (partial):" in out.out and "Traceback" not in out.err
    assert len(_summary(run)["missing"]) == 7


def test_a_file_of_another_version_is_named_and_the_rest_reported(
    make_run: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # every file present, but trials.csv written before the pareto/chosen columns existed
    run = make_run()
    trials = pd.read_csv(run / "trials.csv").drop(columns=["pareto", "chosen"])
    trials.to_csv(run / "trials.csv", index=False)
    assert main(["report", str(run), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["partial"] is True and facts["missing"] == []
    [problem] = facts["problems"]
    assert "trials.csv lacks the column(s) pareto, chosen" in problem
    assert facts["selection"]["names"] == ["mlp-s0", "cnn-s0", "cnn<b>&s1"]
    page = (run / "report" / "report.html").read_text()
    assert "unreadable" in page and "Selected team" in page and "Pruning search" not in page


def test_a_joint_run_without_its_menus(make_run: Callable[..., Path]) -> None:
    run = make_run()
    selection = json.loads((run / "selection.json").read_text())
    (run / "selection.json").write_text(json.dumps({**selection, "mode": "joint"}))
    build_report(run)
    missing = {m["file"]: m["stage"] for m in _summary(run)["missing"]}
    assert missing == {"menu.csv": "menu", "menus/val.npz": "menu", "menus/test.npz": "menu"}


def test_a_rebuild_leaves_no_stale_full_report_tables(make_run: Callable[..., Path]) -> None:
    run = make_run()
    build_report(run)
    assert (run / "report" / "comparison.csv").is_file()
    _remove(run, ["selection.json"])
    build_report(run)
    assert not (run / "report" / "comparison.csv").exists()
    assert not (run / "report" / "teams.csv").exists()


def test_an_empty_or_foreign_directory_stays_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="not an ensprune run directory"):
        build_report(tmp_path / "empty")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("x")
    assert main(["report", str(tmp_path / "foreign")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not an ensprune run directory" in err
