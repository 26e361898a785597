"""The dask cluster path: a real LocalCluster runs the member studies; clear lines when it cannot."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

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


def _worker_profiling(dask_worker: Any) -> tuple[int, bool]:
    """A dask worker's pid and whether its statistical profiler runs (on its event loop)."""
    return os.getpid(), bool(dask_worker.periodic_callbacks["profile"].is_running())


@pytest.mark.slow  # a 2-worker LocalCluster: 15-60 s on 2 shared cores
def test_dask_worker_tasks_restore_malloc_reuse_and_stop_the_profiler() -> None:
    """A nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which freezes glibc's mmap
    threshold (every tensor above 128 KiB a fresh mmap); ensprune's worker tasks on a real
    LocalCluster raise the thresholds again, run one torch thread each and stop the workers'
    10 ms stack sampling (dask's profiler) where they ran."""
    distributed = pytest.importorskip("dask.distributed")
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the malloc thresholds are glibc's")
    from ensprune.parallel import KEPT_FREE_BYTES, REUSED_ALLOCATION_BYTES, dask_scheduler
    from ensprune.study.pipeline import _member_map

    def seen_in_the_task(_: int) -> dict[str, object]:
        import os

        import torch

        from ensprune.parallel import malloc_thresholds

        return {
            "trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            "set": malloc_thresholds(),
            "threads": torch.get_num_threads(),
            "pid": os.getpid(),
        }

    with (
        distributed.LocalCluster(
            processes=True,
            host="127.0.0.1",
            n_workers=2,  # joblib runs the tasks here, not on a cluster of one thread
            threads_per_worker=1,
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        plain = client.submit(seen_in_the_task, 0, pure=False).result()
        profiling_before = client.run(_worker_profiling)
        with dask_scheduler(cluster.scheduler_address):
            ours = _member_map(seen_in_the_task, [0, 1], workers=2)
        profiling_after = client.run(_worker_profiling)
    # dask samples every worker's stacks by default; ensprune's tasks stopped it where they ran
    assert all(running for _, running in profiling_before.values()), profiling_before
    ran_ours = {task["pid"] for task in ours}
    after = dict(profiling_after.values())
    assert ran_ours <= after.keys() and not any(after[pid] for pid in ran_ours), profiling_after
    if plain["trim"] is None:
        pytest.skip("this dask no longer sets MALLOC_TRIM_THRESHOLD_ in its workers")
    assert plain["set"] is None  # a task of its own: the nanny's setting holds
    for task in ours:  # ensprune's tasks on the same cluster
        assert task["pid"] != os.getpid() and task["trim"] == plain["trim"]
        assert task["set"] == (REUSED_ALLOCATION_BYTES, KEPT_FREE_BYTES)
        assert task["threads"] == 1  # one torch thread per worker of several
