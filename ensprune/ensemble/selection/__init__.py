"""Sub-ensemble selectors, one module each, registered in :data:`SELECTORS`.

========== ===================================================================================
name       selector
========== ===================================================================================
hq         HQ hierarchical pruning of low-focal-diversity teams with prune ratio beta
ga         DEAP binary-mask genetic algorithm on the shared objective (optionally + weights)
nsga2      DEAP NSGA-II over (accuracy, diversity, cost); returns the Pareto front
exhaustive every team up to max_size (guarded by a team-count limit)
greedy     greedy forward selection on the shared objective
caruana    Caruana's ensemble selection with replacement (weighted soft voting)
topk       the k most accurate members
random     a random team (baseline)
========== ===================================================================================

:class:`JointSelector` (``joint.py``, not in the registry: its input is a
:class:`~ensprune.ensemble.menu.Menu`) chooses every member's operating point and the team
together under a cost budget, with a GA, NSGA-II or exhaustive search.
"""

# importing each selector module registers it in SELECTORS
from ensprune.ensemble.selection._base import (
    SELECTORS,
    ObjectiveSelector,
    Selection,
    Selector,
    register_selector,
)
from ensprune.ensemble.selection.caruana import CaruanaSelector
from ensprune.ensemble.selection.exhaustive import ExhaustiveSelector
from ensprune.ensemble.selection.genetic import GeneticSelector
from ensprune.ensemble.selection.greedy import GreedySelector
from ensprune.ensemble.selection.hq import HQSelector
from ensprune.ensemble.selection.joint import JointSelection, JointSelector
from ensprune.ensemble.selection.nsga2 import NSGA2Selector
from ensprune.ensemble.selection.random import RandomSelector
from ensprune.ensemble.selection.topk import TopKSelector
from ensprune.ensemble.selection.weights import evolve_weights

__all__ = [
    "SELECTORS",
    "CaruanaSelector",
    "ExhaustiveSelector",
    "GeneticSelector",
    "GreedySelector",
    "HQSelector",
    "JointSelection",
    "JointSelector",
    "NSGA2Selector",
    "ObjectiveSelector",
    "RandomSelector",
    "Selection",
    "Selector",
    "TopKSelector",
    "evolve_weights",
    "register_selector",
]
