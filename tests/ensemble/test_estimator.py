"""PrunedEnsembleClassifier: estimator checks, prefit pools, nested params, weights, selector choice."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from ensprune.ensemble import GreedySelector, PrunedEnsembleClassifier


@parametrize_with_checks(
    [PrunedEnsembleClassifier(random_state=0)],
    expected_failed_checks=lambda est: {
        # an integer weight k is not k copies of a sample: the selectors score the validation
        # split unweighted, and the seeded split differs once samples are repeated
        "check_sample_weight_equivalence_on_dense_data": "selection counts validation samples",
    },
)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = make_classification(
        n_samples=600, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    return x[:300], y[:300], x[300:], y[300:]


def test_prefit_pool_selects_on_validation(data) -> None:
    x_fit, y_fit, x_val, y_val = data
    pool = [
        DecisionTreeClassifier(max_depth=d, random_state=0).fit(x_fit, y_fit) for d in (1, 3, 6)
    ]
    pool += [LogisticRegression(max_iter=500).fit(x_fit, y_fit), GaussianNB().fit(x_fit, y_fit)]
    clf = PrunedEnsembleClassifier(pool, selector="exhaustive", prefit=True).fit(x_val, y_val)
    assert clf.estimators_[0] is pool[0]  # used as given, not refitted
    assert len(clf.members_) >= 2
    assert clf.selection_.val_accuracy == pytest.approx(clf.score(x_val, y_val))
    proba = clf.predict_proba(x_val)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_string_labels_and_selector_instance(data) -> None:
    x_fit, y_fit, _, _ = data
    names = np.array(["cat", "dog", "eel"])[y_fit]
    clf = PrunedEnsembleClassifier(selector=GreedySelector(voting="plurality"), random_state=1)
    clf.fit(x_fit, names)
    assert set(clf.predict(x_fit)) <= {"cat", "dog", "eel"}
    assert clf.selection_.voting == "plurality"
    shares = clf.predict_proba(x_fit[:5]) * len(clf.members_)
    np.testing.assert_allclose(shares, np.round(shares))  # vote shares


@pytest.mark.parametrize("selector", ["caruana", "topk"])
def test_selector_by_name(selector: str, data) -> None:
    x_fit, y_fit, x_val, y_val = data
    clf = PrunedEnsembleClassifier(selector=selector, random_state=0).fit(x_fit, y_fit)
    assert clf.selection_.selector == selector
    assert clf.score(x_val, y_val) > 0.5


def test_majority_abstention_falls_back_to_plurality(data) -> None:
    x_fit, y_fit, x_val, _ = data
    clf = PrunedEnsembleClassifier(voting="majority", random_state=0).fit(x_fit, y_fit)
    assert clf.selection_.voting == "majority"
    assert set(clf.predict(x_val)) <= set(clf.classes_)


def test_pool_too_small(data) -> None:
    x_fit, y_fit, _, _ = data
    with pytest.raises(ValueError, match="at least 2"):
        PrunedEnsembleClassifier([GaussianNB()]).fit(x_fit, y_fit)


def test_nested_params_reach_members_and_selector(data) -> None:
    clf = PrunedEnsembleClassifier(
        [DecisionTreeClassifier(max_depth=1), GaussianNB(), LogisticRegression(max_iter=300)],
        selector="hq",
        random_state=0,
    )
    params = clf.get_params()
    assert params["estimators__0__max_depth"] == 1
    assert isinstance(params["estimators__1"], GaussianNB)
    clf.set_params(estimators__0__max_depth=5, selector__beta=0.3, n_jobs=2)
    assert clf.estimators[0].max_depth == 5
    assert clf.get_params()["selector__beta"] == 0.3
    clf.fit(*data[:2])
    assert clf.selection_.params["beta"] == 0.3
    clf.set_params(estimators__1=DecisionTreeClassifier(max_depth=3))
    assert clf.get_params()["estimators__1__max_depth"] == 3
    with pytest.raises(ValueError, match="estimators__<i>"):
        clf.set_params(estimators__7__max_depth=2)
    with pytest.raises(ValueError, match="selector__nonsense"):
        clf.set_params(selector__nonsense=1)


def test_selector_instance_params_are_copied(data) -> None:
    shared = GreedySelector(voting="soft")
    clf = PrunedEnsembleClassifier(selector=shared, random_state=0)
    assert clf.get_params()["selector__voting"] == "soft"
    clf.set_params(selector__max_size=2)
    assert shared.max_size is None  # the caller's instance is left alone
    assert clf.fit(*data[:2]).selection_.size <= 2


def test_grid_search_over_nested_params(data) -> None:
    x, y, x_test, y_test = data
    clf = PrunedEnsembleClassifier(
        [DecisionTreeClassifier(max_depth=1, random_state=0), GaussianNB()], random_state=0
    )
    grid = GridSearchCV(clf, {"estimators__0__max_depth": [1, 6], "selector__beta": [0.5]}, cv=3)
    grid.fit(x, y)
    assert grid.best_params_["estimators__0__max_depth"] in (1, 6)
    assert (
        grid.best_estimator_.estimators_[0].max_depth
        == grid.best_params_["estimators__0__max_depth"]
    )
    assert grid.score(x_test, y_test) > 0.5


def _fitted_pool(x: np.ndarray, y: np.ndarray) -> list:
    return [DecisionTreeClassifier(max_depth=d, random_state=0).fit(x, y) for d in (1, 3, 6)] + [
        LogisticRegression(max_iter=500).fit(x, y)
    ]


def test_prefit_members_survive_clone_and_cross_validation(data) -> None:
    x_fit, y_fit, x_val, y_val = data
    pool = _fitted_pool(x_fit, y_fit)
    clf = PrunedEnsembleClassifier(pool, selector="exhaustive", prefit=True)
    copy = clone(clf)
    assert copy.estimators is not pool and copy.estimators[0] is pool[0]
    scores = cross_val_score(clf, x_val, y_val, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.5
    # the members were only read: each still predicts as it was fitted
    np.testing.assert_array_equal(
        pool[2].predict(x_val), clone(pool[2]).fit(x_fit, y_fit).predict(x_val)
    )


def test_frozen_members_with_prefit_false(data) -> None:
    x_fit, y_fit, x_val, y_val = data
    pool = [FrozenEstimator(est) for est in _fitted_pool(x_fit, y_fit)]
    clf = PrunedEnsembleClassifier(pool, selector="exhaustive", random_state=0)
    scores = cross_val_score(clf, x_val, y_val, cv=3)
    assert scores.min() > 0.5
    assert clone(pool[0]) is pool[0]


def test_prefit_refuses_unfitted_members(data) -> None:
    x_fit, y_fit, _, _ = data
    pool = [DecisionTreeClassifier(), GaussianNB().fit(x_fit, y_fit)]
    with pytest.raises(NotFittedError, match=r"member 0 .*FrozenEstimator"):
        PrunedEnsembleClassifier(pool, prefit=True).fit(x_fit, y_fit)


@pytest.mark.filterwarnings(
    "ignore:divide by zero:RuntimeWarning"
)  # GaussianNB, class 2 weightless
def test_sample_weight_reaches_members(data) -> None:
    x, y, _, _ = data
    # zero weight on class 2: no member can learn it, so the team never predicts it
    weights = np.where(y == 2, 0.0, 1.0)
    pool = [DecisionTreeClassifier(max_depth=4, random_state=0), GaussianNB()]
    clf = PrunedEnsembleClassifier(pool, selector="exhaustive", random_state=0)
    clf.fit(x, y, sample_weight=weights)
    assert 2 not in set(clf.predict(x))
    assert 2 in set(PrunedEnsembleClassifier(pool, random_state=0).fit(x, y).predict(x))
    scores = cross_val_score(clf, x, y, cv=3, params={"sample_weight": np.ones_like(y, float)})
    assert scores.shape == (3,)


def test_sample_weight_refusals(data) -> None:
    x, y, _, _ = data
    pool = [DecisionTreeClassifier(), KNeighborsClassifier()]
    with pytest.raises(ValueError, match=r"member\(s\) 1 \(KNeighborsClassifier\)"):
        PrunedEnsembleClassifier(pool).fit(x, y, sample_weight=np.ones(len(y)))
    fitted = [est.fit(x, y) for est in pool]
    with pytest.raises(ValueError, match="no effect with prefit=True"):
        PrunedEnsembleClassifier(fitted, prefit=True).fit(x, y, sample_weight=np.ones(len(y)))


def test_n_jobs_gives_the_same_team(data) -> None:
    x, y, _, _ = data
    one = PrunedEnsembleClassifier(selector="greedy", random_state=0, n_jobs=1).fit(x, y)
    two = PrunedEnsembleClassifier(selector="greedy", random_state=0, n_jobs=2).fit(x, y)
    assert one.members_ == two.members_
    np.testing.assert_array_equal(one.predict(x), two.predict(x))
