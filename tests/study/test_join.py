"""Several processes on one member study (`ensprune run --join`): exactly the trials asked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from ensprune.cli import main
from ensprune.storage import open_storage

from ._specs import one_line_error, spec_toml, write_spec

REPO = Path(__file__).resolve().parents[2]

# trials of 6 fine-tuning epochs: see the three-process test
SPEC = spec_toml(study={"name": "joined", "seed": 4}, search={"trials": 8, "finetune_epochs": 6})

# one trial per member: a joiner's whole job in a few seconds
SMALL_SPEC = spec_toml(
    study={"name": "joinpath", "seed": 4}, pool={"epochs": 1}, search={"trials": 1}
)


def test_join_refuses_sqlite_before_any_work(tmp_path: Path, capsys) -> None:
    spec = write_spec(tmp_path, SPEC)
    run_dir = tmp_path / "run"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["run", str(spec), "--run-dir", str(run_dir), "--storage", url, "--join"]) == 2
    assert "SQLite is never written by concurrent processes" in one_line_error(capsys)
    assert not run_dir.exists() and not (tmp_path / "study.db").exists()


def test_join_without_a_lead_gives_up_with_a_hint(tmp_path: Path) -> None:
    from ensprune.errors import RunDirError
    from ensprune.study import StudySpec
    from ensprune.study.join import join_run

    spec_file = write_spec(tmp_path, SPEC)
    with pytest.raises(RunDirError, match="start the lead first"):
        join_run(
            StudySpec.from_toml(spec_file),
            run_dir=tmp_path / "run",
            storage=str(tmp_path / "journal.log"),
            wait_s=0.2,
            poll_s=0.1,
        )


@pytest.mark.slow
@pytest.mark.postgres
def test_three_processes_on_one_study_run_exactly_the_trials_asked_for(
    postgres_url: str, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, SPEC)
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "ensprune", "run", str(spec), "--run-dir", str(run_dir)]
    base += ["--storage", postgres_url]
    # the joiners start first and wait for the lead's pool (they look every second); trials of
    # 6 fine-tuning epochs keep the lead from finishing a study before they arrive
    joiners = [
        subprocess.Popen([*base, "--join"], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    lead = subprocess.run([*base, "--quiet"], env=env, capture_output=True, text=True)
    assert lead.returncode == 0, lead.stderr
    logs = [j.communicate(timeout=600)[1] for j in joiners]
    assert [j.returncode for j in joiners] == [0, 0], logs
    for log in logs:  # the lead's pool, loaded, never trained again
        assert log.count("dense model reused") == 2 and "trained" not in log

    storage = open_storage(postgres_url)
    workers = set()
    for member in ("model_a-s0", "model_a-s1"):
        study = optuna.load_study(study_name=f"joined.{member}", storage=storage)
        trials = [t for t in study.get_trials() if not t.user_attrs.get("surplus")]
        assert len(trials) == 8  # none lost, none duplicated
        assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
        assert sorted(t.number for t in study.get_trials()) == list(range(len(study.trials)))
        workers |= {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(workers) >= 2  # the studies' trials were shared out between processes
    table = pd.read_csv(run_dir / "trials.csv")
    assert table.groupby("member").size().to_dict() == {"model_a-s0": 8, "model_a-s1": 8}
    assert table.chosen.sum() == 2


def _led_run(tmp_path: Path, journal: Path) -> Path:
    """A run directory as its lead leaves it once the pool trained, on the journal file."""
    from ensprune import rundir as rd
    from ensprune.study import StudySpec
    from ensprune.study.pipeline import prepare_run_dir

    spec = write_spec(tmp_path, SMALL_SPEC)
    run_dir, _, _ = prepare_run_dir(
        StudySpec.from_toml(spec), SMALL_SPEC, tmp_path / "run", str(journal)
    )
    rd.mark_stage(run_dir, "train")
    return spec


def test_join_recognises_the_journal_file_by_another_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "x")
    spec = _led_run(tmp_path, tmp_path / "x" / "study.log")
    monkeypatch.chdir(tmp_path)
    for given in ("x/study.log", "link/study.log", "./x/../x/study.log", "journal://x/study.log"):
        args = ["run", str(spec), "--run-dir", "run", "--storage", given, "--join", "--quiet"]
        assert main(args) == 0, given
    storage = open_storage(str(tmp_path / "x/study.log"))
    for member in ("model_a-s0", "model_a-s1"):
        study = optuna.load_study(study_name=f"joinpath.{member}", storage=storage)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE]  # one trial, not four
    assert sorted(p.name for p in tmp_path.rglob("*.log")) == ["study.log"]  # no other journal


def test_join_refuses_another_journal_file_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    spec = _led_run(tmp_path, tmp_path / "study.log")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other").mkdir()
    args = ["run", str(spec), "--run-dir", "run", "--storage", "other/study.log", "--join"]
    assert main(args) == 2
    err = one_line_error(capsys)
    assert f"stores its studies in {tmp_path / 'study.log'}, not other/study.log" in err
    assert not (tmp_path / "run" / "members").exists()  # refused before any work
    assert not (tmp_path / "other" / "study.log").exists()
