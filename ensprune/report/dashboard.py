"""optuna-dashboard on a run's study storage: SQLite, an RDB server, or a journal file.

The dashboard only looks at what the study pipeline stored, so opening a storage here never
creates anything: a missing SQLite or journal file is an error instead of a new empty study
database, and RDB tables are not created. The server binds to 127.0.0.1 unless told otherwise,
because optuna-dashboard has no authentication and lets a visitor edit the studies.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from ensprune.errors import EnsPruneError, SpecError, StorageError
from ensprune.rundir import RUN_JSON, open_run, storage_or_none
from ensprune.storage import redact

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_SQLITE_HEADER = b"SQLite format 3\x00"
_FORMS = "give sqlite:///PATH.db, postgresql+psycopg2://USER@HOST/DB, or the path of a journal file"


def resolve_storage(target: str | Path) -> tuple[str, Path | None]:
    """The storage URL behind ``target`` and the directory relative paths may be taken from.

    Args:
        target: a run directory (its run.json names the storage) or a storage URL / journal path.

    Returns:
        ``(url, run_dir)``; ``run_dir`` is None when ``target`` was a URL.

    Raises:
        RunDirError: ``target`` is a directory that is not a run directory.
        StorageError: the run directory's run.json names no storage.
    """
    path = Path(target)
    if path.is_dir():
        storage = storage_or_none(path, open_run(path).info)  # no run.json fails here
        if not storage or not isinstance(storage, str):
            raise StorageError(
                f"{path / RUN_JSON} names no Optuna storage; pass the storage with --storage URL"
            )
        return storage, path
    return str(target), None


def open_dashboard_storage(url: str, base_dir: str | Path | None = None) -> BaseStorage:
    """Open an existing Optuna storage for reading, checking that it answers.

    Args:
        url: ``sqlite:///PATH``, any SQLAlchemy URL (e.g. ``postgresql+psycopg2://...``),
            ``journal:///PATH``, or the path of a journal file (a path to an SQLite file works too).
        base_dir: where a relative file path is looked up when it does not exist relative to the
            working directory (a run directory, whose run.json may hold relative paths).

    Raises:
        StorageError: the storage does not exist, cannot be reached, or is not an Optuna storage.
    """
    url = str(url).strip()
    if not url:
        raise StorageError(f"the storage is empty; {_FORMS}")
    if url.startswith("sqlite:"):
        return _check(_open_sqlite(url, base_dir), url)
    if url.startswith("journal://"):
        return _check(_open_file(url.removeprefix("journal://"), base_dir, url), url)
    if "://" in url:
        return _check(_open_rdb(url), url)
    return _check(_open_file(url, base_dir, url), url)


def _existing(path_text: str, base_dir: str | Path | None) -> Path | None:
    path = Path(path_text).expanduser()
    if path.is_file():
        return path
    if base_dir is not None and not path.is_absolute() and (Path(base_dir) / path).is_file():
        return Path(base_dir) / path
    return None


def _open_sqlite(url: str, base_dir: str | Path | None) -> BaseStorage:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(url).database
    except ArgumentError:
        database = None
    if not database or database == ":memory:":
        raise StorageError(f"{url!r} names no SQLite file; {_FORMS}")
    path = _existing(database, base_dir)
    if path is None:
        raise StorageError(
            f"no SQLite file at {database} (from {url}); check the path, or run the study first"
        )
    return _rdb(f"sqlite:///{path.resolve()}", url)


def _open_file(path_text: str, base_dir: str | Path | None, url: str) -> BaseStorage:
    path = _existing(path_text, base_dir)
    if path is None:
        raise StorageError(f"no storage at {path_text!r}: no such file; {_FORMS}")
    with path.open("rb") as handle:
        first_line = handle.readline()
    if first_line.startswith(_SQLITE_HEADER):  # optuna-dashboard wants sqlite:///; take it anyway
        return _rdb(f"sqlite:///{path.resolve()}", url)
    if first_line and not _is_journal_entry(first_line):
        # Optuna skips an undecodable last line as a partial write, so a one-line text file
        # would pass as an empty journal: look at the first entry ourselves.
        raise StorageError(
            f"{path} is neither an SQLite database nor an Optuna journal file; {_FORMS}"
        )
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:  # a corrupt journal raises whatever its JSON replay hits
        raise StorageError(
            f"cannot read {path} as an Optuna journal file: {_first_line(exc)}"
        ) from None


def _is_journal_entry(line: bytes) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return isinstance(entry, dict) and "op_code" in entry


def _open_rdb(url: str) -> BaseStorage:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"{url!r} is not a storage URL; {_FORMS}") from None
    engine_kwargs: dict[str, object] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in {
        "psycopg2",
        "psycopg",
    }:
        # libpq otherwise waits forever on a host that drops packets
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    return _rdb(url, url, engine_kwargs)


def _rdb(url: str, shown: str, engine_kwargs: dict[str, object] | None = None) -> BaseStorage:
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            skip_compatibility_check=True,
            skip_table_creation=True,  # look, never create
        )
    except ImportError as exc:
        raise StorageError(
            f"the database driver for {redact(shown)} is not installed ({exc}); for PostgreSQL "
            "run pip install 'ensprune[postgres]'"
        ) from None
    except Exception as exc:  # SQLAlchemy raises many types for bad URLs and refused connections
        raise StorageError(f"cannot open storage {redact(shown)}: {_first_line(exc)}") from None


def _check(storage: BaseStorage, shown: str) -> BaseStorage:
    """Ask the storage for its studies once, so a dead server or a foreign file fails here."""
    try:
        storage.get_all_studies()
    except Exception as exc:  # OperationalError, ProgrammingError, JSON errors, ...
        raise StorageError(
            f"storage {redact(shown)} does not answer as an Optuna storage: {_first_line(exc)}"
        ) from None
    return storage


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def serve_dashboard(
    storage_url: str | Path | BaseStorage,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_ready: Callable[[str], None] | None = None,
    ready_timeout_s: float = 60.0,
) -> None:
    """Serve optuna-dashboard on a storage until interrupted (Ctrl-C).

    Args:
        storage_url: a storage URL or journal path (see :func:`open_dashboard_storage`), a
            run directory, whose run.json names its storage, or an opened Optuna storage.
        host: interface to bind; the default 127.0.0.1 keeps the dashboard on this machine.
        port: TCP port (0 picks a free one).
        on_ready: called with the address (``http://HOST:PORT/``) once the server has answered
            a request, never before, so no address is shown for a server that did not start.
        ready_timeout_s: how long to wait for that first answer before logging a warning.

    Raises:
        StorageError: the storage cannot be opened.
        SpecError: the port is in use or the address cannot be bound.
        EnsPruneError: optuna-dashboard is not installed.

    Example:
        >>> serve_dashboard("runs/mnist", on_ready=print)   # doctest: +SKIP
        >>> serve_dashboard("sqlite:///runs/mnist/study.db", port=8081)  # doctest: +SKIP
    """
    if not 0 <= int(port) <= 65535:
        raise SpecError(f"port must lie in 0..65535; got {port}")
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise EnsPruneError(
            "the dashboard needs optuna-dashboard (a dependency of ensprune): "
            "pip install optuna-dashboard"
        ) from None
    if isinstance(storage_url, BaseStorage):
        storage = storage_url
    else:
        storage = open_dashboard_storage(*resolve_storage(storage_url))
    try:
        server = make_server(
            host, int(port), wsgi(storage), server_class=_server_class(host), handler_class=_Quiet
        )
    except socket.gaierror as exc:
        raise SpecError(f"cannot resolve host {host!r} ({exc}); use e.g. 127.0.0.1") from None
    except OSError as exc:
        if exc.errno in {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}:
            raise SpecError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host"
            ) from None
        raise
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{server.server_port}/"
    if on_ready is not None:
        threading.Thread(
            target=_announce_when_answering,
            args=(address, on_ready, ready_timeout_s),
            daemon=True,
        ).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()


class _Quiet(WSGIRequestHandler):
    """No access log on stderr (one line per request drowns the address the user needs)."""

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("dashboard: " + format, *args)


def _server_class(host: str) -> type[WSGIServer]:
    if ":" not in host:
        return WSGIServer

    class WSGIServerV6(WSGIServer):
        address_family = socket.AF_INET6

    return WSGIServerV6


def _announce_when_answering(
    address: str, on_ready: Callable[[str], None], timeout_s: float
) -> None:
    """Call ``on_ready(address)`` after the first successful answer from the server."""
    probe = address.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(probe + "api/meta", timeout=5) as answer:
                if answer.status == 200:
                    on_ready(address)
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    logger.warning("optuna-dashboard did not answer on %s within %.0f s", address, timeout_s)
