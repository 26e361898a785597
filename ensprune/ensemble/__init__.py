"""The ensemble side: predictions, diversity metrics, focal diversity, voting and selectors.

Everything here is a pure function of a :class:`PredictionSet` (member probabilities on one
split and the true labels), so predictions from any framework can be used.

Example:
    >>> from ensprune.ensemble import PredictionSet, SELECTORS, diversity, focal_diversity
    >>> val = PredictionSet.load("val_preds.npz")
    >>> diversity("gd", val.labels, val.y)               # generalized diversity of the pool
    >>> focal_diversity("ck", val.labels, val.y, [0, 3, 5])
    >>> sel = SELECTORS.get("hq")(beta=0.1, max_size=5).select(val)
    >>> sel.members, sel.val_accuracy, sel.accuracy(PredictionSet.load("test_preds.npz"))
"""

from typing import Any

from ensprune.ensemble.budget import within_budget
from ensprune.ensemble.diversity import METRICS, Metric, SampleStats, diversity
from ensprune.ensemble.focal import DEFAULT_METRICS, FocalScorer, focal_diversity
from ensprune.ensemble.menu import Menu, make_menu, resolve_budget
from ensprune.ensemble.objective import Objective, TeamEvaluator, TeamScores
from ensprune.ensemble.predictions import PredictionSet
from ensprune.ensemble.selection import (
    SELECTORS,
    CaruanaSelector,
    ExhaustiveSelector,
    GeneticSelector,
    GreedySelector,
    HQSelector,
    JointSelection,
    JointSelector,
    NSGA2Selector,
    ObjectiveSelector,
    RandomSelector,
    Selection,
    Selector,
    TopKSelector,
    evolve_weights,
    register_selector,
)
from ensprune.ensemble.synthetic import make_pool
from ensprune.ensemble.voting import (
    DEFAULT_VOTING,
    VOTING,
    TeamVoter,
    VotingRule,
    majority_vote,
    plurality_vote,
    soft_vote,
    team_accuracy,
    vote,
    weighted_vote,
)

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_VOTING",
    "METRICS",
    "SELECTORS",
    "VOTING",
    "CaruanaSelector",
    "ExhaustiveSelector",
    "FocalScorer",
    "GeneticSelector",
    "GreedySelector",
    "HQSelector",
    "JointSelection",
    "JointSelector",
    "Menu",
    "Metric",
    "NSGA2Selector",
    "Objective",
    "ObjectiveSelector",
    "PredictionSet",
    "PrunedEnsembleClassifier",
    "RandomSelector",
    "SampleStats",
    "Selection",
    "Selector",
    "TeamEvaluator",
    "TeamScores",
    "TeamVoter",
    "TopKSelector",
    "VotingRule",
    "diversity",
    "evolve_weights",
    "focal_diversity",
    "majority_vote",
    "make_menu",
    "make_pool",
    "plurality_vote",
    "register_selector",
    "resolve_budget",
    "soft_vote",
    "team_accuracy",
    "vote",
    "weighted_vote",
    "within_budget",
]


def __getattr__(name: str) -> Any:
    # The scikit-learn estimator is imported on first use: importing scikit-learn costs seconds,
    # and nothing else in the package needs it.
    if name == "PrunedEnsembleClassifier":
        from ensprune.ensemble.estimator import PrunedEnsembleClassifier

        globals()[name] = PrunedEnsembleClassifier
        return PrunedEnsembleClassifier
    raise AttributeError(f"module 'ensprune.ensemble' has no attribute {name!r}")
