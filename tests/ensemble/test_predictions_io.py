"""PredictionSet.load refuses what is not a prediction file with a PredictionError, never a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensprune.ensemble.predictions import PredictionSet
from ensprune.errors import PredictionError


def _proba(members: int = 3, samples: int = 8, classes: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.dirichlet(np.ones(classes), size=(members, samples))


def test_round_trip_keeps_cost(tmp_path: Path) -> None:
    preds = PredictionSet(_proba(), np.arange(8) % 3, cost=np.array([1.0, 2.0, 3.0]))
    loaded = PredictionSet.load(preds.save(tmp_path / "p.npz"))
    assert np.array_equal(loaded.cost, [1.0, 2.0, 3.0])
    assert np.allclose(loaded.proba, preds.proba)


def test_an_npy_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.npy"
    np.save(path, _proba())
    with pytest.raises(PredictionError, match=r"single array, not an \.npz"):
        PredictionSet.load(path)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PredictionError, match="is a directory"):
        PredictionSet.load(tmp_path)


@pytest.mark.parametrize(
    "cost", [np.array(["a", "b", "c"]), np.array([b"1", b"x", b"3"])], ids=["str", "bytes"]
)
def test_a_cost_that_is_not_numbers_is_refused(tmp_path: Path, cost: np.ndarray) -> None:
    path = tmp_path / "p.npz"
    np.savez(path, proba=_proba(), y=np.arange(8) % 3, cost=cost)
    with pytest.raises(PredictionError, match="cost must be 3 finite non-negative numbers"):
        PredictionSet.load(path)
