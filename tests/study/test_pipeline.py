"""The whole flow on a tiny spec: files of every stage, resume, refusal of a foreign run dir."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ensprune.ensemble import PredictionSet
from ensprune.errors import RunDirError
from ensprune.storage import open_storage
from ensprune.study import StudySpec, run_study

# Every test here trains a pool and runs searches: tens of seconds each on 2 shared cores.
pytestmark = pytest.mark.slow

TINY = {
    "study": {"name": "tiny", "seed": 3},
    "data": {"dataset": "digits", "val_fraction": 0.2, "test_fraction": 0.25},
    "pool": {
        "architectures": ["model_a", "lenet300"],
        "seeds": [0, 1],
        "epochs": 6,
        "batch_size": 64,
        "lr": 0.003,
    },
    "search": {
        "methods": ["magnitude", "random"],
        "sparsity": [0.3, 0.9],
        "trials": 3,
        "finetune_epochs": 1,
    },
    "selection": {"selector": "hq", "metric": "gd", "beta": 0.1, "max_size": 3},
}


def tiny_spec(**changes: dict) -> StudySpec:
    raw = json.loads(json.dumps(TINY))
    for section, values in changes.items():
        raw[section].update(values)
    return StudySpec.from_dict(raw)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_study(tiny_spec(), run_dir=run_dir, progress=False)
    return run_dir, result


def test_every_stage_leaves_its_files(finished_run: tuple[Path, object]) -> None:
    run_dir, result = finished_run
    for name in (
        "spec.toml",
        "run.json",
        "study.db",
        "members.csv",
        "trials.csv",
        "selection.json",
        "predictions/val.npz",
        "predictions/test.npz",
        "predictions/dense_val.npz",
        "predictions/dense_test.npz",
        "report/report.html",
    ):
        assert (run_dir / name).is_file(), name
    members = pd.read_csv(run_dir / "members.csv")
    assert list(members.member) == ["model_a-s0", "model_a-s1", "lenet300-s0", "lenet300-s1"]
    assert ((members.sparsity > 0.25) & (members.sparsity < 0.95)).all()
    assert (members.pruned_params < members.dense_params).all()
    # latency through measure(): median with its spread, repeats and thread count
    for kind in ("dense", "pruned"):
        assert (members[f"{kind}_latency_ms"] > 0).all()
        assert (members[f"{kind}_latency_iqr_ms"] >= 0).all()
    assert (members.latency_batch == 256).all() and (members.latency_repeats == 10).all()
    assert (members.latency_threads >= 1).all()
    # the report reads the pruned checkpoints: one row per prunable layer of each member
    layers = pd.read_csv(run_dir / "report" / "layer_sparsity.csv")
    assert set(layers.member) == set(members.member)
    assert ((layers.sparsity >= 0) & (layers.sparsity <= 1)).all()
    kept = layers.groupby("member").nonzero.sum()
    assert (kept.loc[members.member].to_numpy() == members.pruned_params.to_numpy()).all()
    assert (run_dir / "report" / "method_comparison.csv").is_file()
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 12 and trials.chosen.sum() == 4
    assert set(trials.method) <= {"magnitude", "random"}
    val = PredictionSet.load(run_dir / "predictions" / "val.npz")
    assert val.n_members == 4 and val.cost is not None
    selection = json.loads((run_dir / "selection.json").read_text())
    assert 2 <= len(selection["members"]) <= 3
    assert "test" not in json.dumps(selection)  # selection is made and described on validation only
    meta = json.loads((run_dir / "run.json").read_text())
    assert set(meta["stages"]) == {"train", "search", "evaluate", "menu", "select", "report"}
    assert "test accuracy" in result.summary_text.lower()  # type: ignore[attr-defined]
    # the choices are in the storage, for optuna-dashboard
    storage = f"sqlite:///{run_dir / 'study.db'}"
    for _, row in trials[trials.chosen].iterrows():
        attrs = optuna.load_study(study_name=row.study_name, storage=storage).user_attrs
        assert attrs["ensprune.chosen_trial"] == row.number
        assert attrs["ensprune.selected_team"] == selection["names"]
        assert attrs["ensprune.in_selected_team"] == (row.member in selection["names"])


def test_pruned_member_checkpoints_reproduce_recorded_sparsity(
    finished_run: tuple[Path, object],
) -> None:
    from ensprune.models import count_parameters, load_model

    run_dir, _ = finished_run
    members = pd.read_csv(run_dir / "members.csv")
    for row in members.itertuples():
        model, _ = load_model(run_dir / "members" / row.member / "pruned.pt")
        assert count_parameters(model).prunable_nonzero == row.pruned_params


def test_rerun_resumes_without_new_work(
    finished_run: tuple[Path, object], caplog: pytest.LogCaptureFixture
) -> None:
    run_dir, _ = finished_run
    before = pd.read_csv(run_dir / "trials.csv")
    with caplog.at_level(logging.INFO, logger="ensprune"):
        run_study(tiny_spec(), run_dir=run_dir, progress=False)
    lines = [r.getMessage() for r in caplog.records]
    after = pd.read_csv(run_dir / "trials.csv")
    pd.testing.assert_frame_equal(
        before.drop(columns="duration_s"), after.drop(columns="duration_s")
    )
    assert any("dense model reused" in line for line in lines)
    assert not any(" trial(s) in " in line for line in lines)


def test_more_trials_extend_the_studies(finished_run: tuple[Path, object]) -> None:
    run_dir, _ = finished_run
    run_study(tiny_spec(search={"trials": 4}), run_dir=run_dir, progress=False)
    storage = open_storage(json.loads((run_dir / "run.json").read_text())["storage"])
    study = optuna.load_study(study_name="tiny.model_a-s0", storage=storage)
    assert len(study.trials) == 4


def test_a_different_pool_is_refused(finished_run: tuple[Path, object]) -> None:
    run_dir, _ = finished_run
    with pytest.raises(RunDirError, match="different spec"):
        run_study(tiny_spec(pool={"epochs": 7}), run_dir=run_dir, progress=False)


def test_a_changed_search_keeps_the_pool_and_starts_new_studies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quick = {"trials": 1, "methods": ["magnitude"], "sparsity": [0.4, 0.5]}
    fixed = {"method_params": {"magnitude": {"schedule": "oneshot"}}}
    first = tiny_spec(pool={"epochs": 2}, search={**quick, **fixed})
    changed = tiny_spec(pool={"epochs": 2}, search={**quick, **fixed, "sparsity": [0.8, 0.9]})
    run_dir = tmp_path / "run"
    run_study(first, run_dir=run_dir, progress=False)
    dense = {p: p.stat().st_mtime_ns for p in run_dir.glob("members/*/dense.pt")}
    with caplog.at_level(logging.INFO, logger="ensprune"):
        run_study(changed, run_dir=run_dir, progress=False)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("dense model reused" in line for line in lines) == 4
    assert {p: p.stat().st_mtime_ns for p in run_dir.glob("members/*/dense.pt")} == dense

    meta = json.loads((run_dir / "run.json").read_text())
    suffix = meta["search_suffix"]
    assert suffix and set(meta["searches"]) == {"", suffix}
    storage = open_storage(meta["storage"])
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert {"tiny.model_a-s0", f"tiny.model_a-s0.{suffix}"} <= names
    old = optuna.load_study(study_name="tiny.model_a-s0", storage=storage)
    assert old.trials[0].params["sparsity"] <= 0.5  # the earlier search stays readable
    assert (run_dir / "members" / "model_a-s0" / "trials" / "trial-0000.pt").is_file()

    # the report shows the latest search
    trials = pd.read_csv(run_dir / "trials.csv")
    assert set(trials.study_name) == {f"tiny.{m}.{suffix}" for m in trials.member}
    members = pd.read_csv(run_dir / "members.csv")
    assert (members.target_sparsity >= 0.8).all()
    report = json.loads((run_dir / "report" / "summary.json").read_text())
    assert all(m["sparsity"] >= 0.78 for m in report["members"])

    # going back to the first search resumes its studies: no new trials
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ensprune"):
        run_study(first, run_dir=run_dir, progress=False)
    assert not any(" trial(s) in " in r.getMessage() for r in caplog.records)
    assert json.loads((run_dir / "run.json").read_text())["search_suffix"] == ""
    assert (pd.read_csv(run_dir / "members.csv").target_sparsity <= 0.5).all()


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(RunDirError, match="not an ensprune run directory"):
        run_study(tiny_spec(), run_dir=tmp_path, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_corrupt_member_checkpoint_is_named_and_retrained(
    finished_run: tuple[Path, object], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run[0], copy)  # a copied run directory works on its own storage
    dense = copy / "members" / "lenet300-s1" / "dense.pt"
    dense.write_bytes(b"garbage")
    with caplog.at_level(logging.INFO, logger="ensprune"):
        run_study(tiny_spec(), run_dir=copy, progress=False)
    assert f"[lenet300-s1] checkpoint {dense} is corrupt" in caplog.text
    assert "training the member again" in caplog.text
    assert (
        "[lenet300-s1] trained" in caplog.text and "[model_a-s0] dense model reused" in caplog.text
    )


def test_same_spec_same_seed_same_result(tmp_path: Path, finished_run: tuple[Path, object]) -> None:
    run_dir, _ = finished_run
    run_study(tiny_spec(), run_dir=tmp_path / "again", progress=False)
    cols = ["member", "number", "method", "target_sparsity", "val_accuracy", "sparsity"]
    a = pd.read_csv(run_dir / "trials.csv")
    b = pd.read_csv(tmp_path / "again" / "trials.csv")
    a = a[a.number < 3][cols].reset_index(drop=True)  # another test may extend the module's run
    pd.testing.assert_frame_equal(a, b[cols])


def test_worker_processes_on_a_fresh_storage_give_the_same_trials(
    tmp_path: Path, finished_run: tuple[Path, object]
) -> None:
    # Results do not depend on the number of worker processes sharing one storage.
    run_dir, _ = finished_run
    run_study(tiny_spec(), run_dir=tmp_path / "two", progress=False, workers=2)
    cols = ["member", "number", "method", "target_sparsity", "val_accuracy", "sparsity"]
    a = pd.read_csv(run_dir / "trials.csv")
    b = pd.read_csv(tmp_path / "two" / "trials.csv")
    a = a[a.number < 3][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b[cols])


def test_search_distils_from_the_dense_member(tmp_path: Path, monkeypatch) -> None:
    import sys

    from ensprune.study.pipeline import _search_fingerprint

    # the module, not the function of the same name that the package re-exports
    finetune_module = sys.modules["ensprune.pruning.finetune"]

    seen: list[tuple[float, bool]] = []
    original = finetune_module.train_model

    def spy(*args, **kwargs):  # record the config and whether a teacher came with it
        seen.append((args[5].distill, kwargs.get("teacher") is not None))
        return original(*args, **kwargs)

    monkeypatch.setattr(finetune_module, "train_model", spy)
    spec = tiny_spec(
        study={"name": "kd"},
        pool={"architectures": ["model_a"], "seeds": [0, 1]},
        search={"trials": 1, "distill": 0.5, "methods": ["magnitude"]},
        selection={"max_size": 2},
    )
    run_study(spec, run_dir=tmp_path / "kd", progress=False)
    assert seen and all(distill == 0.5 and teacher for distill, teacher in seen)
    # distillation changes the search; without it the fingerprint is what it was before the knob
    assert "distill" in _search_fingerprint(spec)
    assert "distill" not in _search_fingerprint(tiny_spec())


@pytest.mark.postgres
def test_pipeline_on_postgres_storage(postgres_url: str, tmp_path: Path) -> None:
    spec = tiny_spec(
        study={"name": "tinypg"},
        pool={"architectures": ["model_a"], "seeds": [0, 1, 2]},
        search={"trials": 2},
    )
    result = run_study(spec, run_dir=tmp_path / "pg", storage=postgres_url, progress=False)
    assert result.storage_url == postgres_url
    names = {s.study_name for s in optuna.get_all_study_summaries(open_storage(postgres_url))}
    assert {"tinypg.model_a-s0", "tinypg.model_a-s1", "tinypg.model_a-s2"} <= names


def test_search_runs_gradual_pruning_with_a_cosine_lr(tmp_path: Path, monkeypatch) -> None:
    import sys

    from ensprune.study.pipeline import _search_fingerprint

    # the module, not the function of the same name that the package re-exports
    finetune_module = sys.modules["ensprune.pruning.finetune"]
    seen: list[tuple[str, int, bool]] = []
    original = finetune_module.train_model

    def spy(*args, **kwargs):  # record the config each gradual run trains with
        seen.append((args[5].lr_schedule, args[5].patience, kwargs["keep_best"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(finetune_module, "train_model", spy)
    spec = tiny_spec(
        study={"name": "gradual"},
        pool={"architectures": ["model_a"], "seeds": [0, 1]},
        search={
            "trials": 1,
            "methods": ["lamp"],
            "lr_schedule": "cosine",
            "method_params": {"lamp": {"schedule": "gradual", "prune_every": 5}},
        },
        selection={"max_size": 2},
    )
    result = run_study(spec, run_dir=tmp_path / "gradual", progress=False)
    assert seen == [("cosine", 0, False)] * 2  # one trial per member, no early stopping
    trials = pd.read_csv(tmp_path / "gradual" / "trials.csv")
    assert (abs(trials.sparsity - trials.target_sparsity) < 0.01).all()
    assert result is not None
    assert "lr_schedule" in _search_fingerprint(spec)
    assert "lr_schedule" not in _search_fingerprint(tiny_spec())


def test_a_user_factory_enters_the_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "user_nets_pipeline.py").write_text(
        "from torch import nn\n\n\n"
        "def make_net(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(),\n"
        "                         nn.Linear(24, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = tiny_spec(
        pool={"architectures": ["user_nets_pipeline:make_net"], "epochs": 2},
        search={"methods": ["magnitude"], "trials": 2},
        selection={"max_size": 2},
    )
    run_dir = tmp_path / "run"
    run_study(spec, run_dir=run_dir, progress=False)
    members = pd.read_csv(run_dir / "members.csv")
    assert list(members.member) == ["make_net-s0", "make_net-s1"]
    assert list(members.architecture) == ["user_nets_pipeline:make_net"] * 2
    from ensprune.models import load_model

    dense, _ = load_model(run_dir / "members" / "make_net-s0" / "dense.pt")
    assert dense.ensprune_source == {  # type: ignore[comparison-overlap]
        "kind": "factory",
        "target": "user_nets_pipeline:make_net",
        "kwargs": {"input_shape": [1, 8, 8], "num_classes": 10},
    }


def test_select_on_the_run_dir_picks_the_runs_team(
    finished_run: tuple[Path, object], capsys: pytest.CaptureFixture[str]
) -> None:
    from ensprune.cli import main

    run_dir, _ = finished_run
    chosen = json.loads((run_dir / "selection.json").read_text())
    assert main(["select", str(run_dir), "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["members"] == chosen["members"] and doc["names"] == chosen["names"]
    assert doc["val_accuracy"] == pytest.approx(chosen["val_accuracy"])
