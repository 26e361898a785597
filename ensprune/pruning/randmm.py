"""Randomized matrix multiplication at inference: every Linear layer estimates ``X Wᵀ`` from
``c`` sampled inner indices (probabilities ∝ ‖X_{:,k}‖ ‖W_{:,k}‖, the unbiased estimator).

No weight is removed; the wrapped layers (:class:`~ensprune.models.edits.RandMMLinear`) compute
``c`` of their ``in_features`` rank-one products per batch. ``c`` is ``samples`` when given, else
``ceil((1 − sparsity) · in_features)`` per layer (``sparsity`` = share of inner products skipped).
The sampling is seeded from the context, so a given batch always gives the same output. Whether it
is faster than the dense product on a CPU is measured, not assumed (``benchmarks/RESULTS.md``):
the gather and the sampling cost time too.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models.edits import RandMMLinear, apply_edit
from ensprune.pruning._base import (
    METHODS,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
)

if TYPE_CHECKING:
    import optuna


@METHODS.register("randmm")
class RandomizedMultiplication(PruningMethod):
    """Wrap every Linear layer in a randomized product of ``c`` sampled inner indices.

    Args:
        samples: ``c`` for every layer; unset (default): ``ceil((1 − sparsity) · in_features)``.
    """

    name = "randmm"
    description = "randomized matrix multiplication of Linear layers at inference (c samples)"
    structured = True
    replaces_modules = True
    removes_weights = False

    def __init__(self, samples: int | None = None) -> None:
        if samples is not None and (
            isinstance(samples, bool) or not isinstance(samples, int) or samples < 1
        ):
            raise SpecError(f"randmm: samples must be an integer >= 1 or unset; got {samples!r}")
        self.samples = samples

    def params(self) -> dict[str, Any]:
        return {"samples": self.samples}

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Nothing: ``c`` follows the trial's sparsity."""
        return {}

    @torch.no_grad()
    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        target = check_sparsity(sparsity)
        wrapped = copy.deepcopy(model)
        linears = [
            (name, m)
            for name, m in wrapped.named_modules()
            if isinstance(m, nn.Linear) and not isinstance(m, RandMMLinear) and name
        ]
        if not linears:
            raise SpecError(
                f"randmm wraps Linear layers; this {type(model).__name__} has none to wrap"
            )
        chosen = {}
        for index, (name, old) in enumerate(linears):
            c = self.samples or math.ceil((1.0 - target) * old.in_features)
            if c >= old.in_features:
                continue
            new = apply_edit(
                wrapped,
                {"op": "randmm", "name": name, "samples": c, "seed": context.seed * 1009 + index},
            )
            new.load_state_dict(old.state_dict())
            chosen[name] = c
        return PruningResult(wrapped, info={"sparsity": 0.0, "samples": chosen})
