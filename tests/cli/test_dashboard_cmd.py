"""``ensprune dashboard``: optuna-dashboard served for real on a run's SQLite storage."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import ensprune.cli
from ensprune.cli import main

REPO = Path(__file__).resolve().parents[2]
# The real CLI entry point with only this subcommand registered, so the server process does
# not depend on (or pay for importing) the other subcommands' modules.
CLI = "import sys, ensprune.cli as c; c.SUBCOMMANDS = ('dashboard',); sys.exit(c.main())"
START_TIMEOUT_S = 90.0  # generous: a loaded CI machine starts Python slowly


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, gzip: bool = False) -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return r.status, dict(r.headers), r.read()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, rundir: ModuleType) -> Path:
    return Path(rundir.make_run_dir(tmp_path_factory.mktemp("dash"), teams=False))


@pytest.fixture(scope="module")
def dashboard(run_dir: Path) -> Iterator[str]:
    """``ensprune dashboard RUN_DIR --port P`` in a subprocess; yields its base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "dashboard", str(run_dir), "--port", str(port)],
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
                _get(base + "/api/studies")
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


def test_dashboard_serves_ui_api_and_bundle(dashboard: str) -> None:
    status, _, body = _get(dashboard + "/")  # a redirect to /dashboard, followed by urllib
    assert status == 200 and b"<html" in body.lower()
    status, _, body = _get(dashboard + "/api/studies")
    studies = json.loads(body)["study_summaries"]
    assert status == 200
    assert sorted(s["study_name"] for s in studies) == ["tiny-mlp-s0", "tiny-mlp-s1"]
    assert all(len(s["directions"]) == 2 for s in studies)  # the multi-objective searches
    # optuna-dashboard answers 500 for the bundle without an Accept-Encoding header.
    status, headers, body = _get(dashboard + "/static/bundle.js", gzip=True)
    assert status == 200 and len(body) > 10_000
    assert headers.get("Content-Encoding") == "gzip"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["dashboard"], "exactly one"),
        (["dashboard", "RUN", "--storage", "sqlite:///x.db"], "exactly one"),
        (["dashboard", "--storage", "sqlite:///no/such/file.db"], "no SQLite file"),
        (["dashboard", "NOT_A_RUN"], "not an ensprune run directory"),
    ],
)
def test_bad_targets_are_exit_2(
    argv: list[str],
    needle: str,
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(ensprune.cli, "SUBCOMMANDS", ("dashboard",))
    argv = [str(run_dir) if a == "RUN" else str(tmp_path) if a == "NOT_A_RUN" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_bad_port_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ensprune.cli, "SUBCOMMANDS", ("dashboard",))
    with pytest.raises(SystemExit) as exit_info:
        main(["dashboard", "--storage", "sqlite:///x.db", "--port", "70000"])
    assert exit_info.value.code == 2
