"""Optimal Brain Damage (LeCun et al. 1990): remove the weights whose loss increase ½ h_kk w_k² is least.

``h_kk`` is the diagonal curvature of the mean cross-entropy on calibration samples, from the
empirical Fisher, the true Fisher (labels sampled from the model, seeded) or a Hutchinson estimate
of the Hessian diagonal (``fisher`` knob; see :mod:`ensprune.pruning._curvature`). The weights are
not updated: what is removed is simply zeroed, then fine-tuned like any other saliency method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.pruning._base import METHODS, PruningContext
from ensprune.pruning._curvature import (
    FISHERS,
    check_choice,
    check_positive_int,
    fisher_diagonal,
    iter_batches,
    layer_views,
)
from ensprune.pruning._score import ScoreMethod

if TYPE_CHECKING:
    import optuna


@METHODS.register("obd")
class OBDPruning(ScoreMethod):
    """OBD saliency with a selectable diagonal curvature.

    Args:
        fisher: ``"empirical"``, ``"true"`` or ``"hutchinson"``.
        samples: calibration samples drawn (seeded) from the training data.
        probes: Rademacher probes per batch of the Hutchinson estimate.
        **kwargs: scope, schedule, ... of :class:`ScoreMethod`.
    """

    name = "obd"
    description = "Optimal Brain Damage: ½ h w² with h a diagonal Fisher or Hutchinson Hessian"

    def __init__(
        self, fisher: str = "true", samples: int = 1024, probes: int = 8, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.fisher = check_choice(self.name, "fisher", fisher, FISHERS)
        self.samples = check_positive_int(self.name, "samples", samples)
        self.probes = check_positive_int(self.name, "probes", probes)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "fisher": self.fisher,
            "samples": self.samples,
            "probes": self.probes,
        }

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            **super().search_space(trial),
            "fisher": trial.suggest_categorical(f"{cls.name}.fisher", list(FISHERS)),
        }

    def scores(self, model: nn.Module, context: PruningContext) -> dict[str, torch.Tensor]:
        batches = iter_batches(context, self.samples)
        h = fisher_diagonal(model, batches, self.fisher, context.generator(salt=13), self.probes)
        views = layer_views(model)
        return {name: 0.5 * h[name] * views[name].weight.detach() ** 2 for name in views}
