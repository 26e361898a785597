"""ScoreMethod: saliency methods implement scores only; masks and fine-tuning live here."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from ensprune.errors import SpecError
from ensprune.models.architecture import SequentialNet
from ensprune.pruning._base import PruningContext, PruningMethod, PruningResult, check_sparsity, clone
from ensprune.pruning._masks import SCOPES, apply_masks, mask_sparsity, masks_from_scores
from ensprune.pruning.finetune import finetune

if TYPE_CHECKING:
    import optuna


class ScoreMethod(PruningMethod):
    """Unstructured pruning by a per-weight score: remove the lowest-scoring weights, fine-tune.

    Args:
        scope: ``"global"`` (one threshold for the network) or ``"layer"`` (same sparsity per layer).
        max_layer_sparsity: cap on any layer's sparsity under a global threshold.
    """

    def __init__(self, scope: str = "global", max_layer_sparsity: float = 0.99) -> None:
        if scope not in SCOPES:
            raise SpecError(f"{self.name}: scope must be one of {', '.join(SCOPES)}; got {scope!r}")
        self.scope = scope
        self.max_layer_sparsity = float(max_layer_sparsity)

    def params(self) -> dict[str, Any]:
        return {"scope": self.scope, "max_layer_sparsity": self.max_layer_sparsity}

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {"scope": trial.suggest_categorical(f"{cls.name}.scope", list(SCOPES))}

    @abstractmethod
    def scores(self, model: SequentialNet, context: PruningContext) -> dict[str, torch.Tensor]:
        """One importance score per prunable weight (higher = keep), keyed like ``prunable_parameters``."""

    def prune(self, model: SequentialNet, sparsity: float, context: PruningContext) -> PruningResult:
        target = check_sparsity(sparsity)
        pruned = clone(model)
        masks = masks_from_scores(self.scores(pruned, context), target, self.scope, self.max_layer_sparsity)
        apply_masks(pruned, masks)
        history = finetune(pruned, masks, context)
        return PruningResult(
            pruned,
            masks,
            info={"sparsity": mask_sparsity(masks), "finetune_epochs": history.epochs_run},
        )
