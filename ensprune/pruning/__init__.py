"""Pruning methods (one module each, registered in ``METHODS``), masks, schedules, compaction.

Prunable parameters are the weights of ``nn.Linear`` and ``nn.Conv2d`` layers (see
:func:`ensprune.models.measure.prunable_parameters`); biases and normalisation parameters are never
pruned and never counted. Sparsity is the share of prunable weights that are zero or removed.

Every method is called the same way::

    result = make_method("magnitude", scope="global").prune(model, 0.9, context)
    result.model, result.masks, result.info["sparsity"]

Unstructured methods (magnitude, random, lamp) return a masked copy and its masks; structured
methods (dropnet, apoz) remove whole units and return a physically smaller network (no masks).
"""

from ensprune.pruning import (  # noqa: F401  (registers them)
    adaptive,
    apoz,
    dropnet,
    evolutionary,
    lamp,
    magnitude,
    random,
)
from ensprune.pruning._base import (
    METHODS,
    Masks,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
    make_method,
)
from ensprune.pruning._compact import (
    UnitMasks,
    compact,
    dead_units,
    mask_units,
    unit_layers,
    unit_weight_masks,
)
from ensprune.pruning._gradual import GradualPruner, cubic_sparsity, prune_gradually
from ensprune.pruning._masks import MaskEnforcer, apply_masks, mask_sparsity, masks_from_scores
from ensprune.pruning._schedule import GRADUAL, SCHEDULES, Round, make_schedule
from ensprune.pruning._score import ScoreMethod
from ensprune.pruning.finetune import finetune
from ensprune.pruning.lamp import lamp_scores
from ensprune.pruning.measurement import checkpoint_size_bytes, measure_model

__all__ = [
    "GRADUAL",
    "METHODS",
    "SCHEDULES",
    "GradualPruner",
    "MaskEnforcer",
    "Masks",
    "PruningContext",
    "PruningMethod",
    "PruningResult",
    "Round",
    "ScoreMethod",
    "UnitMasks",
    "apply_masks",
    "check_sparsity",
    "checkpoint_size_bytes",
    "compact",
    "cubic_sparsity",
    "dead_units",
    "finetune",
    "lamp_scores",
    "make_method",
    "make_schedule",
    "mask_sparsity",
    "mask_units",
    "masks_from_scores",
    "measure_model",
    "prune_gradually",
    "unit_layers",
    "unit_weight_masks",
]
