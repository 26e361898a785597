"""DropNet (Tan & Motani, ICML 2020): iteratively drop whole nodes and filters, then compact.

A unit's score is its mean |post-activation| over training data (for a filter: the mean of its
feature map). Each round drops a fraction ``p`` of the remaining units by the metric (``"min"``:
lowest scores, ``"max"``: highest, ``"random"``), across the network (``"global"``) or within each
layer (``"layer"``); resets the survivors (to θ₀, a random re-initialisation, or not at all) and
trains to early stopping. Rounds stop at the target share of removed units, when validation
accuracy falls below ``kappa`` × the input network's, or when every layer is at its floor. The
result is physically compacted, on any graph (see :class:`~ensprune.pruning._units.UnitScoreMethod`
for the rounds and every knob).

Example:
    >>> result = make_method("dropnet", metric="min").prune(net, 0.6, context)
    >>> result.info["units_remaining"]  # share of units left, e.g. 0.4096
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.pruning._base import PruningContext, register_method
from ensprune.pruning._compact import UnitGroup
from ensprune.pruning._units import METRICS, UnitScoreMethod, activation_statistic

if TYPE_CHECKING:
    import optuna


@register_method
class DropNetPruning(UnitScoreMethod):
    """Iterative node/filter dropping by mean |post-activation|, with compaction."""

    name = "dropnet"
    description = "drop nodes/filters by mean post-activation each round, reset, retrain; compacted"

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Metric, scope, fraction and kappa; reset and the floor are left to the spec."""
        return {
            "metric": trial.suggest_categorical(f"{cls.name}.metric", list(METRICS)),
            **super().search_space(trial),
        }

    def score_units(
        self, model: nn.Module, groups: list[UnitGroup], context: PruningContext
    ) -> dict[str, torch.Tensor]:
        """Mean |post-activation| of every unit, over training samples."""
        return activation_statistic(model, groups, context, self.score_samples, torch.abs)
