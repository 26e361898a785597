"""From scores to masks: global or per-layer thresholds with per-layer caps; mask enforcement."""

from __future__ import annotations

import math

import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models.measure import prunable_parameters

Masks = dict[str, torch.Tensor]
SCOPES = ("global", "layer")
# Auto cap: no layer ends up sparser than 1 - (1 - s) / AUTO_CAP_DENSITY_RATIO, i.e. every layer
# keeps at least a tenth of the network's overall density. A fixed cap such as 0.99 would force
# every layer to exactly 99 % at a 99 % target (the output layer of LeNet-300-100 then keeps 10
# weights and accuracy falls to ~60 %); a cap relative to the target never binds where a global
# criterion is healthy and still stops one layer from collapsing.
AUTO_CAP_DENSITY_RATIO = 10.0


def layer_cap(sparsity: float, max_layer_sparsity: float | None) -> float:
    """The per-layer cap in force at ``sparsity``: the fixed value, or the auto cap for None."""
    if max_layer_sparsity is None:
        return 1.0 - (1.0 - sparsity) / AUTO_CAP_DENSITY_RATIO
    return float(max_layer_sparsity)


def masks_from_scores(
    scores: dict[str, torch.Tensor],
    sparsity: float,
    scope: str = "global",
    max_layer_sparsity: float | None = None,
) -> Masks:
    """Keep-masks that remove the lowest-scoring weights.

    Args:
        scores: one score tensor per prunable weight (same shape); higher = more important.
            ``-inf`` marks weights that must go (e.g. already pruned).
        sparsity: share of all scored weights to remove.
        scope: ``"global"`` ranks all weights together; ``"layer"`` removes ``sparsity`` of each
            layer.
        max_layer_sparsity: no layer loses more than this share (global scope), so none
            collapses; ``None`` (default) caps each layer at ``1 - (1 - sparsity) / 10`` (see
            :func:`layer_cap`). Every layer keeps at least one weight in any case.

    Returns:
        Boolean masks (True = keep), one per scored weight.
    """
    if scope not in SCOPES:
        raise SpecError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")
    if max_layer_sparsity is not None and not 0.0 <= max_layer_sparsity <= 1.0:
        raise SpecError(
            f"max_layer_sparsity must lie in [0, 1] or be None; got {max_layer_sparsity}"
        )
    cap = layer_cap(sparsity, max_layer_sparsity)
    masks: Masks = {}
    if scope == "layer":
        for name, score in scores.items():
            flat = score.detach().flatten().float()
            n_prune = min(round(sparsity * flat.numel()), flat.numel() - 1)
            masks[name] = _keep_all_but_lowest(flat, n_prune).view_as(score)
        return masks
    # Global: the pruned set is the k lowest among each layer's quota of lowest scores, which is
    # exactly "prune globally lowest first, skipping layers whose cap is reached".
    total = sum(s.numel() for s in scores.values())
    k = round(sparsity * total)
    candidates = []
    for score in scores.values():
        flat = score.detach().flatten().float()
        quota = min(math.floor(cap * flat.numel() + 1e-9), flat.numel() - 1)
        lowest = torch.sort(flat).values[:quota]
        candidates.append(lowest)
    pool = torch.cat(candidates) if candidates else torch.empty(0)
    k = min(k, pool.numel())
    threshold = torch.kthvalue(pool, k).values if k > 0 else torch.tensor(-math.inf)
    n_at_threshold_to_prune = int((torch.sort(pool).values[:k] == threshold).sum()) if k > 0 else 0
    for name, score in scores.items():
        flat = score.detach().flatten().float()
        quota = min(math.floor(cap * flat.numel() + 1e-9), flat.numel() - 1)
        below = int((flat < threshold).sum())
        ties = int((flat == threshold).sum())
        take_ties = min(ties, n_at_threshold_to_prune, max(quota - below, 0))
        n_at_threshold_to_prune -= take_ties
        masks[name] = _keep_all_but_lowest(flat, min(below + take_ties, quota)).view_as(score)
    return masks


def _keep_all_but_lowest(flat: torch.Tensor, n_prune: int) -> torch.Tensor:
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if n_prune > 0:
        order = torch.argsort(flat, stable=True)  # stable: ties resolved by position, deterministic
        keep[order[:n_prune]] = False
    return keep


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the masked-out weights of ``model`` in place."""
    params = prunable_parameters(model)
    for name, mask in masks.items():
        params[name].mul_(mask.to(params[name].device, params[name].dtype))


def masks_of_zeros(model: nn.Module) -> Masks:
    """Keep-masks that keep exactly the non-zero prunable weights."""
    return {name: p.detach() != 0 for name, p in prunable_parameters(model).items()}


def mask_sparsity(masks: Masks) -> float:
    """Share of masked-out entries over all masks."""
    total = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / total if total else 0.0


class MaskEnforcer:
    """Training hooks that keep pruned weights at zero during fine-tuning.

    ``before_step`` zeroes their gradients (so optimiser state stays clean); ``after_step``
    re-applies the masks (weight decay and momentum cannot revive a pruned weight).
    """

    def __init__(self, masks: Masks) -> None:
        self.masks = masks

    @torch.no_grad()
    def before_step(self, model: nn.Module) -> None:
        params = prunable_parameters(model)
        for name, mask in self.masks.items():
            grad = params[name].grad
            if grad is not None:
                grad.mul_(mask.to(grad.device, grad.dtype))

    def after_step(self, model: nn.Module) -> None:
        apply_masks(model, self.masks)
