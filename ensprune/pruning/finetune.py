"""Fine-tuning a pruned network with its masks enforced."""

from __future__ import annotations

import dataclasses

from torch import nn

from ensprune.models.training import TrainConfig, TrainHistory, train_model
from ensprune.pruning._base import Masks, PruningContext
from ensprune.pruning._masks import MaskEnforcer


def finetune(
    model: nn.Module,
    masks: Masks,
    context: PruningContext,
    config: TrainConfig | None = None,
    desc: str = "fine-tune",
) -> TrainHistory:
    """Train ``model`` in place on the context's data while its masked weights stay zero.

    Args:
        config: overrides ``context.finetune`` (e.g. a per-round budget of an iterative schedule).
    """
    cfg = config or context.finetune
    cfg = dataclasses.replace(cfg, seed=cfg.seed if config else context.seed)
    enforcer = MaskEnforcer(masks)
    return train_model(
        model,
        context.x_train,
        context.y_train,
        context.x_val,
        context.y_val,
        cfg,
        before_step=enforcer.before_step if masks else None,
        after_step=enforcer.after_step if masks else None,
        progress=context.progress,
        desc=desc,
    )
