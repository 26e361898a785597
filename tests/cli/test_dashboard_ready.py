"""``ensprune dashboard`` prints its address only once the server answers, and never on failure."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = "import sys, ensprune.cli as c; c.SUBCOMMANDS = ('dashboard',); sys.exit(c.main())"


@pytest.mark.slow
def test_address_is_printed_once_the_server_answers(tmp_path: Path, rundir: ModuleType) -> None:
    run = rundir.make_run_dir(tmp_path, teams=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "dashboard", str(run), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the announcement
        assert f"http://127.0.0.1:{port}/" in line and "Ctrl-C" in line
        # no retry: the server answered before the line was printed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as r:
            assert r.status == 200
        # the same port again: one error line, exit 2, and no address printed
        second = subprocess.run(
            [sys.executable, "-c", CLI, "dashboard", str(run), "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2 and second.stdout == ""
        assert "choose another --port" in second.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
