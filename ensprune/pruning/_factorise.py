"""Shared by the matrix methods: rank allocation under a parameter budget, factor installation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ensprune.models.edits import apply_edit
from ensprune.models.measure import count_parameters


@dataclass(frozen=True)
class Candidate:
    """A layer that may be factorised: ``rank`` directions of ``out + d`` weights each.

    Attributes:
        name: the module's qualified name.
        values: importance of each direction, descending (its share of energy or variance).
        width: weights one direction costs (``out + d``).
        dense: the layer's weights as it is (``out · d``).
    """

    name: str
    values: torch.Tensor
    width: int
    dense: int

    def cost(self, rank: int) -> int:
        """Prunable weights at ``rank`` (the layer stays dense where that is not smaller)."""
        return min(rank * self.width, self.dense)

    def smaller(self, rank: int) -> bool:
        return rank * self.width < self.dense


def ranks_for_budget(candidates: list[Candidate], budget: int) -> dict[str, int]:
    """Ranks that keep the most important directions network-wide within ``budget`` weights.

    Every layer keeps at least one direction; directions are added in descending importance
    while the total cost stays within the budget (directions that do not fit are skipped).
    """
    ranks = {c.name: 1 for c in candidates}
    total = sum(c.cost(1) for c in candidates)
    order = sorted(
        ((float(v), c) for c in candidates for v in c.values[1:]),
        key=lambda item: -item[0],
    )
    by_name = {c.name: c for c in candidates}
    for _, cand in order:
        r = ranks[cand.name]
        if r >= len(cand.values):
            continue
        extra = cand.cost(r + 1) - cand.cost(r)
        if total + extra <= budget:
            ranks[cand.name] = r + 1
            total += extra
    return {name: r for name, r in ranks.items() if by_name[name].smaller(r)}


def rank_for_share(values: torch.Tensor, share: float) -> int:
    """Smallest rank whose leading ``values`` (descending, non-negative) reach ``share``."""
    total = float(values.sum())
    if total <= 0:
        return 1
    cumulative = torch.cumsum(values, 0) / total
    return int(torch.searchsorted(cumulative, torch.tensor(share, dtype=cumulative.dtype))) + 1


@torch.no_grad()
def install_factors(
    model: nn.Module,
    name: str,
    first: tuple[torch.Tensor, torch.Tensor | None],
    second: tuple[torch.Tensor, torch.Tensor | None],
) -> None:
    """Replace module ``name`` by two factors (a recorded ``factorise`` edit) and set them.

    Args:
        first, second: (weight matrix, bias) of each factor; the first's matrix is
            ``(rank, in · kernel)``, the second's ``(out, rank)``.
    """
    old_weight = model.get_submodule(name).weight
    assert isinstance(old_weight, torch.Tensor)
    dtype = old_weight.dtype
    rank = first[0].shape[0]
    new = apply_edit(
        model,
        {
            "op": "factorise",
            "name": name,
            "rank": rank,
            "first_bias": first[1] is not None,
            "second_bias": second[1] is not None,
        },
    )
    assert isinstance(new, nn.Sequential)
    for module, (weight, bias) in zip(new, (first, second), strict=True):
        assert isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d))
        module.weight.copy_(weight.reshape(module.weight.shape).to(dtype))
        if bias is not None:
            assert module.bias is not None
            module.bias.copy_(bias.to(dtype))


def weight_sparsity(model: nn.Module, dense_prunable: int) -> float:
    """Share of the dense network's prunable weights no longer there (or zero)."""
    return 1.0 - count_parameters(model).prunable_nonzero / dense_prunable
