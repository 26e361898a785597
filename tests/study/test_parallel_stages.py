"""Pool training, predictions and menus on the parallel backend: the same files as a serial run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ensprune.cli import main

from ._specs import spec_toml, write_spec

# Two runs of a small joint-mode pool (training, search, predictions, menus): ~60 s on 2 busy cores.
pytestmark = pytest.mark.slow

SPEC = spec_toml(
    study={"name": "stages", "seed": 6},
    search={"trials": 2},
    selection={
        "mode": "joint",
        "budget": "1x_member",
        "search": "ga",
        "metric": None,
        "population": 8,
        "generations": 4,
    },
)

PREDICTIONS = ["predictions/val.npz", "predictions/test.npz", "menus/val.npz", "menus/test.npz"]


def npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def dense_states(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        p.parent.name: torch.load(p, weights_only=True)["state_dict"]
        for p in sorted(run_dir.glob("members/*/dense.pt"))
    }


def run(spec: Path, run_dir: Path, *extra: str) -> None:
    assert main(["run", str(spec), "--run-dir", str(run_dir), "--quiet", *extra]) == 0


def test_two_workers_train_and_predict_what_one_does(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SPEC)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    run(spec, serial)
    run(spec, parallel, "--workers", "2")
    a, b = dense_states(serial), dense_states(parallel)
    assert sorted(a) == sorted(b) == ["model_a-s0", "model_a-s1"]
    for member in a:
        for name, tensor in a[member].items():
            assert torch.equal(tensor, b[member][name]), (member, name)
    for path in PREDICTIONS:
        x, y = npz_arrays(serial / path), npz_arrays(parallel / path)
        assert sorted(x) == sorted(y)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"{path}:{key}")
    assert json.loads((parallel / "run.json").read_text())["threads"] == {
        "main": 1,
        "worker": 1,
        "workers": 2,
    }
