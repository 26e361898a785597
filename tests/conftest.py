"""Shared fixtures: the real-data directory and a real PostgreSQL server for storage tests."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from glob import glob
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_dense_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets an empty dense-network cache (``ensprune prune`` caches what it trains)."""
    monkeypatch.setenv("ENSPRUNE_CACHE_DIR", str(tmp_path_factory.mktemp("ensprune-cache")))


@pytest.fixture(scope="session")
def rundir() -> ModuleType:
    """tests/report/rundir.py: ``make_run_dir`` (a small but real run directory with known
    accuracies), ``reference_accuracy`` and its constants. Loaded by path: importlib mode gives
    tests no package to import from."""
    name = "ensprune_tests_rundir"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "report" / "rundir.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """ENSPRUNE_DATA_DIR, else ../shared/data beside the checkout; skips when MNIST is absent."""
    path = Path(os.environ.get("ENSPRUNE_DATA_DIR", SHARED_DATA))
    if not (path / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST files not found under {path}; set ENSPRUNE_DATA_DIR")
    return path


def _pg_bin(name: str) -> str | None:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Start a throw-away PostgreSQL cluster on 127.0.0.1 and yield a SQLAlchemy URL to it.

    Skips when the server binaries are missing, unless ENSPRUNE_REQUIRE_POSTGRES=1 (set by CI),
    in which case it fails.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("ENSPRUNE_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL server binaries not found; apt-get install postgresql")
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    pytest.importorskip("psycopg2")
    # initdb refuses to run as root: run the server as the 'postgres' system user then.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="ensprune-pg-"))
    if prefix:
        shutil.chown(base, user="postgres")
    data, port = base / "data", _free_port()
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-w",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE ensprune",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/ensprune"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_library_logging() -> Iterator[None]:
    """Undo what an in-process CLI call configures (the ``ensprune`` logger's level and handler).

    ``main()`` sets up logging the way a user's shell needs it; left in place, that state leaks
    into whichever test a worker runs next (extra log records, lines on the captured stderr).
    """
    ours = logging.getLogger("ensprune")
    level, handlers, propagate = ours.level, list(ours.handlers), ours.propagate
    yield
    ours.setLevel(level)
    ours.handlers[:] = handlers
    ours.propagate = propagate
