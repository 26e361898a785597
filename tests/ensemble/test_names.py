"""Names in any case: every ensemble entry point gives the lower-case result, keyed by the registered name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ensprune.cli import main
from ensprune.ensemble import (
    METRICS,
    SELECTORS,
    VOTING,
    FocalScorer,
    PredictionSet,
    PrunedEnsembleClassifier,
    TeamEvaluator,
    TeamVoter,
    diversity,
    focal_diversity,
    team_accuracy,
    vote,
)
from ensprune.ensemble.selection import ObjectiveSelector
from ensprune.errors import SpecError, UnknownNameError

OBJECTIVE_SELECTORS = [
    n for n in SELECTORS.names() if issubclass(SELECTORS.get(n), ObjectiveSelector)
]
UNWEIGHTED_RULES = [n for n in VOTING.names() if not VOTING.get(n).weighted]


@pytest.mark.parametrize("metric", METRICS.names())
def test_metric_functions_take_any_case(metric: str, pool8: PredictionSet) -> None:
    team = [0, 2, 5]
    for spelling in (metric.upper(), metric.title(), f" {metric.upper()} "):
        assert diversity(spelling, pool8.labels, pool8.y) == diversity(
            metric, pool8.labels, pool8.y
        )
        assert focal_diversity(spelling, pool8.labels, pool8.y, team) == focal_diversity(
            metric, pool8.labels, pool8.y, team
        )
    upper = FocalScorer(pool8.labels, pool8.y, metrics=(metric.upper(),))
    lower = FocalScorer(pool8.labels, pool8.y, metrics=(metric,))
    assert list(upper.values([team])) == [metric]  # keyed by the registered name
    np.testing.assert_array_equal(upper.values([team])[metric], lower.values([team])[metric])


def test_evaluator_keys_results_by_registered_names(pool8: PredictionSet) -> None:
    masks = np.zeros((2, pool8.n_members), dtype=bool)
    masks[0, [0, 1, 2]] = masks[1, [3, 4]] = True
    upper = TeamEvaluator(pool8, voting="PLURALITY", metrics=("GD", "Kw")).evaluate(masks)
    lower = TeamEvaluator(pool8, voting="plurality", metrics=("gd", "kw")).evaluate(masks)
    assert list(upper.focal) == ["gd", "kw"]
    np.testing.assert_array_equal(upper.fitness, lower.fitness)
    assert list(upper.frame().columns) == list(lower.frame().columns)


@pytest.mark.parametrize("name", OBJECTIVE_SELECTORS)
def test_objective_selectors_take_upper_case_metrics_and_voting(
    name: str, pool8: PredictionSet
) -> None:
    lower = SELECTORS.get(name)(metrics=("gd", "ck"), voting="plurality", max_size=4).select(pool8)
    upper = SELECTORS.get(name.upper())(
        metrics=("GD", "CK"), voting="PLURALITY", max_size=4
    ).select(pool8)
    assert upper.members == lower.members
    assert upper.scores == lower.scores  # same keys (focal_gd, ...), same values
    assert upper.voting == "plurality"
    assert upper.params == lower.params
    comma = SELECTORS.get(name)(metrics="GD, CK", voting="Plurality", max_size=4).select(pool8)
    assert comma.members == lower.members and comma.params == lower.params


@pytest.mark.parametrize("name", SELECTORS.names())
def test_every_selector_takes_upper_case_voting(name: str, pool8: PredictionSet) -> None:
    rule = SELECTORS.get(name).voting  # the selector's default rule
    lower = SELECTORS.get(name)(voting=rule, max_size=3, seed=2).select(pool8)
    upper = SELECTORS.get(name)(voting=rule.upper(), max_size=3, seed=2).select(pool8)
    assert upper.members == lower.members
    assert upper.voting == lower.voting == rule
    assert upper.weights == lower.weights


def test_repeated_metric_in_other_case_is_refused(pool8: PredictionSet) -> None:
    with pytest.raises(SpecError, match="listed twice"):
        SELECTORS.get("hq")(metrics=("gd", "GD"))
    with pytest.raises(UnknownNameError, match="valid metric names"):
        SELECTORS.get("hq")(metrics=("gdd",))


@pytest.mark.parametrize("rule", UNWEIGHTED_RULES)
def test_voting_functions_take_any_case(rule: str, pool8: PredictionSet) -> None:
    team = np.zeros((1, pool8.n_members))
    team[0, [1, 3, 6]] = 1
    np.testing.assert_array_equal(
        vote(pool8.proba[[1, 3, 6]], rule.upper()), vote(pool8.proba[[1, 3, 6]], rule)
    )
    np.testing.assert_array_equal(
        team_accuracy(pool8.proba, pool8.y, team, rule.upper()),
        team_accuracy(pool8.proba, pool8.y, team, rule),
    )
    assert TeamVoter(pool8.proba, rule.title()).rule.name == rule
    weights = np.array([0.2, 0.3, 0.5])
    np.testing.assert_array_equal(
        vote(pool8.proba[[1, 3, 6]], "WEIGHTED", weights),
        vote(pool8.proba[[1, 3, 6]], "weighted", weights),
    )


def test_estimator_takes_upper_case_names() -> None:
    from sklearn.datasets import make_classification

    x, y = make_classification(300, 8, n_informative=5, n_classes=3, random_state=0)
    params = {"max_size": 3}
    upper = PrunedEnsembleClassifier(
        selector="HQ",
        voting="MAJORITY",
        selector_params={**params, "metrics": ("GD",)},
        random_state=0,
    ).fit(x, y)
    lower = PrunedEnsembleClassifier(
        selector="hq",
        voting="majority",
        selector_params={**params, "metrics": ("gd",)},
        random_state=0,
    ).fit(x, y)
    assert upper.members_ == lower.members_
    assert upper.selection_.voting == "majority"
    np.testing.assert_array_equal(upper.predict(x), lower.predict(x))


@pytest.mark.parametrize("metric", ["GD", "CK,BD", "Kw, gD"])
def test_select_cli_takes_upper_case_metrics(
    metric: str, tmp_path: Path, pool8: PredictionSet, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pool8.save(tmp_path / "val.npz")
    outputs = []
    for spelling in (metric, metric.lower()):
        rc = main(
            [
                "select",
                str(path),
                "--selector",
                "hq",
                "--metric",
                spelling,
                "--max-size",
                "4",
                "--json",
                "--quiet",
            ]
        )
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        outputs.append(json.loads(captured.out))
    upper, lower = outputs
    assert upper == lower  # members, scores keyed focal_gd ..., params: all canonical
    assert all(m == m.lower() for m in upper["params"]["metrics"])


def test_select_cli_normalize_modes(
    tmp_path: Path, pool8: PredictionSet, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pool8.save(tmp_path / "val.npz")
    for mode in ("none", "candidates", "all"):
        argv = ["select", str(path), "--normalize", mode, "--max-size", "3", "--json", "--quiet"]
        assert main(argv) == 0
        out = json.loads(capsys.readouterr().out)
        expected = SELECTORS.get("hq")(normalize=mode, max_size=3).select(pool8)
        assert out["members"] == expected.members and out["params"]["normalize"] == mode
