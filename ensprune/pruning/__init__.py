"""Pruning methods (one module each, registered in ``METHODS``), masks, schedules, compaction.

Methods take any ``torch.nn.Module``. Prunable parameters are the weights of its ``nn.Linear``,
``nn.Conv1d`` and ``nn.Conv2d`` layers, keyed by qualified name (``"layer1.0.conv1.weight"``; see
:func:`ensprune.models.measure.prunable_parameters`), narrowed by ``PruningContext.layers`` (a
:class:`LayerSelection`: include/exclude patterns, the classifier head protected from structured
removal); biases and normalisation parameters are never pruned and never counted. Sparsity is the
share of prunable weights that are zero or removed. :func:`measure_model` is re-exported from
:mod:`ensprune.models.measure`, the one measurement of a network.

Every method is called the same way::

    result = make_method("magnitude", scope="global").prune(model, 0.9, context)
    result.model, result.masks, result.info["sparsity"]

Unstructured methods (magnitude, random, lamp) return a masked copy and its masks; structured
methods (dropnet, apoz: :class:`UnitScoreMethod` plugins) remove whole units along Torch-Pruning's
dependency graph and return a physically smaller network (no masks); factorising methods
(lowrank, pca, eigendamage) replace layers by chains of smaller ones (recorded structural edits).
"""

from ensprune.models.measure import checkpoint_size_bytes, measure_model  # re-exported
from ensprune.pruning import (  # noqa: F401  (registers them)
    adaptive,
    apoz,
    dropnet,
    eigendamage,
    evolutionary,
    kfac,
    lamp,
    lowrank,
    magnitude,
    obd,
    obs,
    pca,
    randmm,
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
    register_method,
)
from ensprune.pruning._compact import (
    UnitGraph,
    UnitGroup,
    UnitMasks,
    compact,
    dead_units,
    mask_units,
    unit_layers,
    unit_weight_masks,
)
from ensprune.pruning._gradual import GradualPruner, cubic_sparsity, prune_gradually
from ensprune.pruning._layers import LayerSelection
from ensprune.pruning._masks import MaskEnforcer, apply_masks, mask_sparsity, masks_from_scores
from ensprune.pruning._schedule import GRADUAL, SCHEDULES, Round, make_schedule
from ensprune.pruning._score import ScoreMethod
from ensprune.pruning._units import UnitScoreMethod, activation_statistic
from ensprune.pruning.finetune import finetune
from ensprune.pruning.lamp import lamp_scores

__all__ = [
    "GRADUAL",
    "METHODS",
    "SCHEDULES",
    "GradualPruner",
    "LayerSelection",
    "MaskEnforcer",
    "Masks",
    "PruningContext",
    "PruningMethod",
    "PruningResult",
    "Round",
    "ScoreMethod",
    "UnitGraph",
    "UnitGroup",
    "UnitMasks",
    "UnitScoreMethod",
    "activation_statistic",
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
    "register_method",
    "unit_layers",
    "unit_weight_masks",
]
