"""Optuna callbacks on every member study: from run_study(callbacks=...) and [study] callbacks."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from ensprune.errors import SpecError
from ensprune.study import StudySpec, run_study

TRACKER = """
CALLS = []


def factory():
    def callback(study, trial):
        CALLS.append((study.study_name, trial.number))

    return callback


NOT_A_FACTORY = 3
"""

SPEC = {
    "study": {"name": "cb", "seed": 0},
    "data": {"dataset": "digits", "val_fraction": 0.2, "test_fraction": 0.25, "max_train": 300},
    "pool": {"architectures": ["model_a"], "seeds": [0, 1], "epochs": 2, "batch_size": 64},
    "search": {"methods": ["magnitude"], "sparsity": [0.3, 0.8], "trials": 2, "finetune_epochs": 1},
    "selection": {"selector": "greedy", "metric": "gd", "max_size": 2},
}


@pytest.fixture
def tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"ensprune_test_tracker_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(TRACKER)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _spec(**study: object) -> StudySpec:
    raw = json.loads(json.dumps(SPEC))
    raw["study"].update(study)
    return StudySpec.from_dict(raw)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("mod:factory", "must be a list"),
        (["no_colon"], "not an import path"),
        (["ensprune_no_such_module_xyz:f"], "cannot import"),
        (["json:no_such_name"], "has no 'no_such_name'"),
    ],
)
def test_bad_callbacks_fail_when_the_spec_loads(value: object, needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        _spec(callbacks=value)


def test_not_callable_is_refused(tracker: str) -> None:
    with pytest.raises(SpecError, match="not callable"):
        _spec(callbacks=[f"{tracker}:NOT_A_FACTORY"])


@pytest.mark.slow
def test_spec_and_python_callbacks_see_every_trial(
    tracker: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ensprune")
    seen: list[tuple[str, int]] = []
    spec = _spec(callbacks=[f"{tracker}:factory"])
    run_study(
        spec,
        run_dir=tmp_path / "run",
        progress=False,
        callbacks=[lambda study, trial: seen.append((study.study_name, trial.number))],
    )
    from_spec = sys.modules[tracker].CALLS
    assert sorted(seen) == sorted(from_spec)
    assert len(seen) == 2 * 2  # 2 members x 2 trials
    assert len({name for name, _ in seen}) == 2  # every member study
    # the per-trial lines count trials and estimate the time left
    lines = [r.getMessage() for r in caplog.records if "] trial " in r.getMessage()]
    assert len(lines) == 4
    assert any("(1/2, ~" in line for line in lines)
    assert any("(2/2, ~0s left)" in line for line in lines)
