"""PrunedEnsembleClassifier: scikit-learn's estimator checks, prefit pools, selector choice."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from ensprune.ensemble import GreedySelector, PrunedEnsembleClassifier


@parametrize_with_checks([PrunedEnsembleClassifier(random_state=0)])
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
