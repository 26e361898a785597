"""joblib configuration: n_jobs resolution, ordered parallel map, backend passthrough."""

from __future__ import annotations

import logging
import os

import joblib
import pytest

from ensprune.errors import SpecError
from ensprune.parallel import (
    WorkerLogs,
    forward_worker_logs,
    parallel_config,
    parallel_map,
    resolve_n_jobs,
)


def _square(x: int) -> int:
    return x * x


def test_resolve_n_jobs() -> None:
    assert resolve_n_jobs(None) == 1
    assert resolve_n_jobs(3) == 3
    assert resolve_n_jobs(-1) == (os.cpu_count() or 1)
    with parallel_config(n_jobs=2):
        assert resolve_n_jobs(None) == 2
    with pytest.raises(SpecError):
        resolve_n_jobs(0)


def test_parallel_map_in_order_on_threads() -> None:
    with parallel_config(backend="threading"):
        assert joblib.parallel.get_active_backend()[0].__class__.__name__ == "ThreadingBackend"
        assert parallel_map(_square, range(7), n_jobs=2) == [x * x for x in range(7)]
    assert parallel_map(_square, range(4), n_jobs=1) == [0, 1, 4, 9]


def _log_and_return(task: tuple[WorkerLogs, int]) -> tuple[int, int]:
    logs, value = task
    with logs.installed():
        logging.getLogger("ensprune.test").info("task %d from pid %d", value, os.getpid())
        logging.getLogger("ensprune.test").debug("below the caller's level")
    return value, os.getpid()


def test_loky_workers_log_records_reach_the_callers_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ensprune")
    with forward_worker_logs(2) as logs:
        assert logs is not None and logs.level == logging.INFO
        results = parallel_map(_log_and_return, [(logs, i) for i in range(4)], n_jobs=2)
        _log_and_return((logs, 9))  # in the caller's own process: logged once, not looped
    worker_pids = {pid for _, pid in results}
    assert os.getpid() not in worker_pids  # the tasks really ran in other processes
    forwarded = [r for r in caplog.records if r.name == "ensprune.test"]
    expected = [f"task {i} from pid {pid}" for i, pid in results] + [
        f"task 9 from pid {os.getpid()}"
    ]
    assert sorted(r.getMessage() for r in forwarded) == sorted(expected)
    assert {r.process for r in forwarded} == worker_pids | {
        os.getpid()
    }  # records keep their origin
    assert all(r.levelno == logging.INFO for r in forwarded)  # DEBUG was not sent


def test_nothing_to_forward_for_one_job_or_threads() -> None:
    with forward_worker_logs(1) as logs:
        assert logs is None
    with parallel_config(backend="threading"), forward_worker_logs(2) as logs:
        assert logs is None


PAGE_FAULTS_OF_REUSED_TENSORS = """
import resource, torch
from ensprune.parallel import restore_malloc_reuse

def faults() -> int:  # minor page faults of 64 tensors of 1 MiB, each freed at once
    torch.ones(2**18)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(64):
        torch.ones(2**18)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(faults(), restore_malloc_reuse(), faults())
"""


@pytest.mark.parametrize("trim", [None, "65536"])
def test_restore_malloc_reuse_undoes_a_small_malloc_trim_threshold(trim: str | None) -> None:
    """With dask's MALLOC_TRIM_THRESHOLD_=65536 every 1 MiB tensor is a fresh mmap (256 page
    faults each); after restore_malloc_reuse the heap's memory is reused. Counted, not timed."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the malloc thresholds are glibc's")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if trim is not None:
        env["MALLOC_TRIM_THRESHOLD_"] = trim
    done = subprocess.run(
        [sys.executable, "-c", PAGE_FAULTS_OF_REUSED_TENSORS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    before, changed, after = done.stdout.split()
    if trim is None:  # glibc's dynamic thresholds: nothing to restore
        assert changed == "False"
        assert int(before) < 64 * 256 / 4
    else:
        assert changed == "True"
        assert int(before) > 64 * 256 / 2  # an mmap per tensor
        assert int(after) < 64 * 256 / 8
