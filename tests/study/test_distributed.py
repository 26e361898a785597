"""The dask cluster path: a real LocalCluster runs the member studies; clear lines when it cannot."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensprune.cli import main

from ._specs import one_line_error, spec_toml, write_spec

SPEC = spec_toml(study={"name": "dist", "seed": 2})


def start(task: dict) -> float:
    return min(part["start"] for part in task["startstops"])


def stop(task: dict) -> float:
    return max(part["stop"] for part in task["startstops"])


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    return write_spec(tmp_path, SPEC)


def test_a_missing_dask_names_the_extra_before_any_training(
    spec_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if absent
    run_dir = tmp_path / "run"
    code = main(["run", str(spec_file), "--run-dir", str(run_dir), "--scheduler", "tcp://h:8786"])
    assert code == 2
    assert "pip install 'ensprune[dask]'" in one_line_error(capsys)
    assert not run_dir.exists()  # refused before the run directory was even made


def test_an_unreachable_scheduler_is_one_line(spec_file: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("dask.distributed")
    code = main(
        [
            "run",
            str(spec_file),
            "--run-dir",
            str(tmp_path / "r"),
            "--scheduler",
            "tcp://127.0.0.1:1",
        ]
    )
    assert code == 2
    assert "cannot reach the dask scheduler at 'tcp://127.0.0.1:1'" in one_line_error(capsys)


def test_a_spec_scheduler_that_is_not_an_address_fails_at_load(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(spec_toml(study={"name": "dist", "seed": 2, "scheduler": "localhost"}))
    assert main(["run", str(path), "--run-dir", str(tmp_path / "r")]) == 2
    assert "[study] scheduler must be a dask scheduler address" in one_line_error(capsys)


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_same_trials_and_team_as_a_local_run(
    spec_file: Path, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("dask.distributed")
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert main(["run", str(spec_file), "--run-dir", str(local), "--quiet"]) == 0
    with (
        distributed.LocalCluster(
            processes=True,
            host="127.0.0.1",
            n_workers=2,
            threads_per_worker=1,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as observer,
    ):
        args = ["--run-dir", str(remote), "--workers", "2", "--quiet"]
        with distributed.get_task_stream(client=observer) as stream:  # every task it runs
            code = main(["run", str(spec_file), *args, "--scheduler", cluster.scheduler_address])
        assert code == 0
        ran_on = {task["worker"] for task in stream.data}
    assert len(ran_on) == 2  # both cluster workers ran member studies
    searched = max(stop(t) for t in stream.data if "_search_member" in t["key"])
    # training before the search and predictions after it ran on the cluster too
    assert any(start(t) < searched for t in stream.data if "_in_worker" in t["key"])
    assert any(start(t) >= searched for t in stream.data if "_in_worker" in t["key"])
    for name in ("val", "test", "dense_val", "dense_test"):
        with (
            np.load(local / "predictions" / f"{name}.npz", allow_pickle=False) as a,
            np.load(remote / "predictions" / f"{name}.npz", allow_pickle=False) as b,
        ):
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
    cols = ["member", "number", "state", "method", "target_sparsity", "val_accuracy", "sparsity"]
    a = pd.read_csv(local / "trials.csv")[cols]
    b = pd.read_csv(remote / "trials.csv")[cols]
    pd.testing.assert_frame_equal(a, b)
    assert (local / "selection.json").read_text() == (remote / "selection.json").read_text()
