"""The joint selector says when one operating point alone beats every team that fits."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ensprune.ensemble import Menu
from ensprune.ensemble.selection.joint import JointSelector, best_single_point


def _menu() -> Menu:
    """3 members x 2 points on 200 samples: member 0's dense point (cost 10) is always right;
    every cheap point (cost 1) is right on 30 % of the samples only, and they agree."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    right = np.eye(4)[y]
    wrong = np.eye(4)[(y + 1) % 4]
    cheap = np.where((np.arange(200) < 60)[:, None], right, wrong)
    proba = np.stack([cheap, right, cheap, cheap * 0.9 + 0.025, cheap, cheap * 0.8 + 0.05])
    return Menu.from_arrays(
        proba, member=[0, 0, 1, 1, 2, 2], cost=[1, 10, 1, 10, 1, 10], y=y, cost_name="ms"
    )


def test_best_single_point_is_the_most_accurate_point_that_fits() -> None:
    menu = _menu()
    assert best_single_point(menu, 10.0) == (1, 1.0)
    assert best_single_point(menu, 5.0) == (0, 0.3)  # the cheap points tie: the first
    assert best_single_point(menu, 0.5) is None
    assert best_single_point(menu, None) == (1, 1.0)


def test_a_team_weaker_than_one_point_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    menu = _menu()
    selector = JointSelector(budget=10.0, search="exhaustive", seed=0)
    with caplog.at_level(logging.WARNING, logger="ensprune.ensemble"):
        choice = selector.select_menu(menu)
    assert choice.total_cost <= 10.0
    assert choice.selection.scores["best_single_point_val_accuracy"] == 1.0
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "beats the chosen team" in warning[0]


def test_no_warning_when_a_team_is_at_least_as_good(caplog: pytest.LogCaptureFixture) -> None:
    menu = _menu()
    selector = JointSelector(budget=30.0, search="exhaustive", seed=0)
    with caplog.at_level(logging.WARNING, logger="ensprune.ensemble"):
        choice = selector.select_menu(menu)
    assert choice.selection.val_accuracy >= 1.0 - 1e-12
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
