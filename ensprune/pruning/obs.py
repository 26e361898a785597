"""Layer-wise Optimal Brain Surgeon with the weight update (OBC: Frantar & Alistarh 2022).

Each prunable layer is pruned to reconstruct its own outputs: with ``X`` its calibration inputs
(unfolded patches for a convolution, the bias's constant 1 appended), the squared reconstruction
error ``‖(W − Ŵ) X‖²`` has Hessian ``H = 2 X Xᵀ / n + γ I`` (``γ = damping ·`` mean diagonal),
the same for every output row, so rows are pruned independently. Within a row, greedily:

1. remove ``q = argmin w_q² / [H⁻¹]_qq`` (the OBS cost of removing it);
2. move the survivors: ``w ← w − (w_q / [H⁻¹]_qq) H⁻¹ e_q`` (the bias included: it is never
   pruned, only updated);
3. downdate the inverse: ``H⁻¹ ← H⁻¹ − H⁻¹ e_q e_qᵀ H⁻¹ / [H⁻¹]_qq``.

Layers are handled in order, each on the inputs produced by the already-pruned layers before it.
How many weights each row loses comes from the global K-FAC OBS saliency (``scope="global"``, its
``S`` factor puts layers on the scale of the network's loss) or is uniform (``scope="layer"``).

Cost: rows run in batches of ``B`` with one ``(d+1)²`` inverse each; memory ``4 B (d+1)²`` bytes
(``B`` sized to stay near 64 MiB), time ``O(rows · k · (d+1)²)`` for ``k`` removals per row. On
LeNet-300-100's first layer (784 → 300) see ``benchmarks/RESULTS.md`` for the measured numbers.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.pruning._base import METHODS, Masks, PruningContext
from ensprune.pruning._curvature import (
    KFAC_FISHERS,
    check_choice,
    check_damping,
    check_positive_int,
    iter_batches,
    kfac_factors,
    layer_input_moments,
    layer_views,
)
from ensprune.pruning._score import ScoreMethod
from ensprune.pruning.kfac import kfac_scores

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
ROW_BATCH_BYTES = 64 * 2**20


def obc_prune_rows(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    counts: torch.Tensor,
    damping: float,
    frozen: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune ``counts[r]`` entries of each row of ``weight`` by greedy OBS with updates.

    Args:
        weight: ``(rows, d + frozen)``: the prunable columns first, then ``frozen`` columns that
            are updated but never pruned (the bias).
        hessian: ``(d + frozen, d + frozen)`` layer Hessian shared by all rows.
        counts: ``(rows,)`` number of prunable entries to remove per row.
        damping: ``γ / mean(diag H)`` added to the diagonal before inverting.

    Returns:
        (updated weight, keep-mask over the ``d`` prunable columns).
    """
    rows, width = weight.shape
    prunable = width - frozen
    h = hessian.double().clone()
    h.diagonal().add_(damping * max(float(h.diagonal().mean()), 1e-12))
    h_inv = torch.cholesky_inverse(torch.linalg.cholesky(h)).float()
    out = weight.detach().float().clone()
    keep = torch.ones(rows, width, dtype=torch.bool)
    batch = max(1, ROW_BATCH_BYTES // (4 * width * width))
    counts = counts.clamp(0, prunable - 1)  # every row keeps at least one weight
    never = torch.zeros(width, dtype=torch.bool)
    never[prunable:] = True
    for start in range(0, rows, batch):
        stop = min(rows, start + batch)
        n = stop - start
        w = out[start:stop]
        alive = keep[start:stop]
        hi = h_inv.expand(n, width, width).clone()
        todo = counts[start:stop]
        ar = torch.arange(n)
        for step in range(int(todo.max()) if n else 0):
            active = step < todo
            diag = hi.diagonal(dim1=1, dim2=2).clamp_min(1e-20)
            cost = w**2 / diag
            cost[~alive | never] = torch.inf
            q = cost.argmin(1)
            column = hi[ar, :, q]  # H⁻¹ e_q, (n, width)
            d_q = diag[ar, q]
            factor = torch.where(active, w[ar, q] / d_q, torch.zeros_like(d_q))
            w -= factor[:, None] * column
            w[ar[active], q[active]] = 0.0
            alive[ar[active], q[active]] = False
            scale = torch.where(active, -1.0 / d_q, torch.zeros_like(d_q))
            # One fused pass over the inverses: H⁻¹ -= H⁻¹e_q e_qᵀH⁻¹ / [H⁻¹]_qq.
            hi.baddbmm_((column * scale[:, None])[:, :, None], column[:, None, :])
    # Removed entries are exactly zero (later downdates only leave float dust in them).
    out *= keep
    return out.to(weight.dtype), keep[:, :prunable]


@METHODS.register("obs")
class OBSPruning(ScoreMethod):
    """Layer-wise OBS (OBC) with the weight update; per-layer budgets from K-FAC OBS saliency.

    Args:
        damping: ``γ / mean(diag H)`` of the layer Hessians (OBC uses 0.01).
        samples: calibration samples drawn (seeded) from the training data.
        fisher: labels of K-FAC's output gradients for the global per-layer budgets.
        **kwargs: scope, schedule, ... of :class:`ScoreMethod` (``scope="layer"``: uniform
            sparsity per layer). The update runs in every round of the round-based schedules
            (``oneshot``, ``iterative``, ``cubic``); ``schedule="gradual"`` re-scores inside
            training and uses the K-FAC OBS saliency as a plain score, without updates.
    """

    name = "obs"
    description = "layer-wise Optimal Brain Surgeon (OBC): greedy removal with weight update"

    def __init__(
        self, damping: float = 1e-2, samples: int = 1024, fisher: str = "true", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.damping = check_damping(self.name, damping)
        self.samples = check_positive_int(self.name, "samples", samples)
        self.fisher = check_choice(self.name, "fisher", fisher, KFAC_FISHERS)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "damping": self.damping,
            "samples": self.samples,
            "fisher": self.fisher,
        }

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {
            **super().search_space(trial),
            "damping": trial.suggest_float(f"{cls.name}.damping", 1e-4, 1e-1, log=True),
        }

    def scores(self, model: nn.Module, context: PruningContext) -> dict[str, torch.Tensor]:
        """K-FAC OBS saliency: sets how many weights each layer and row loses."""
        factors = kfac_factors(
            model, iter_batches(context, self.samples), self.fisher, context.generator(salt=23)
        )
        return kfac_scores(layer_views(model), factors, "obs", 1e-3)

    @torch.no_grad()
    def remove(self, model: nn.Module, masks: Masks, context: PruningContext) -> Masks:
        """OBC on every layer in order, removing as many weights per row as ``masks`` does.

        A layer after a pruned one sees changed inputs; its weights are first re-fitted by least
        squares so that, on those inputs, it reproduces its outputs in the unpruned model
        (``W ← W X_ref X̃ᵀ (X̃ X̃ᵀ + γI)⁻¹``), then pruned from there.
        """
        reference = copy.deepcopy(model)
        chosen: Masks = {}
        views = layer_views(model)
        for name in masks:  # the layers the context selected
            view = views[name]
            moments = layer_input_moments(
                model, name, iter_batches(context, self.samples), reference
            )
            matrix = view.matrix().double()
            d = matrix.shape[1]
            full = matrix
            if view.bias is not None:
                full = torch.cat([full, view.bias.detach().double()[:, None]], dim=1)
            keep = torch.ones_like(matrix, dtype=torch.bool)
            removed = view.matrix(~masks[name])
            # Each group of a (grouped) convolution reads its own inputs: its own Hessian.
            for group in range(view.groups):
                rows = view.group_of_rows() == group
                cols = torch.zeros(full.shape[1], dtype=torch.bool)
                cols[view.group_columns(group)] = True
                cols[d:] = True  # the bias column: updated, never pruned
                block = full[rows][:, cols]
                hessian = moments.hessian[cols][:, cols]
                if moments.cross is not None and not torch.equal(moments.cross, moments.hessian):
                    block = refit(block, hessian, moments.cross[cols][:, cols], self.damping)
                counts = removed[rows][:, view.group_columns(group)].sum(1)
                updated, block_keep = obc_prune_rows(
                    block,
                    hessian,
                    counts,
                    self.damping,
                    frozen=full.shape[1] - d,
                )
                sub = full[rows]
                sub[:, cols] = updated.double()
                sub[:, :d] *= view.matrix(torch.ones_like(view.weight, dtype=torch.bool))[rows]
                full[rows] = sub
                group_keep = keep[rows]
                group_keep[:, view.group_columns(group)] = block_keep
                keep[rows] = group_keep
            view.weight.copy_(view.to_weight(full[:, :d]).to(view.weight.dtype))
            if view.bias is not None:
                view.bias.copy_(full[:, d].to(view.weight.dtype))
            chosen[name] = view.to_weight(keep)
        return chosen


def refit(
    weight: torch.Tensor, hessian: torch.Tensor, cross: torch.Tensor, damping: float
) -> torch.Tensor:
    """Least-squares weights on new inputs: ``argmin ‖W X_ref − Ŵ X̃‖² + γ‖Ŵ‖²`` (moments ×2/n)."""
    h = hessian.double().clone()
    h.diagonal().add_(damping * max(float(h.diagonal().mean()), 1e-12))
    rhs = weight.double() @ cross.double()  # W X_ref X̃ᵀ (×2/n, as H)
    return torch.linalg.solve(h, rhs.T).T.to(weight.dtype)
