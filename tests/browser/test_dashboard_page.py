"""``ensprune dashboard`` on a finished run, opened in a real browser: it lists the run's studies."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conftest import PageLog

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, rundir: ModuleType) -> Iterator[str]:
    """``ensprune dashboard RUN_DIR --port P`` as a user starts it; yields the base URL."""
    run = rundir.make_run_dir(tmp_path_factory.mktemp("dash-browser"), teams=False)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ensprune", "dashboard", str(run), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"dashboard exited with {proc.returncode}:\n{output}")
            try:
                urllib.request.urlopen(base + "/api/studies", timeout=5).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"dashboard did not answer on {base} within {START_TIMEOUT_S} s")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_dashboard_page_lists_the_runs_studies(dashboard: str, page: tuple[Any, PageLog]) -> None:
    tab, log = page
    tab.goto(dashboard + "/", wait_until="load")
    for name in ("tiny-mlp-s0", "tiny-mlp-s1"):
        tab.get_by_text(name).first.wait_for(state="visible", timeout=30_000)
    assert log.errors == []
