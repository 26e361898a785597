"""One writer per run directory: a second run is refused; a SIGKILLed holder leaves no stuck lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ensprune import rundir as rd
from ensprune.errors import RunDirError

from .crashkit import alive, run_cli, wait_for, write_spec

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from ensprune.rundir import lock_run_dir\n"
    "with lock_run_dir(Path(sys.argv[1])):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)


def test_second_run_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        spec = write_spec(tmp_path)
        refused = run_cli("run", str(spec), "--run-dir", str(run_dir))
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert "is in use by another run" in lines[0] and f"pid {holder.pid}" in lines[0]
        assert "--run-dir" in lines[0]
        assert not (run_dir / rd.RUN_JSON).exists()  # refused before writing anything
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # the kernel released the flock with its holder: the lock is free again
    with rd.lock_run_dir(run_dir):
        assert (run_dir / rd.LOCK_FILE).read_text().strip() == str(os.getpid())


def test_lock_is_refused_in_process_too_and_released_after_the_block(tmp_path: Path) -> None:
    with (
        rd.lock_run_dir(tmp_path),
        pytest.raises(RunDirError, match="in use by another run"),
        rd.lock_run_dir(tmp_path),
    ):
        pass
    with rd.lock_run_dir(tmp_path):
        pass


PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', sys.argv[1]])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)
WORKER = (
    "import time\n"
    "from ensprune.study.guard import follow_parent\n"
    "follow_parent()\n"
    "time.sleep(600)\n"
)


def test_a_worker_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, WORKER], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    time.sleep(1.5)  # the worker has imported ensprune and started its watchdog
    assert alive(worker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    wait_for(lambda: not alive(worker), timeout=10, what="the orphaned worker to exit")
