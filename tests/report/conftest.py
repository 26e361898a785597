"""Fixtures: a complete run directory (tests/report/rundir.py) with known accuracies."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

_HELPER = "ensprune_tests_rundir"


def load_rundir_helper() -> ModuleType:
    """tests/report/rundir.py as a module (importlib mode gives tests no package to import)."""
    if _HELPER not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            _HELPER, Path(__file__).with_name("rundir.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_HELPER] = module
        spec.loader.exec_module(module)
    return sys.modules[_HELPER]


@pytest.fixture(scope="session")
def rundir() -> ModuleType:
    """The helper module: make_run_dir, reference_accuracy and the fixture's constants."""
    return load_rundir_helper()


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
