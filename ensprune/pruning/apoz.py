"""APoZ (Hu et al. 2016) scores in the DropNet loop: drop the units that are most often zero.

The Average Percentage of Zeros of a unit is the share of its post-ReLU outputs (over training
samples and, for a filter, feature-map positions) that are exactly zero. A unit with a high APoZ
rarely passes information on. Everything else (rounds, resets, stop rules, compaction) is DropNet's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ensprune.models.architecture import SequentialNet
from ensprune.pruning._base import METHODS, PruningContext
from ensprune.pruning.dropnet import UNIT_SCOPES, DropNetPruning, _activation_statistic

if TYPE_CHECKING:
    import optuna


@METHODS.register("apoz")
class ApozPruning(DropNetPruning):
    """DropNet with score 1 - APoZ: ``metric="min"`` drops the units that are most often zero.

    Ties (e.g. units never zero) are broken by position, deterministically.
    """

    name = "apoz"
    description = "drop nodes/filters with the highest share of zero activations; compacted"

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Scope, fraction and kappa (the metric stays ``"min"``: APoZ's own criterion)."""
        return {
            "scope": trial.suggest_categorical(f"{cls.name}.scope", list(UNIT_SCOPES)),
            "fraction": trial.suggest_float(f"{cls.name}.fraction", 0.1, 0.5),
            "kappa": trial.suggest_float(f"{cls.name}.kappa", 0.9, 1.0),
        }

    def unit_scores(self, model: SequentialNet, context: PruningContext) -> dict[str, torch.Tensor]:
        """1 - APoZ of every unit of every hidden layer (higher = more often active)."""
        zeros = _activation_statistic(model, context, self.score_samples, zeros=True)
        return {name: 1.0 - share for name, share in zeros.items()}
