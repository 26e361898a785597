"""``ensprune report``: builds the report, prints the summary; exit 2 with one line on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

import ensprune.cli
from ensprune.cli import main


@pytest.fixture(autouse=True)
def _only_report(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real main(), with only this subcommand registered: these tests do not depend on
    # the other subcommands' modules importing.
    monkeypatch.setattr(ensprune.cli, "SUBCOMMANDS", ("report",))


@pytest.fixture
def run_dir(tmp_path: Path, rundir: ModuleType) -> Path:
    return Path(rundir.make_run_dir(tmp_path, voting="soft", study=False))


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_report_prints_summary_text_json_and_quiet(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert "Selected team" in text and "soft voting" in text and "mlp-s0" in text
    assert str((run_dir / "report" / "report.html").resolve()) in text
    assert (run_dir / "report" / "report.html").is_file()

    out = tmp_path / "out"
    assert main(["report", str(run_dir), "--out", str(out), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["selection"]["names"] == ["mlp-s0", "cnn-s0", "cnn<b>&s1"]
    assert facts["run"]["report_dir"] == str(out.resolve())
    assert (out / "summary.json").is_file()

    assert main(["report", str(run_dir), "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_missing_run_dir_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = _one_line_error(capsys)
    assert "does not exist" in err and "ensprune run" in err


def test_missing_stage_output_gives_a_partial_report(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_dir / "selection.json").unlink()
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr()
    assert "missing: selection.json (the 'select' stage writes it)" in out.out
    assert "Traceback" not in out.err and "is incomplete" in out.err
    assert (run_dir / "report" / "report.html").is_file()


def test_missing_files_are_listed_and_the_hint_names_the_users_spec(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the hint must not send the user back to the run's copy of a spec that failed
    spec = tmp_path / "my-study.toml"
    spec.write_text("[study]\n")
    meta = json.loads((run_dir / "run.json").read_text())
    meta["spec_file"] = str(spec)
    (run_dir / "run.json").write_text(json.dumps(meta))
    (run_dir / "members.csv").unlink()
    (run_dir / "selection.json").unlink()
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "missing: members.csv (the 'evaluate' stage" in out and "missing: selection.json" in out
    assert f"ensprune run {spec} --run-dir {run_dir}" in out
    assert "spec.toml" not in out
