"""Pruning methods (one module each, registered in ``METHODS``), masks, schedules, fine-tuning."""

from ensprune.pruning import magnitude, random  # noqa: F401  (registers the methods)
from ensprune.pruning._base import (
    METHODS,
    Masks,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
    make_method,
)
from ensprune.pruning._masks import MaskEnforcer, apply_masks, mask_sparsity, masks_from_scores
from ensprune.pruning._score import ScoreMethod
from ensprune.pruning.finetune import finetune

__all__ = [
    "METHODS",
    "MaskEnforcer",
    "Masks",
    "PruningContext",
    "PruningMethod",
    "PruningResult",
    "ScoreMethod",
    "apply_masks",
    "check_sparsity",
    "finetune",
    "make_method",
    "mask_sparsity",
    "masks_from_scores",
]
