"""Large pools (joint menus of hundreds of points) score focal diversity from per-sample counts and
sum votes a team at a time in float32: the same answers as the exact paths of small pools."""

from __future__ import annotations

import numpy as np
import pytest

from ensprune.ensemble import focal, voting
from ensprune.ensemble.focal import FocalScorer
from ensprune.ensemble.voting import TeamVoter


def _pool(m: int, n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    proba = rng.dirichlet(np.ones(c), size=(m, n))
    proba[:, np.arange(n), y] += rng.uniform(0, 1.5, (m, 1))  # members of varied skill
    proba /= proba.sum(axis=2, keepdims=True)
    return proba, proba.argmax(axis=2), y


def _teams(m: int, t: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = np.zeros((t, m), dtype=bool)
    for row in masks:
        row[rng.choice(m, size=int(rng.integers(2, 7)), replace=False)] = True
    return masks


@pytest.mark.parametrize("n_negatives", [None, 40])
def test_count_path_gives_the_matrix_paths_focal_values(
    monkeypatch: pytest.MonkeyPatch, n_negatives: int | None
) -> None:
    _, labels, y = _pool(50, 300, 4, seed=2)
    teams = _teams(50, 40, 3)
    metrics = ("entropy", "kw", "gd")
    draws = {"n_negatives": n_negatives, "n_draws": 2 if n_negatives else 1}
    fast = FocalScorer(labels, y, metrics, **draws)  # 50 members: the count path
    assert fast._oracle is not None
    monkeypatch.setattr(focal, "_COUNT_PATH_MIN_MEMBERS", 10_000)
    slow = FocalScorer(labels, y, metrics, **draws)
    assert slow._oracle is None
    got, want = fast.per_focal(teams), slow.per_focal(teams)
    for name in metrics:
        np.testing.assert_array_equal(np.isnan(got[name]), ~teams)
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, equal_nan=True)


def test_pairwise_metrics_keep_the_matrix_path() -> None:
    _, labels, y = _pool(50, 200, 3, seed=4)
    assert FocalScorer(labels, y, ("entropy", "bd"))._oracle is None


@pytest.mark.parametrize("rule", ["plurality", "majority", "soft", "weighted"])
def test_large_pool_votes_equal_the_float64_product(
    monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    proba, _, _ = _pool(64, 400, 5, seed=5)
    teams = _teams(64, 30, 6).astype(np.float64)
    if rule == "weighted":
        teams *= np.random.default_rng(7).uniform(0.5, 2.0, teams.shape)
    large = TeamVoter(proba, rule)
    assert large._large
    monkeypatch.setattr(voting, "LARGE_POOL", 10_000)
    exact = TeamVoter(proba, rule)
    assert not exact._large
    got, want = large.predict(teams), exact.predict(teams)
    # label votes are integer counts (exact in float32); summed probabilities differ in the
    # 7th digit, which can flip only a near-tie
    assert (got != want).mean() <= (0.0 if rule in ("plurality", "majority") else 0.002)
    # dense teams (more than a quarter of the pool) take the float32 product instead
    full = np.ones((3, 64))
    np.testing.assert_array_equal(large.predict(full), exact.predict(full))
