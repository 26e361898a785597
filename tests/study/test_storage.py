"""Storage URLs open real storages: SQLite, a journal file, and a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from ensprune.errors import StorageError
from ensprune.storage import (
    absolute_storage_url,
    default_storage_url,
    open_storage,
    same_storage,
    study_names,
)


def _two_objective_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=["maximize", "maximize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        load_if_exists=True,
    )
    study.optimize(
        lambda t: (t.suggest_float("x", 0, 1), 1 - t.suggest_float("y", 0, 1)), n_trials=3
    )
    return study


def test_default_storage_is_sqlite_inside_the_run_dir(tmp_path: Path) -> None:
    url = default_storage_url(tmp_path / "run")
    assert url.startswith("sqlite:///") and url.endswith("run/study.db")
    _two_objective_study(open_storage(url), "s")
    assert (tmp_path / "run" / "study.db").is_file()
    assert study_names(url) == ["s"]


def test_journal_file_storage_round_trips(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.log")
    _two_objective_study(open_storage(path), "j")
    again = optuna.load_study(study_name="j", storage=open_storage(path))
    assert len(again.trials) == 3


@pytest.mark.parametrize("url", ["", "not a url", "nosuchdb://x/y"])
def test_bad_urls_raise_storage_error(url: str) -> None:
    with pytest.raises(StorageError):
        open_storage(url)


def test_unreachable_postgres_is_one_clear_error() -> None:
    with pytest.raises(StorageError, match="cannot open storage postgresql"):
        open_storage("postgresql+psycopg2://nobody:secret@127.0.0.1:9/none")


def test_password_is_not_printed() -> None:
    with pytest.raises(StorageError) as info:
        open_storage("postgresql+psycopg2://nobody:secret@127.0.0.1:9/none")
    assert "secret" not in str(info.value)


@pytest.mark.postgres
def test_postgres_storage_shared_by_two_handles(postgres_url: str) -> None:
    """Two storage handles (as two machines would hold) see each other's trials."""
    _two_objective_study(open_storage(postgres_url), "pg")
    other = optuna.load_study(study_name="pg", storage=open_storage(postgres_url))
    other.optimize(
        lambda t: (t.suggest_float("x", 0, 1), 1 - t.suggest_float("y", 0, 1)), n_trials=2
    )
    assert len(optuna.load_study(study_name="pg", storage=open_storage(postgres_url)).trials) == 5


def test_a_damaged_sqlite_file_is_named_with_a_way_forward(tmp_path: Path) -> None:
    damaged = tmp_path / "study.db"
    damaged.write_bytes(b"not a database, only some bytes of one" * 40)
    with pytest.raises(StorageError, match=r"storage file .*study\.db is damaged") as caught:
        open_storage(f"sqlite:///{damaged}")
    assert f"mv {damaged} {damaged}.bad" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_file_storages_are_the_same_by_their_real_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "x")
    monkeypatch.chdir(tmp_path)
    journal = str(tmp_path / "x" / "study.log")
    for other in ("x/study.log", "./x/../x/study.log", "link/study.log", f"journal://{journal}"):
        assert same_storage(journal, other), other
    assert same_storage(f"sqlite:///{tmp_path}/x/s.db", "sqlite:///link/s.db")
    assert not same_storage(journal, "y/study.log")
    assert not same_storage(journal, "sqlite:///x/study.log")  # a journal is not a database
    assert not same_storage(journal, None)
    url = "postgresql+psycopg2://u@h/db"
    assert same_storage(url, url) and not same_storage(url, url + "2")
    # recorded absolute (symlinks kept), so a resume from another directory finds the file
    assert absolute_storage_url("link/../x/study.log") == journal
    assert absolute_storage_url("sqlite:///link/s.db") == f"sqlite:///{tmp_path}/link/s.db"
    assert absolute_storage_url("journal://s.log") == f"journal://{tmp_path}/s.log"
    assert absolute_storage_url(url) == url


def test_sqlite_runs_in_wal_mode_and_a_killed_writer_loses_no_committed_trial(
    tmp_path: Path,
) -> None:
    """WAL with synchronous=NORMAL skips the fsyncs, not the writes: a process killed right
    after its commits leaves them in study.db-wal, and the next open reads every one."""
    import os
    import signal
    import subprocess
    import sys

    url = default_storage_url(tmp_path)
    script = f"""
import os, signal, optuna
from ensprune.storage import open_storage
storage = open_storage({url!r})
with storage.engine.connect() as connection:
    print(connection.exec_driver_sql("PRAGMA journal_mode").scalar(),
          connection.exec_driver_sql("PRAGMA synchronous").scalar(), flush=True)
study = optuna.create_study(study_name="s", storage=storage)
study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ)
    )
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["wal", "1"]  # 1: NORMAL
    assert (tmp_path / "study.db-wal").exists()  # killed: not folded into study.db yet
    trials = optuna.load_study(study_name="s", storage=open_storage(url)).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4


def test_a_file_storage_is_opened_once_per_process_while_its_file_stays(tmp_path: Path) -> None:
    url = default_storage_url(tmp_path)
    first = open_storage(url)
    assert open_storage(url) is first
    journal = str(tmp_path / "study.log")
    assert open_storage(journal) is open_storage(journal)
    (tmp_path / "study.db").unlink()  # a storage removed (and made again): not the cached one
    again = open_storage(url)
    assert again is not first
    _two_objective_study(again, "s")
    assert study_names(url) == ["s"]
