"""In-training gradual pruning (Zhu & Gupta 2017): masks follow the cubic curve step by step.

The round-based ``"cubic"`` schedule prunes, then fine-tunes each round to early stopping. The
paper's own procedure is one training run instead: every ``every`` optimiser steps the weights are
re-scored and the sparsity raised to ``s_t = s_f (1 - (1 - t / n)^3)``; after ``n`` steps the masks
stay fixed for the rest of the budget, so the network recovers from the last cut while the
learning rate (cosine, see ``TrainConfig.lr_schedule``) decays. Pruned weights never come back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import nn

from ensprune.data.batching import as_batch_source
from ensprune.models.training import TrainHistory
from ensprune.pruning._base import Masks, PruningContext
from ensprune.pruning._masks import MaskEnforcer, apply_masks, masks_from_scores
from ensprune.pruning.finetune import train_on_context

Scorer = Callable[[nn.Module], dict[str, torch.Tensor]]


def cubic_sparsity(step: int, ramp_steps: int, target: float) -> float:
    """Zhu & Gupta's s_t from 0 at step 0 to ``target`` at ``ramp_steps`` (and after).

    Example:
        >>> round(cubic_sparsity(50, 100, 0.8), 3)
        0.7
    """
    if ramp_steps <= 0 or step >= ramp_steps:
        return target
    return target * (1.0 - (1.0 - step / ramp_steps) ** 3)


class GradualPruner:
    """Training hooks that raise the sparsity every ``every`` steps and enforce the masks.

    Args:
        scorer: scores of the current weights (higher = keep).
        target: the final sparsity, reached after ``ramp_steps`` optimiser steps.
        every: steps between mask updates (Zhu & Gupta's Δt).
        scope, max_layer_sparsity: as in :func:`masks_from_scores`.
    """

    def __init__(
        self,
        scorer: Scorer,
        target: float,
        ramp_steps: int,
        every: int,
        scope: str = "global",
        max_layer_sparsity: float | None = None,
    ) -> None:
        self.scorer = scorer
        self.target = target
        self.ramp_steps = ramp_steps
        self.every = every
        self.scope = scope
        self.max_layer_sparsity = max_layer_sparsity
        self.step = 0
        self.updates = 0
        self.masks: Masks = {}
        self.sparsity = 0.0
        self._enforcer = MaskEnforcer({})

    def update(self, model: nn.Module, sparsity: float) -> None:
        """Re-score ``model`` and prune it to ``sparsity``; pruned weights stay pruned."""
        scores = self.scorer(model)
        if self.masks:
            scores = {n: s.masked_fill(~self.masks[n], -math.inf) for n, s in scores.items()}
        self.masks = masks_from_scores(scores, sparsity, self.scope, self.max_layer_sparsity)
        self._enforcer = MaskEnforcer(self.masks)
        apply_masks(model, self.masks)
        self.sparsity = sparsity
        self.updates += 1

    def before_step(self, model: nn.Module) -> None:
        self._enforcer.before_step(model)

    def after_step(self, model: nn.Module) -> None:
        self._enforcer.after_step(model)
        self.step += 1
        due = self.step % self.every == 0 or self.step == self.ramp_steps
        if self.step <= self.ramp_steps and due:
            self.update(model, cubic_sparsity(self.step, self.ramp_steps, self.target))


def prune_gradually(
    model: nn.Module,
    scorer: Scorer,
    target: float,
    context: PruningContext,
    *,
    ramp: float,
    every: int,
    desc: str,
    scope: str = "global",
    max_layer_sparsity: float | None = None,
) -> tuple[GradualPruner, TrainHistory]:
    """Prune ``model`` in place to ``target`` during one run of ``context.finetune``.

    The sparsity ramps over the first ``ramp`` share of the optimiser steps. The run has a fixed
    budget (no early stopping) and returns its last weights, as earlier ones are denser. Without
    a fine-tuning budget this is one-shot pruning to ``target``.
    """
    cfg = dataclasses.replace(context.finetune, patience=0, seed=context.seed)
    steps = cfg.epochs * as_batch_source(context.x_train, context.y_train).steps(cfg.batch_size)
    pruner = GradualPruner(scorer, target, round(ramp * steps), every, scope, max_layer_sparsity)
    if pruner.ramp_steps == 0:  # no budget to ramp over: one-shot, then train at the target
        pruner.update(model, target)
    history = TrainHistory()
    if steps > 0:
        history = train_on_context(
            model,
            context,
            cfg,
            desc,
            before_step=pruner.before_step,
            after_step=pruner.after_step,
            keep_best=False,
        )
    return pruner, history
