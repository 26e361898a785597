"""Low-rank factorisation: each layer ``W ≈ (U_r √Σ_r)(√Σ_r V_rᵀ)``, two smaller layers.

A Linear ``in -> out`` becomes ``in -> r -> out``; a convolution becomes a ``r``-filter
convolution with the original kernel followed by a 1x1 convolution (the SVD of its flattened
weight ``(out, in · k · k)``). A layer is replaced only when ``r (in·k·k + out) < in·k·k · out``,
so the network really gets smaller (fewer parameters and MACs; latency measured in
``benchmarks/RESULTS.md``). Grouped convolutions are left as they are.

Ranks: with ``energy`` unset, from the target: ``sparsity`` is the share of prunable weights to
remove, and singular directions are kept network-wide by their share of their layer's energy
``σ² / ‖W‖²`` while they fit the budget. With ``energy`` set, each layer keeps the fewest
directions holding that share of its ``‖W‖²`` (and ``sparsity`` is only validated).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models.measure import count_parameters
from ensprune.pruning._base import (
    METHODS,
    PruningContext,
    PruningMethod,
    PruningResult,
    check_sparsity,
)
from ensprune.pruning._curvature import layer_views
from ensprune.pruning._factorise import (
    Candidate,
    install_factors,
    rank_for_share,
    ranks_for_budget,
    weight_sparsity,
)

if TYPE_CHECKING:
    import optuna


def check_share(who: str, knob: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise SpecError(f"{who}: {knob} must be a number in (0, 1] or unset; got {value!r}")
    return float(value)


@METHODS.register("lowrank")
class LowRankFactorisation(PruningMethod):
    """Truncated-SVD factorisation of Linear and (flattened) Conv layers.

    Args:
        energy: keep, per layer, the fewest singular directions holding this share of
            ``‖W‖²``; unset (default): ranks from the target parameter count.
    """

    name = "lowrank"
    description = "SVD factorisation of each layer into two smaller ones (rank from budget/energy)"
    structured = True
    replaces_modules = True

    def __init__(self, energy: float | None = None) -> None:
        self.energy = check_share(self.name, "energy", energy)

    def params(self) -> dict[str, Any]:
        return {"energy": self.energy}

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Nothing: the rank follows the trial's sparsity (``energy`` is fixed in the spec)."""
        return {}

    @torch.no_grad()
    def prune(self, model: nn.Module, sparsity: float, context: PruningContext) -> PruningResult:
        target = check_sparsity(sparsity)
        pruned = copy.deepcopy(model)
        dense = count_parameters(model).prunable
        svds = {}
        candidates = []
        for name, view in layer_views(pruned).items():
            if view.groups != 1:
                continue
            matrix = view.matrix().double()
            u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
            svds[name] = (u, s, vh)
            energy = s**2 / max(float((s**2).sum()), 1e-300)
            candidates.append(
                Candidate(name, energy, matrix.shape[0] + matrix.shape[1], matrix.numel())
            )
        if self.energy is not None:
            ranks = {
                c.name: r
                for c in candidates
                if c.smaller(r := rank_for_share(c.values, self.energy))
            }
        else:
            fixed = dense - sum(c.dense for c in candidates)
            ranks = ranks_for_budget(candidates, round((1 - target) * dense) - fixed)
        views = layer_views(pruned)
        for name, rank in ranks.items():
            u, s, vh = svds[name]
            root = s[:rank].sqrt()
            bias = views[name].bias
            install_factors(
                pruned,
                name.removesuffix("weight").removesuffix("."),
                (root[:, None] * vh[:rank], None),
                (u[:, :rank] * root, None if bias is None else bias.detach().clone()),
            )
        return PruningResult(
            pruned,
            info={
                "sparsity": weight_sparsity(pruned, dense),
                "ranks": {name.removesuffix(".weight"): r for name, r in ranks.items()},
            },
        )
