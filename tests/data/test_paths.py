"""resolve_data_dir: explicit argument, then ENSPRUNE_DATA_DIR, then ./data."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensprune.data import DATA_DIR_ENV, resolve_data_dir


def test_argument_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def test_environment_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir("") == tmp_path / "env"  # an empty --data-dir counts as unset


def test_default_is_data_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir() == tmp_path / "data"
    monkeypatch.setenv(DATA_DIR_ENV, "")
    assert resolve_data_dir() == tmp_path / "data"
    assert not (tmp_path / "data").exists()  # resolving creates nothing


def test_relative_and_home_paths_become_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir("rel") == tmp_path / "rel"
    assert resolve_data_dir("~/ds") == tmp_path / "home" / "ds"


def test_load_dataset_uses_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ensprune.data import load_dataset
    from ensprune.errors import DataError

    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    with pytest.raises(DataError, match=str(tmp_path / "env" / "mnist")):
        load_dataset("mnist", download=False)
