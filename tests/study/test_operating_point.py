"""The Pareto front and the documented operating-point rule."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from ensprune.study.search import choose_operating_point, pareto_front


def trials(points: list[tuple[float, float]]) -> list[optuna.trial.FrozenTrial]:
    out = []
    for i, (acc, sp) in enumerate(points):
        t = create_trial(values=[acc, sp], state=TrialState.COMPLETE)
        t.number = i
        out.append(t)
    failed = create_trial(state=TrialState.FAIL)
    failed.number = len(points)
    return [*out, failed]


def test_pareto_front_drops_dominated_and_failed_trials() -> None:
    ts = trials([(0.95, 0.5), (0.94, 0.9), (0.93, 0.6), (0.96, 0.3)])
    assert [t.number for t in pareto_front(ts)] == [0, 1, 3]


def test_rule_picks_sparsest_trial_within_tolerance() -> None:
    ts = trials([(0.95, 0.5), (0.94, 0.9), (0.90, 0.97), (0.96, 0.3)])
    assert choose_operating_point(ts, dense_val_accuracy=0.95, tolerance=0.01).number == 1
    assert choose_operating_point(ts, dense_val_accuracy=0.95, tolerance=0.06).number == 2
    assert choose_operating_point(ts, dense_val_accuracy=0.95, tolerance=0.0).number == 0


def test_rule_falls_back_to_most_accurate_when_none_qualifies() -> None:
    ts = trials([(0.80, 0.5), (0.70, 0.9)])
    assert choose_operating_point(ts, dense_val_accuracy=0.99, tolerance=0.01).number == 0
