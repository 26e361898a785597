"""APoZ (Hu et al. 2016) scores in the unit-removal rounds: drop the units most often zero.

The Average Percentage of Zeros of a unit is the share of its post-ReLU outputs (over training
samples and, for a filter, feature-map positions) that are exactly zero. A unit with a high APoZ
rarely passes information on. Rounds, resets, stop rules and compaction are the shared ones of
:class:`~ensprune.pruning._units.UnitScoreMethod`.
"""

from __future__ import annotations

import torch
from torch import nn

from ensprune.pruning._base import PruningContext, register_method
from ensprune.pruning._compact import UnitGroup
from ensprune.pruning._units import UnitScoreMethod, activation_statistic


def _is_zero(value: torch.Tensor) -> torch.Tensor:
    return (value == 0).double()


@register_method
class ApozPruning(UnitScoreMethod):
    """Score 1 - APoZ: ``metric="min"`` drops the units that are most often zero.

    Ties (e.g. units never zero) are broken by position, deterministically.
    """

    name = "apoz"
    description = "drop nodes/filters with the highest share of zero activations; compacted"

    def score_units(
        self, model: nn.Module, groups: list[UnitGroup], context: PruningContext
    ) -> dict[str, torch.Tensor]:
        """1 - APoZ of every unit (higher = more often active)."""
        zeros = activation_statistic(model, groups, context, self.score_samples, _is_zero)
        return {name: 1.0 - share for name, share in zeros.items()}
