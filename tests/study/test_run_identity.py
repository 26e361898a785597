"""Artefacts tied to what made them: run ids on studies, relative storage, named studies, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ensprune import rundir as rd
from ensprune.errors import RunDirError
from ensprune.models import build_model, save_model
from ensprune.study import StudySpec
from ensprune.study.checkpoints import checkpoint_problem
from ensprune.study.guard import RUN_ID_ATTR, claim_studies
from ensprune.study.pipeline import prepare_run_dir

from .crashkit import TINY_SPEC, run_cli, write_spec


@pytest.fixture
def tiny(tmp_path: Path) -> StudySpec:
    path = write_spec(tmp_path)
    return StudySpec.from_toml(path)


def test_storage_inside_the_run_dir_is_recorded_relative_and_found_after_a_move(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    url = f"sqlite:///{run_dir / 'study.db'}"
    entry = rd.storage_entry(run_dir, url)
    assert entry == {"storage": url, "storage_relative": "sqlite:///study.db"}
    moved = tmp_path / "moved"
    assert rd.storage_url(moved, entry) == f"sqlite:///{moved.resolve() / 'study.db'}"
    journal = f"journal://{run_dir / 'logs' / 'study.log'}"
    assert rd.storage_entry(run_dir, journal)["storage_relative"] == "journal://logs/study.log"
    # outside the run directory, or a server: recorded as given
    outside = f"sqlite:///{tmp_path / 'shared.db'}"
    assert rd.storage_entry(run_dir, outside) == {"storage": outside}
    assert rd.storage_url(moved, {"storage": outside}) == outside  # run.json files before this
    with pytest.raises(RunDirError, match="names no storage"):
        rd.storage_url(moved, {})


def test_a_changed_study_name_on_the_same_run_dir_is_refused(
    tiny: StudySpec, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    prepare_run_dir(tiny, TINY_SPEC, run_dir, None)
    meta = json.loads((run_dir / "run.json").read_text())
    assert len(meta["run_id"]) == 32 and meta["studies"] == ["crash.model_a-s0", "crash.model_a-s1"]
    renamed = StudySpec.from_toml(
        write_spec(tmp_path, TINY_SPEC.replace('name = "crash"', 'name = "other"'))
    )
    with pytest.raises(RunDirError, match=r"holds the run 'crash'.*set \[study\] name = 'crash'"):
        prepare_run_dir(renamed, TINY_SPEC, run_dir, None)
    prepare_run_dir(tiny, TINY_SPEC, run_dir, None)  # resuming keeps the run's identity
    assert json.loads((run_dir / "run.json").read_text())["run_id"] == meta["run_id"]


def test_a_shared_storage_never_hands_one_runs_studies_to_another(tmp_path: Path) -> None:
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    study = optuna.create_study(
        study_name="crash.model_a-s0", storage=shared, directions=["maximize", "maximize"]
    )
    study.set_user_attr(RUN_ID_ATTR, "another-run")
    spec_file = write_spec(tmp_path)
    run_dir = tmp_path / "run"
    refused = run_cli(
        "run", str(spec_file), "--run-dir", str(run_dir), "--storage", shared, "--quiet"
    )
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "already holds the study 'crash.model_a-s0' of another run directory" in lines[0]
    assert not (run_dir / "members").exists()  # refused before any training
    assert not (run_dir / "run.json").exists()  # so dropping --storage is a way forward


def test_a_study_from_before_run_ids_is_adopted_only_with_its_checkpoints(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'old.db'}"
    study = optuna.create_study(
        study_name="s", storage=storage, directions=["maximize", "maximize"]
    )
    trial = study.ask()
    trial.set_user_attr("checkpoint", "trial-0000.pt")
    study.tell(trial, [0.9, 0.5])
    with pytest.raises(RunDirError, match="another run directory"):
        claim_studies(storage, ["s"], "me", lambda name, t: False)
    claim_studies(storage, ["s"], "me", lambda name, t: True)
    assert optuna.load_study(study_name="s", storage=storage).user_attrs[RUN_ID_ATTR] == "me"


def test_trials_a_killed_run_left_running_are_marked_failed(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(
        study_name="s", storage=storage, directions=["maximize", "maximize"]
    )
    study.ask()  # RUNNING for ever: its process was killed
    claim_studies(storage, ["s", "not-created-yet"], "me", lambda name, t: True)
    states = [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == [TrialState.FAIL]


def test_a_trial_checkpoint_is_checked_against_its_trial(tmp_path: Path) -> None:
    model = build_model("model_a", (1, 8, 8), 10)
    path = save_model(tmp_path / "trial-0002.pt", model, {"study": "crash.m", "trial": 2})
    assert checkpoint_problem(path, "crash.m", 2) is None
    assert checkpoint_problem(path, "other.m", 2) == "belongs to trial 2 of study 'crash.m'"
    assert checkpoint_problem(path, "crash.m", 5) == "belongs to trial 2 of study 'crash.m'"
    assert checkpoint_problem(tmp_path / "absent.pt", "crash.m", 2) == "is missing"
    whole = path.read_bytes()
    for damaged in (whole[:100], b"truncated"):  # torch raises other types for each
        path.write_bytes(damaged)
        assert checkpoint_problem(path, "crash.m", 2) == "is corrupt"
    legacy = save_model(tmp_path / "old.pt", model, {"member": "m"})  # before identities
    assert checkpoint_problem(legacy, "crash.m", 7) is None
