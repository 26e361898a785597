"""MLflow tracking of every member study through optuna-integration's callback, on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensprune.study import StudySpec, run_study

mlflow = pytest.importorskip(
    "mlflow", reason="the tracking extra: pip install 'ensprune[tracking]'"
)
pytest.importorskip("optuna_integration")

TRACKING = """
from optuna_integration.mlflow import MLflowCallback

URI = {uri!r}


def mlflow_callback():
    return MLflowCallback(tracking_uri=URI, metric_name=["val_accuracy", "sparsity"])
"""

SPEC = {
    "study": {"name": "tracked", "seed": 0},
    "data": {"dataset": "digits", "val_fraction": 0.2, "test_fraction": 0.25, "max_train": 300},
    "pool": {"architectures": ["model_a"], "seeds": [0, 1], "epochs": 2, "batch_size": 64},
    "search": {"methods": ["magnitude"], "sparsity": [0.3, 0.8], "trials": 2, "finetune_epochs": 1},
    "selection": {"selector": "greedy", "max_size": 2},
}


# optuna-integration deprecates MLflowCallback from 4.9 (to move to OptunaHub), removal in 6.0
@pytest.mark.filterwarnings("ignore:MLflowCallback has been deprecated:FutureWarning")
@pytest.mark.slow
def test_every_trial_of_every_member_study_is_an_mlflow_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    module = f"ensprune_test_tracking_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text(TRACKING.format(uri=uri))
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = json.loads(json.dumps(SPEC))
    raw["study"]["callbacks"] = [f"{module}:mlflow_callback"]
    run_dir = tmp_path / "run"
    run_study(StudySpec.from_dict(raw), run_dir=run_dir, progress=False)

    trials = pd.read_csv(run_dir / "trials.csv")
    mlflow.set_tracking_uri(uri)
    for member in ("model_a-s0", "model_a-s1"):
        runs = mlflow.search_runs(experiment_names=[f"tracked.{member}"])
        ours = trials[trials.member == member]
        assert len(runs) == len(ours) == 2
        logged = sorted(zip(runs["metrics.val_accuracy"], runs["metrics.sparsity"], strict=True))
        expected = sorted(zip(ours.val_accuracy, ours.sparsity, strict=True))
        assert np.allclose(logged, expected)
        assert set(runs["params.method"]) == {"magnitude"}
