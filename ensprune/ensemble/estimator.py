"""A scikit-learn classifier that selects a sub-ensemble of its estimators with any selector.

Two ways to use it:

* ``prefit=True``: ``estimators`` are already fitted; ``fit(X, y)`` only scores them on (X, y),
  which should be a validation split, and selects the team.
* ``prefit=False`` (default): ``fit`` splits (X, y) into a training part (``1 - val_size``)
  and a validation part (stratified, seeded by ``random_state``), fits a clone of every estimator
  on the training part and selects on the validation part. Data sets under 20 samples are not
  split (members are fitted and selected on all of it).

``prefit=True`` pools survive :func:`sklearn.base.clone`: a clone keeps the same fitted members
(they are only read, never refitted), so a prefit classifier works inside ``cross_val_score`` and
``GridSearchCV``. Members can also be wrapped in scikit-learn's
:class:`~sklearn.frozen.FrozenEstimator`, which makes ``clone`` and ``fit`` leave a fitted model
untouched anywhere (e.g. a pool mixing frozen and trainable members with ``prefit=False``).

Nested parameters follow scikit-learn's ``<component>__<parameter>`` syntax: ``estimators__0``
(replace the first member), ``estimators__0__max_depth`` (a member's own parameter) and
``selector__beta`` (a selector setting: stored in ``selector_params`` when ``selector`` is a name,
applied to a copy of the instance when it is a :class:`Selector`), so grid searches can tune the
pool and the selector together.

``sample_weight`` is split with the data and passed to every member's ``fit`` (members that do not
accept it are refused by name). The selectors count validation samples unweighted: their
objectives (accuracy, focal diversity) are per-sample counts. ``n_jobs`` fits the members in
parallel (joblib) and is passed to a selector given by name.

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
    >>> GridSearchCV(clf, {"estimators__0__max_depth": [1, 2], "selector__beta": [0.5, 1.0]})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    has_fit_parameter,
    validate_data,
)

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
        n_jobs: joblib workers for fitting the members; also the selector's ``n_jobs`` when
            ``selector`` is a name (None: joblib's default, 1 unless a backend context says more).

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
        n_jobs: int | None = None,
    ) -> None:
        self.estimators = estimators
        self.selector = selector
        self.selector_params = selector_params
        self.voting = voting
        self.prefit = prefit
        self.val_size = val_size
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- scikit-learn parameter protocol -------------------------------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters; with ``deep``, also the members' and the selector's.

        Deep keys: ``estimators__<i>`` (the i-th member), ``estimators__<i>__<param>`` (its own
        parameters) and ``selector__<setting>`` (the settings of a :class:`Selector` instance, or
        the entries of ``selector_params`` when ``selector`` is a name).
        """
        out = super().get_params(deep=False)
        if not deep:
            return out
        # values are only checked at fit, so anything may be stored here: read what is readable
        pool = self.estimators if isinstance(self.estimators, (list, tuple)) else ()
        for i, est in enumerate(pool):
            out[f"estimators__{i}"] = est
            if hasattr(est, "get_params") and not isinstance(est, type):
                for key, value in est.get_params(deep=True).items():
                    out[f"estimators__{i}__{key}"] = value
        for key, value in self._selector_settings().items():
            out[f"selector__{key}"] = value
        return out

    def set_params(self, **params: Any) -> PrunedEnsembleClassifier:
        """Set parameters, including nested ``estimators__<i>[__<param>]`` and ``selector__<setting>``."""
        direct: dict[str, Any] = {}
        nested: list[tuple[str, str, str, Any]] = []  # (key, member index, its param, value)
        selector: dict[str, Any] = {}
        for key, value in params.items():
            head, sep, rest = key.partition("__")
            if sep and head == "estimators":
                index, _, sub = rest.partition("__")
                nested.append((key, index, sub, value))
            elif sep and head == "selector":
                selector[rest] = value
            else:
                direct[key] = value
        super().set_params(**direct)  # first: a new pool or selector takes the nested keys
        if nested:
            pool = list(self.estimators) if isinstance(self.estimators, (list, tuple)) else []
            for key, index, sub, value in nested:
                i = self._member_index(index, key)
                if sub:
                    pool[i].set_params(**{sub: value})
                else:
                    pool[i] = value
            self.estimators = pool
        if selector:
            self._set_selector_settings(selector)
        return self

    def _member_index(self, index: str, key: str) -> int:
        size = len(self.estimators) if isinstance(self.estimators, (list, tuple)) else 0
        if not index.isdigit() or int(index) >= size:
            raise ValueError(
                f"Invalid parameter {key!r} for {type(self).__name__}: members are addressed as "
                f"estimators__<i> with 0 <= i < {size}"
            )
        return int(index)

    def _selector_fields(self) -> list[str]:
        kind = type(self.selector) if isinstance(self.selector, Selector) else None
        if kind is None and isinstance(self.selector, str) and self.selector in SELECTORS:
            kind = SELECTORS.get(self.selector)
        return [] if kind is None else [f.name for f in dataclasses.fields(kind)]

    def _selector_settings(self) -> dict[str, Any]:
        if isinstance(self.selector, Selector):
            return self.selector.params()
        return dict(self.selector_params) if isinstance(self.selector_params, dict) else {}

    def _set_selector_settings(self, settings: dict[str, Any]) -> None:
        known = self._selector_fields()
        unknown = sorted(set(settings) - set(known)) if known else []
        if unknown:
            raise ValueError(
                f"Invalid parameter(s) {['selector__' + k for k in unknown]} for selector "
                f"{self.selector if isinstance(self.selector, str) else type(self.selector).__name__!r}; "
                f"its settings are {known}"
            )
        if isinstance(self.selector, Selector):
            # a copy, so the instance the user passed in (maybe shared) is left unchanged
            self.selector = dataclasses.replace(self.selector, **settings)
        else:
            self.selector_params = {**self._selector_settings(), **settings}

    def __sklearn_clone__(self) -> PrunedEnsembleClassifier:
        """Clone the settings; a prefit pool keeps its fitted members (they are never refitted)."""
        if not self.prefit:
            return super().__sklearn_clone__()
        params = self.get_params(deep=False)
        pool = params.pop("estimators")
        cloned = {key: clone(value, safe=False) for key, value in params.items()}
        return type(self)(estimators=None if pool is None else list(pool), **cloned)

    # -- fitting -------------------------------------------------------------------------------

    def _make_selector(self) -> Selector:
        if isinstance(self.selector, Selector):
            return self.selector
        params = dict(self.selector_params or {})
        if self.voting is not None:
            params.setdefault("voting", self.voting)
        if self.random_state is not None:
            params.setdefault("seed", int(self.random_state))
        if self.n_jobs is not None:
            params.setdefault("n_jobs", self.n_jobs)
        return SELECTORS.get(self.selector)(**params)

    def fit(self, X: Any, y: Any, sample_weight: Any | None = None) -> PrunedEnsembleClassifier:
        """Fit (unless prefit) the pool, score it on validation data and select the team.

        Args:
            X: features (N, D).
            y: labels (N,).
            sample_weight: per-sample weights passed to every member's ``fit`` (on the training
                part); refused with ``prefit=True``, where no member is fitted.
        """
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        weights = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        self.classes_ = np.unique(y)
        pool = list(default_pool(self.random_state) if self.estimators is None else self.estimators)
        if self.prefit:
            self._check_prefit(pool, weights)
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
            self._check_weightable(pool, weights)
            x_fit, x_val, y_fit, y_val, w_fit = self._split(X, y_enc, weights)
            self.estimators_ = Parallel(n_jobs=self.n_jobs)(
                delayed(_fit_member)(clone(est), x_fit, self.classes_[y_fit], w_fit) for est in pool
            )
        preds = PredictionSet(self._member_proba(x_val), y_val)
        self.selection_: Selection = self._make_selector().select(preds)
        self.members_ = list(self.selection_.members)
        return self

    @staticmethod
    def _check_prefit(pool: Sequence[Any], weights: np.ndarray | None) -> None:
        if weights is not None:
            raise ValueError(
                "sample_weight has no effect with prefit=True (the members are fitted already and "
                "selectors count validation samples unweighted); fit the members with it instead"
            )
        for i, est in enumerate(pool):
            try:
                check_is_fitted(est)
            except NotFittedError:
                raise NotFittedError(
                    f"prefit=True but member {i} ({type(est).__name__}) is not fitted; fit it "
                    "first (a clone() of a bare member is unfitted: wrap fitted members in "
                    "sklearn.frozen.FrozenEstimator, or clone this classifier, which keeps them)"
                ) from None

    @staticmethod
    def _check_weightable(pool: Sequence[Any], weights: np.ndarray | None) -> None:
        if weights is None:
            return
        refused = [
            f"{i} ({type(est).__name__})"
            for i, est in enumerate(pool)
            if not has_fit_parameter(est, "sample_weight")
        ]
        if refused:
            raise ValueError(
                f"sample_weight given, but member(s) {', '.join(refused)} do not accept "
                "sample_weight in fit; drop them or the weights"
            )

    def _split(
        self, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        if len(y) < _MIN_SPLIT:
            return X, X, y, y, weights
        counts = np.bincount(y)
        stratify = y if counts[counts > 0].min() >= 2 else None
        arrays = [X, y] if weights is None else [X, y, weights]
        parts = train_test_split(
            *arrays, test_size=self.val_size, random_state=self.random_state, stratify=stratify
        )
        w_fit = None if weights is None else parts[4]
        return parts[0], parts[1], parts[2], parts[3], w_fit

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
        rule = VOTING.canonical(sel.voting)
        team = weights if weights is not None else np.ones((1, len(self.members_)))
        labels = TeamVoter(proba, rule).predict(team)[0]
        if rule == "majority":
            fallback = TeamVoter(proba, "plurality").predict(np.ones((1, len(self.members_))))[0]
            labels = np.where(labels < 0, fallback, labels)
        return np.asarray(self.classes_[labels])


def _fit_member(est: Any, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> Any:
    """Fit one (cloned) member, with weights only when there are any."""
    if weights is None:
        return est.fit(X, y)
    return est.fit(X, y, sample_weight=weights)
