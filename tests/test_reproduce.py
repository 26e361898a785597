"""benchmarks/reproduce.py: the regression verdict, and the specs its quick runs use."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ensprune.study.spec import StudySpec

REPO = Path(__file__).resolve().parents[1]


def _reproduce():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("reproduce", REPO / "benchmarks" / "reproduce.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module
    spec.loader.exec_module(module)
    return module


reproduce = _reproduce()


@pytest.mark.parametrize(
    ("value", "better", "verdict"),
    [
        (1.6, "lower", "ok"),  # worse, within the spread
        (1.8, "lower", "REGRESSION"),  # worse beyond it
        (1.2, "lower", "better"),
        (1.2, "higher", "REGRESSION"),
        (1.8, "higher", "better"),
    ],
)
def test_a_figure_worse_than_the_record_beyond_its_spread_is_a_regression(
    value: float, better: str, verdict: str
) -> None:
    assert reproduce.compare(value, {"value": 1.5, "spread": 0.2, "better": better}) == verdict


def test_every_headline_has_a_full_command_and_records_match_their_quick_command() -> None:
    names = [h.name for h in reproduce.HEADLINES]
    assert len(names) == len(set(names))
    for headline in reproduce.HEADLINES:
        assert headline.full and "/work/" not in headline.full  # copyable: relative paths
        record = reproduce.RECORDS / f"{headline.name}.json"
        if record.is_file():
            assert json.loads(record.read_text())["quick"] == headline.quick


def test_fashion_team_spec_and_its_quick_copy_are_valid(tmp_path: Path) -> None:
    spec = StudySpec.from_toml(REPO / "studies" / "fashion_team.toml")
    assert spec.data.dataset == "fashion_mnist" and len(spec.pool.architectures) == 4
    reproduce.reduced_spec(REPO / "studies" / "fashion_team.toml", tmp_path / "quick.toml")
    quick = StudySpec.from_toml(tmp_path / "quick.toml")
    assert quick.data.max_train == 3000 and quick.pool.seeds == (0, 1)
    assert quick.search.method_params == spec.search.method_params
    assert quick.selection.max_size == 4


def test_an_unknown_headline_is_refused_with_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/reproduce.py", "--quick", "--only", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "unknown headline(s) nope" in proc.stderr
