"""Magnitude pruning (Han et al. 2015): remove the smallest |w|, globally or per layer."""

from __future__ import annotations

import torch
from torch import nn

from ensprune.models.measure import prunable_parameters
from ensprune.pruning._base import METHODS, PruningContext
from ensprune.pruning._score import ScoreMethod


@METHODS.register("magnitude")
class MagnitudePruning(ScoreMethod):
    """Keep the largest-magnitude weights."""

    name = "magnitude"
    description = "remove the smallest |w| (global or per layer), then fine-tune with masks"

    def scores(self, model: nn.Module, context: PruningContext) -> dict[str, torch.Tensor]:
        return {name: p.detach().abs() for name, p in prunable_parameters(model).items()}
