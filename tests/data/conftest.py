"""Fixtures of the data tests: the real-data folder and a local HTTP server for downloads."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# read before any test's monkeypatch can change it
_ENV_DATA_DIR = os.environ.get("ENSPRUNE_DATA_DIR")
# the shared copies sit beside the checkout: <repo>/../shared/data
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

REAL_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """``$ENSPRUNE_DATA_DIR`` as the session started, else ``../shared/data`` beside the repo."""
    return Path(_ENV_DATA_DIR) if _ENV_DATA_DIR else SHARED_DATA


@pytest.fixture(scope="session")
def real_folder(real_data_root: Path) -> Callable[[str], Path]:
    """``real_folder("mnist")``: that dataset's folder with all four files, or skip the test."""

    def get(folder: str) -> Path:
        path = real_data_root / folder
        missing = [name for name in REAL_FILES if not (path / name).is_file()]
        if missing:
            pytest.skip(
                f"real {folder} files not found under {path} ({', '.join(missing)}); set "
                "ENSPRUNE_DATA_DIR to a folder holding mnist/ and fashion-mnist/"
            )
        return path

    return get


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from a folder; ``/short/<n>`` promises 1000 bytes but sends only n."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/short/"):
            body = b"x" * int(self.path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        super().do_GET()


class LocalServer:
    """An HTTP server on 127.0.0.1 serving ``root``; ``url`` is its base URL."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # a short poll interval keeps shutdown (and so each test's teardown) quick
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[[Path], LocalServer]]:
    """``serve(folder)`` starts a local HTTP server on that folder, stopped after the test."""
    servers: list[LocalServer] = []

    def start(root: Path) -> LocalServer:
        servers.append(LocalServer(root))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
