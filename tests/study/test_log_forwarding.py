"""The queue server that carries worker log records ends with the run, even a SIGKILLed one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .crashkit import alive, wait_for

HOLD_THE_QUEUE = """
import multiprocessing, time
from ensprune.parallel import forward_worker_logs
from ensprune.study.guard import follow_parent

with forward_worker_logs(2, server_init=follow_parent) as logs:
    assert logs is not None
    print(*[p.pid for p in multiprocessing.active_children()], flush=True)
    time.sleep(120)
"""


def test_the_log_queue_server_ends_when_the_run_is_killed() -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_QUEUE], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert run.stdout is not None
    servers = [int(pid) for pid in run.stdout.readline().split()]
    assert len(servers) == 1 and alive(servers[0])
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    wait_for(lambda: not alive(servers[0]), timeout=20, what="the orphaned queue server to end")
