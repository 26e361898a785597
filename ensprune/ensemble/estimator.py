"""A scikit-learn classifier that selects a sub-ensemble of its estimators with any selector.

Two ways to use it:

* ``prefit=True``: ``estimators`` are already fitted; ``fit(X, y)`` only scores them on (X, y),
  which should be a validation split, and selects the team.
* ``prefit=False`` (default): ``fit`` splits (X, y) into a training part (``1 - val_size``)
  and a validation part (stratified, seeded by ``random_state``), fits a clone of every estimator
  on the training part and selects on the validation part. Data sets under 20 samples are not
  split (members are fitted and selected on all of it).

Prediction uses the selected members only, combined with the selection's voting rule.
``predict_proba`` is the (weighted) mean of the members' probabilities for ``soft`` and
``weighted`` voting and the share of votes for ``plurality`` and ``majority``; ``predict`` follows
the rule, except that a ``majority`` abstention falls back to the plurality winner (scikit-learn
needs a label for every sample).

Example:
    >>> clf = PrunedEnsembleClassifier(
    ...     [DecisionTreeClassifier(max_depth=d) for d in (2, 4, 8)] + [LogisticRegression()],
    ...     selector="greedy", random_state=0,
    ... ).fit(X, y)
    >>> clf.members_, clf.selection_.val_accuracy, clf.predict(X_test)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection import SELECTORS, Selection, Selector
from ensprune.ensemble.voting import VOTING, TeamVoter

_MIN_SPLIT = 20


def default_pool(random_state: int | None = None) -> list[BaseEstimator]:
    """A small, fast, varied pool used when no estimators are given."""
    seed = 0 if random_state is None else int(random_state)
    return [
        DecisionTreeClassifier(max_depth=2, random_state=seed),
        DecisionTreeClassifier(max_depth=4, random_state=seed + 1),
        DecisionTreeClassifier(max_depth=None, random_state=seed + 2),
        LogisticRegression(max_iter=500),
        GaussianNB(),
    ]


class PrunedEnsembleClassifier(ClassifierMixin, BaseEstimator):
    """Select a sub-ensemble of scikit-learn classifiers on validation data and vote with it.

    Args:
        estimators: the pool (at least 2); None uses :func:`default_pool`.
        selector: a registered selector name (``hq``, ``ga``, ``greedy``, ...) or a
            :class:`~ensprune.ensemble.selection.Selector` instance.
        selector_params: settings passed to the selector when ``selector`` is a name.
        voting: voting rule when ``selector`` is a name (None: the selector's default).
        prefit: the estimators are fitted already (see the module docstring).
        val_size: share of the data held out for selection when ``prefit=False``.
        random_state: seeds the split, the default pool and (when given by name) the selector.

    Attributes:
        classes_: the class labels.
        estimators_: the fitted pool.
        selection_: the :class:`~ensprune.ensemble.selection.Selection`.
        members_: indices of the selected estimators in ``estimators_``.
    """

    def __init__(
        self,
        estimators: Sequence[BaseEstimator] | None = None,
        selector: str | Selector = "hq",
        selector_params: dict[str, Any] | None = None,
        voting: str | None = None,
        prefit: bool = False,
        val_size: float = 0.3,
        random_state: int | None = None,
    ) -> None:
        self.estimators = estimators
        self.selector = selector
        self.selector_params = selector_params
        self.voting = voting
        self.prefit = prefit
        self.val_size = val_size
        self.random_state = random_state

    def _make_selector(self) -> Selector:
        if isinstance(self.selector, Selector):
            return self.selector
        params = dict(self.selector_params or {})
        if self.voting is not None:
            params.setdefault("voting", self.voting)
        if self.random_state is not None:
            params.setdefault("seed", int(self.random_state))
        return SELECTORS.get(self.selector)(**params)

    def fit(self, X: Any, y: Any) -> PrunedEnsembleClassifier:
        """Fit (unless prefit) the pool, score it on validation data and select the team."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        pool = list(default_pool(self.random_state) if self.estimators is None else self.estimators)
        if self.prefit:
            # a fitted member may know classes that this validation split lacks
            self.classes_ = np.unique(np.concatenate([self.classes_, *(e.classes_ for e in pool)]))
        y_enc = np.searchsorted(self.classes_, y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"PrunedEnsembleClassifier needs samples of at least 2 classes; got 1 class ({self.classes_[0]!r})"
            )
        if len(pool) < 2:
            raise ValueError(f"the pool needs at least 2 estimators; got {len(pool)}")
        if self.prefit:
            self.estimators_ = pool
            x_val, y_val = X, y_enc
        else:
            x_fit, x_val, y_fit, y_val = self._split(X, y_enc)
            self.estimators_ = [clone(est).fit(x_fit, self.classes_[y_fit]) for est in pool]
        preds = PredictionSet(self._member_proba(x_val), y_val)
        self.selection_: Selection = self._make_selector().select(preds)
        self.members_ = list(self.selection_.members)
        return self

    def _split(
        self, X: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if len(y) < _MIN_SPLIT:
            return X, X, y, y
        counts = np.bincount(y)
        stratify = y if counts[counts > 0].min() >= 2 else None
        parts = train_test_split(
            X, y, test_size=self.val_size, random_state=self.random_state, stratify=stratify
        )
        return parts[0], parts[1], parts[2], parts[3]

    def _member_proba(self, X: np.ndarray, members: Sequence[int] | None = None) -> np.ndarray:
        """(M, N, C) probabilities of the (given) members, aligned with ``classes_``."""
        idx = range(len(self.estimators_)) if members is None else members
        out = np.zeros((len(idx), X.shape[0], len(self.classes_)))
        for r, i in enumerate(idx):
            est = self.estimators_[i]
            cols = np.searchsorted(self.classes_, est.classes_)
            if hasattr(est, "predict_proba"):
                out[r][:, cols] = est.predict_proba(X)
            else:
                pred = np.searchsorted(self.classes_, est.predict(X))
                out[r][np.arange(X.shape[0]), pred] = 1.0
        return out

    def _totals(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "selection_")
        X = validate_data(self, X, reset=False)
        proba = self._member_proba(X, self.members_)
        sel = self.selection_
        if VOTING.get(sel.voting).uses == "labels":
            hot = np.zeros_like(proba)
            np.put_along_axis(hot, proba.argmax(axis=2)[:, :, None], 1.0, axis=2)
            proba = hot
        w = np.ones(len(self.members_)) if sel.weights is None else np.asarray(sel.weights)
        return np.asarray(np.tensordot(w / w.sum(), proba, axes=1))

    def predict_proba(self, X: Any) -> np.ndarray:
        """(N, C) class probabilities (soft/weighted) or vote shares (plurality/majority)."""
        return self._totals(X)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels under the selection's voting rule."""
        check_is_fitted(self, "selection_")
        X = validate_data(self, X, reset=False)
        proba = self._member_proba(X, self.members_)
        sel = self.selection_
        weights = None if sel.weights is None else np.asarray(sel.weights)[None, :]
        rule = sel.voting
        team = weights if weights is not None else np.ones((1, len(self.members_)))
        labels = TeamVoter(proba, rule).predict(team)[0]
        if rule == "majority":
            fallback = TeamVoter(proba, "plurality").predict(np.ones((1, len(self.members_))))[0]
            labels = np.where(labels < 0, fallback, labels)
        return np.asarray(self.classes_[labels])
