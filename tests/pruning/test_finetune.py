"""Fine-tuning: masks stay enforced; annealing stays within the epoch budget."""

from __future__ import annotations

import pytest
import torch

from ensprune.errors import SpecError
from ensprune.models import TrainConfig, build_seeded, prunable_parameters
from ensprune.pruning import apply_masks, finetune


def _masked_net() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    net = build_seeded("model_a", (1, 8, 8), 10, seed=0)
    gen = torch.Generator().manual_seed(0)
    masks = {
        n: torch.rand(p.shape, generator=gen) > 0.7 for n, p in prunable_parameters(net).items()
    }
    apply_masks(net, masks)
    return net, masks


@pytest.mark.parametrize("anneal", [None, 0.1])
def test_masked_weights_stay_zero_and_budget_is_kept(anneal, make_context) -> None:
    net, masks = _masked_net()
    context = make_context(epochs=0)
    config = TrainConfig(
        epochs=6, batch_size=64, lr=3e-3, patience=0, weight_decay=0.1, optimizer="adamw"
    )
    history = finetune(net, masks, context, config, anneal=anneal)
    assert history.epochs_run == 6  # patience 0: both stages run their full share
    for name, p in prunable_parameters(net).items():
        assert not p[~masks[name]].any()


def test_anneal_is_validated(make_context) -> None:
    net, masks = _masked_net()
    with pytest.raises(SpecError):
        finetune(net, masks, make_context(epochs=2), anneal=0.0)
