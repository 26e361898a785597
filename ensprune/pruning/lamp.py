"""LAMP (Lee et al. 2021): layer-adaptive magnitude pruning with one global threshold.

Within a layer, sort the squared weights ascending; weight u scores
``w_u² / Σ_{v ≥ u} w_v²`` (its share of the energy of the weights at least as large). The largest
weight of every layer scores 1, so no layer is emptied, and a global top-k on the scores sets each
layer's sparsity automatically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.models.measure import prunable_parameters
from ensprune.pruning._base import METHODS, PruningContext
from ensprune.pruning._score import ScoreMethod

if TYPE_CHECKING:
    import optuna


def lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    """LAMP score of every entry of one layer's weight (same shape).

    Example:
        >>> lamp_scores(torch.tensor([1.0, 2.0, 3.0]))  # 1/14, 4/13, 9/9
        tensor([0.0714, 0.3077, 1.0000])
    """
    w2 = weight.detach().flatten().double() ** 2
    order = torch.argsort(w2, stable=True)
    ascending = w2[order]
    tail = torch.flip(torch.cumsum(torch.flip(ascending, [0]), 0), [0])  # Σ_{v ≥ u} w_v²
    ranked = torch.where(tail > 0, ascending / tail.clamp_min(1e-300), torch.zeros_like(ascending))
    scores = torch.empty_like(w2)
    scores[order] = ranked
    return scores.view_as(weight).to(weight.dtype)


@METHODS.register("lamp")
class LampPruning(ScoreMethod):
    """Global top-k on LAMP scores (``scope="layer"`` reduces to per-layer magnitude pruning)."""

    name = "lamp"
    description = (
        "layer-adaptive magnitude pruning: w² over the energy of larger weights, global top-k"
    )

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Only the schedule: LAMP exists to set per-layer sparsities under a global threshold."""
        return cls._schedule_space(trial)

    def scores(self, model: nn.Module, context: PruningContext) -> dict[str, torch.Tensor]:
        return {name: lamp_scores(p) for name, p in prunable_parameters(model).items()}
