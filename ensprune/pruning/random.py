"""Random pruning: the baseline every saliency method must beat."""

from __future__ import annotations

import torch
from torch import nn

from ensprune.models.measure import prunable_parameters
from ensprune.pruning._base import METHODS, PruningContext
from ensprune.pruning._score import ScoreMethod


@METHODS.register("random")
class RandomPruning(ScoreMethod):
    """Remove a seeded uniformly random subset of weights (already-zero weights go first)."""

    name = "random"
    description = "remove a seeded random subset of weights (baseline)"

    def scores(self, model: nn.Module, context: PruningContext) -> dict[str, torch.Tensor]:
        gen = context.generator(salt=1)
        out = {}
        for name, p in prunable_parameters(model).items():
            score = torch.rand(p.shape, generator=gen)
            out[name] = torch.where(p.detach() == 0, torch.full_like(score, -1.0), score)
        return out
