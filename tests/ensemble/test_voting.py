"""Voting rules: plurality ties, majority abstention, soft and weighted voting, batched teams."""

from __future__ import annotations

import numpy as np
import pytest

from ensprune.ensemble import (
    VOTING,
    TeamVoter,
    majority_vote,
    plurality_vote,
    soft_vote,
    team_accuracy,
    vote,
    weighted_vote,
)
from ensprune.errors import PredictionError, SpecError, UnknownNameError


def _onehot(labels: list[list[int]], c: int = 3) -> np.ndarray:
    lab = np.asarray(labels)
    out = np.full((*lab.shape, c), 0.1 / (c - 1))
    np.put_along_axis(out, lab[..., None], 0.9, axis=-1)
    return out


def test_registry() -> None:
    assert VOTING.names() == ["majority", "plurality", "soft", "weighted"]
    assert VOTING.get("weighted").weighted and not VOTING.get("soft").weighted


def test_plurality_ties_go_to_lowest_class() -> None:
    proba = _onehot([[2, 1, 0, 2], [1, 1, 2, 0]])
    # sample 0: votes 2 and 1 -> tie -> 1; sample 1: both 1; sample 2: 0 vs 2 -> 0; sample 3: 2 vs 0 -> 0
    np.testing.assert_array_equal(plurality_vote(proba), [1, 1, 0, 0])


def test_majority_needs_more_than_half() -> None:
    proba = _onehot([[0, 1, 2, 0], [0, 2, 1, 1], [1, 2, 0, 2]])
    # sample 0: 0,0,1 -> 0; sample 1: 1,2,2 -> 2; sample 2: 2,1,0 -> abstain; sample 3: 0,1,2 -> abstain
    np.testing.assert_array_equal(majority_vote(proba), [0, 2, -1, -1])
    # an even split of 4 members is no majority
    even = _onehot([[0], [0], [1], [1]])
    np.testing.assert_array_equal(majority_vote(even), [-1])


def test_abstentions_count_as_errors() -> None:
    proba = _onehot([[0, 1], [1, 2], [2, 0]])
    y = np.array([0, 1])
    acc = team_accuracy(proba, y, np.ones((1, 3)), "majority")
    assert acc[0] == 0.0  # both samples abstained


def test_soft_and_weighted() -> None:
    # member 0 is sure of class 0, members 1 and 2 lean mildly to class 1
    proba = np.array([[[0.9, 0.1]], [[0.4, 0.6]], [[0.4, 0.6]]])
    assert soft_vote(proba)[0] == 0  # mean probability 0.567 for class 0
    assert plurality_vote(proba)[0] == 1  # two votes against one
    assert weighted_vote(proba, [0.1, 0.45, 0.45])[0] == 1
    assert weighted_vote(proba, [0.0, 1.0, 1.0])[0] == 1
    assert weighted_vote(proba, [1.0, 0.0, 0.0])[0] == 0


def test_soft_tie_goes_to_lowest_class() -> None:
    proba = np.array([[[0.7, 0.3]], [[0.3, 0.7]]])
    assert soft_vote(proba)[0] == 0


def test_batched_teams_match_single_team_votes() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=(6, 50))
    y = rng.integers(0, 4, 50)
    teams = (rng.random((20, 6)) < 0.5) | (np.arange(6) < 2)
    for rule in ("plurality", "majority", "soft"):
        batch = TeamVoter(proba, rule).predict(teams)
        for t in range(len(teams)):
            np.testing.assert_array_equal(batch[t], vote(proba[teams[t]], rule))
        acc = team_accuracy(proba, y, teams, rule)
        np.testing.assert_allclose(acc, (batch == y).mean(axis=1))
    w = rng.random((5, 6))
    batch = TeamVoter(proba, "weighted").predict(w)
    for t in range(5):
        np.testing.assert_array_equal(batch[t], weighted_vote(proba, w[t]))


def test_log_loss() -> None:
    proba = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.4, 0.6]]])
    y = np.array([0, 1])
    nll = TeamVoter(proba, "soft").log_loss(np.ones((1, 2)), y)[0]
    assert nll == pytest.approx(-(np.log(0.7) + np.log(0.7)) / 2)


def test_errors() -> None:
    proba = _onehot([[0, 1], [1, 1]])
    with pytest.raises(SpecError):
        vote(proba, "weighted")
    with pytest.raises(SpecError):
        vote(proba, "soft", weights=[1, 1])
    with pytest.raises(PredictionError):
        vote(proba, "weighted", weights=[1, 1, 1])
    with pytest.raises(PredictionError):
        vote(proba[0], "soft")
    with pytest.raises(PredictionError):
        vote(proba, "weighted", weights=[-1, 1])
    with pytest.raises(UnknownNameError):
        vote(proba, "borda")
