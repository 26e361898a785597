"""Dashboard storage resolution: run dirs, SQLite, journal files, RDB URLs, and clear errors."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from ensprune.errors import RunDirError, SpecError, StorageError
from ensprune.report.dashboard import open_dashboard_storage, resolve_storage, serve_dashboard


def _names(storage: optuna.storages.BaseStorage) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


def test_run_dir_resolves_to_its_storage(run_dir: Path) -> None:
    url, base = resolve_storage(run_dir)
    assert url == json.loads((run_dir / "run.json").read_text())["storage"]
    assert base == run_dir
    assert _names(open_dashboard_storage(url)) == ["tiny-mlp-s0", "tiny-mlp-s1"]
    assert resolve_storage("sqlite:///x.db") == ("sqlite:///x.db", None)


def test_sqlite_forms_and_relative_paths(run_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    shutil.copy(run_dir / "study.db", db)
    assert _names(open_dashboard_storage(str(db))) == ["tiny-mlp-s0", "tiny-mlp-s1"]  # bare path
    # A relative path in run.json is looked up in the run directory too.
    assert _names(open_dashboard_storage("sqlite:///copy.db", base_dir=tmp_path))
    with pytest.raises(StorageError, match="no SQLite file"):
        open_dashboard_storage("sqlite:///missing.db", base_dir=tmp_path)
    assert not Path("missing.db").exists() and not (tmp_path / "missing.db").exists()


def test_journal_file(tmp_path: Path) -> None:
    path = tmp_path / "study.log"
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="j", storage=storage, directions=["maximize"] * 2)
    study.add_trial(optuna.trial.create_trial(values=[0.9, 0.5]))
    assert _names(open_dashboard_storage(str(path))) == ["j"]
    assert _names(open_dashboard_storage(f"journal://{path}")) == ["j"]
    bad = tmp_path / "notes.txt"
    bad.write_text("this is no journal\n")
    with pytest.raises(StorageError, match="journal"):
        open_dashboard_storage(str(bad))


def test_unknown_or_unreachable_storage_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such file"):
        open_dashboard_storage(str(tmp_path / "nothing.log"))
    with pytest.raises(StorageError):
        open_dashboard_storage("nosuchdb://host/db")
    with pytest.raises(StorageError) as info:  # port 1 on localhost refuses at once
        open_dashboard_storage("postgresql+psycopg2://user:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(info.value)
    with pytest.raises(RunDirError, match="not an ensprune run directory"):
        resolve_storage(tmp_path)


def test_busy_port_is_a_clear_error(run_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(SpecError, match="another --port"):
            serve_dashboard(run_dir, port=busy.getsockname()[1])
