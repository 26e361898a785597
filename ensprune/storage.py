"""Storage URLs -> Optuna storages: SQLite (one process), journal file (one machine), RDB (many)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from ensprune.errors import StorageError

JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


# PostgreSQL/MySQL trials beat every minute; one silent for three is a dead worker's, failed
# and redone (see ensprune.study.claims).
HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 180


def is_shared(url: str) -> bool:
    """True when several processes may write the storage at once: a journal file or a server
    database; never SQLite (or an in-memory storage)."""
    if _journal_path(url) is not None:
        return True
    return "://" in url and not url.startswith(("sqlite", "inmemory"))


def default_storage_url(run_dir: str | Path) -> str:
    """The default storage of a run: an SQLite file inside the run directory."""
    return f"sqlite:///{(Path(run_dir) / 'study.db').resolve()}"


# File storages opened by this process, by (pid, URL), with the file's identity when opened:
# opening one costs Optuna's schema check (0.3 s, more on a busy machine), and every member
# study of a run opened its own.
_opened: dict[tuple[int, str], tuple[BaseStorage, tuple[int, int]]] = {}


def open_storage(url: str) -> BaseStorage:
    """Open the Optuna storage behind ``url``.

    Accepted forms: ``sqlite:///path.db``, ``postgresql+psycopg2://user@host/db`` (or any SQLAlchemy
    URL), and a journal file (``journal:///path`` or a path ending in .log/.journal/.jsonl) for
    several processes on one machine.

    A file storage (SQLite, journal) is opened once per process and reused while its file is
    the same one (a file removed or replaced since is opened afresh).
    """
    if not url or not isinstance(url, str):
        raise StorageError("the storage URL is empty; give e.g. sqlite:///study.db")
    key = (os.getpid(), url)
    cached = _opened.get(key)
    if cached is not None and cached[1] == _file_identity(url):
        return cached[0]
    storage = _open_storage(url)
    identity = _file_identity(url)
    if identity is not None:
        _opened[key] = (storage, identity)
    return storage


def _file_identity(url: str) -> tuple[int, int] | None:
    """(device, inode) of a file storage's file; None for other storages or a missing file."""
    path = _file_path(url)
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return None if stat is None else (stat.st_dev, stat.st_ino)


def _open_storage(url: str) -> BaseStorage:
    journal_path = _journal_path(url)
    if journal_path is not None:
        journal_path.parent.mkdir(parents=True, exist_ok=True)
        # the real path: processes naming the file through a symlink share its lock file too
        return JournalStorage(JournalFileBackend(str(journal_path.resolve())))
    if "://" not in url:
        raise StorageError(
            f"storage {url!r} is neither a database URL nor a journal file; use sqlite:///PATH.db, "
            "postgresql+psycopg2://USER@HOST/DB or a PATH.log journal file"
        )
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine_kwargs: dict[str, object] = {}
    if not url.startswith("sqlite"):
        engine_kwargs["pool_pre_ping"] = True
    if url.startswith(("postgresql+psycopg2://", "postgresql://")):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}  # never hang on a dead host
    shared = is_shared(url)
    try:
        storage = _rdb_storage(url, engine_kwargs, shared)
        if storage.engine.name == "sqlite":
            _journal_ahead(storage)
        return storage
    except ImportError as exc:
        raise StorageError(
            f"the driver for storage {redact(url)} is not installed ({exc}); for PostgreSQL run "
            "pip install 'ensprune[postgres]'"
        ) from None
    except Exception as exc:  # SQLAlchemy raises many types for bad URLs and refused connections
        reason = str(exc).splitlines()[0]
        if url.startswith("sqlite:///") and "DatabaseError" in reason:
            path = url.removeprefix("sqlite:///")
            raise StorageError(
                f"storage file {path} is damaged ({reason}); move it away (`mv {path} "
                f"{path}.bad`) and re-run: the trained pool is reused and the trials are redone"
            ) from None
        raise StorageError(f"cannot open storage {redact(url)}: {reason}") from None


def _rdb_storage(url: str, engine_kwargs: dict[str, object], shared: bool) -> RDBStorage:
    """RDBStorage(url), retried when another process is creating the same schema at that moment.

    Processes that open a fresh database together (a lead and its ``--join`` workers) race on
    Optuna's CREATE TABLE statements; the loser gets an IntegrityError (PostgreSQL: duplicate
    key in pg_type) and succeeds once the winner's tables exist.
    """
    import time

    from sqlalchemy.exc import IntegrityError

    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # Optuna calls its heartbeat experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL_S if shared else None,
                    grace_period=GRACE_PERIOD_S if shared else None,
                )
        except IntegrityError:
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _journal_ahead(storage: RDBStorage) -> None:
    """SQLite in write-ahead-log mode with ``synchronous=NORMAL`` on every connection.

    Optuna commits every ``suggest_*``, user attribute, report and state change on its own; in
    SQLite's default rollback journal each commit waits for two fsyncs (about 9 ms, a third of
    the framework's time per trial). In WAL mode with ``synchronous=NORMAL`` a commit is an
    append to ``study.db-wal`` without fsync, synced at checkpoints: a killed process (SIGKILL,
    Ctrl-C, out of memory) loses nothing it committed, since its writes are already in the
    operating system's page cache; only a power cut or kernel crash can lose the last commits,
    never the file's consistency. WAL also lets readers work while another process of the same
    machine writes (``--workers``); it needs a local file system, as SQLite's locks do anyway.
    """
    from sqlalchemy import event

    event.listen(storage.engine, "connect", _set_wal_pragmas)
    storage.engine.dispose()  # the connections Optuna opened to create the schema lack them


def _set_wal_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
        cursor.execute("PRAGMA synchronous=NORMAL")  # per connection
    finally:
        cursor.close()


def _journal_path(url: str) -> Path | None:
    if url.startswith("journal://"):
        return Path(url.removeprefix("journal://"))
    if "://" not in url and url.endswith(JOURNAL_SUFFIXES):
        return Path(url)
    return None


def absolute_storage_url(url: str) -> str:
    """``url`` with a file storage's relative path made absolute (symlinks kept), so that it
    means the same file from any working directory; other URLs unchanged."""
    path = _file_path(url)
    if path is None or path.is_absolute():
        return url
    absolute = os.path.abspath(path)
    for scheme in ("journal://", "sqlite:///"):
        if url.startswith(scheme):
            return scheme + absolute
    return absolute  # a bare journal file path


def same_storage(a: str | None, b: str | None) -> bool:
    """True when two storage URLs name one storage: file storages (SQLite, journal) by their
    real path (relative paths, ``..`` and symlinks resolved, ``journal://`` or not), others as
    written."""
    if a is None or b is None:
        return a == b
    return _storage_key(a) == _storage_key(b)


def _storage_key(url: str) -> tuple[str, str]:
    path = _file_path(url)
    if path is None:
        return ("url", url)
    kind = "journal" if _journal_path(url) is not None else "sqlite"
    return (kind, str(path.resolve()))


def _file_path(url: str) -> Path | None:
    """The file behind a journal or ``sqlite:///`` URL, as written; None for anything else."""
    journal = _journal_path(url)
    if journal is not None:
        return journal
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///"))
    return None


def redact(url: str) -> str:
    """The URL with any password hidden, for messages."""
    if "://" not in url or "@" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable as a URL: hide everything before the host
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def study_names(url: str) -> list[str]:
    """Names of the studies held by a storage."""
    return [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))]
