"""Fixtures: a complete run directory (tests/report/rundir.py) with known accuracies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, rundir: ModuleType) -> Path:
    """A plurality-voting run with teams.csv and a real SQLite study; treat it as read-only."""
    return Path(rundir.make_run_dir(tmp_path_factory.mktemp("plurality")))


@pytest.fixture
def make_run(tmp_path: Path, rundir: ModuleType) -> Callable[..., Path]:
    """A fresh run directory per call (for tests that change or break it); no SQLite study."""

    def make(voting: str = "plurality", teams: bool = True, selector: str = "hq") -> Path:
        root = tmp_path / f"{voting}-{teams}-{selector}"
        root.mkdir()
        return Path(
            rundir.make_run_dir(root, voting=voting, teams=teams, study=False, selector=selector)
        )

    return make
