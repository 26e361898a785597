"""Rewinding (lottery-ticket style): survivors restart from θ₀ or an early checkpoint."""

from __future__ import annotations

import pytest
import torch

from ensprune.errors import SpecError
from ensprune.pruning import make_method


@pytest.mark.parametrize("rewind", ["init", "early"])
def test_survivors_are_rewound(rewind: str, trained_conv, make_context) -> None:
    net, init = trained_conv
    early = {k: v + 0.5 if v.is_floating_point() else v for k, v in init.items()}
    context = make_context(epochs=0, initial_state=init, early_state=early)
    result = make_method("magnitude", schedule="oneshot", rewind=rewind).prune(net, 0.7, context)
    target = init if rewind == "init" else early
    state = result.model.state_dict()
    for name, mask in result.masks.items():
        assert torch.equal(state[name], target[name] * mask)
    # masks come from the trained weights, not from the rewound ones
    trained = net.state_dict()["5.weight"].abs()
    kept = trained[result.masks["5.weight"]].min()
    dropped = trained[~result.masks["5.weight"]].max()
    assert kept >= dropped


def test_rewinding_without_a_checkpoint_raises(trained_conv, make_context) -> None:
    net, _ = trained_conv
    with pytest.raises(SpecError, match="initial_state"):
        make_method("lamp", rewind="init").prune(net, 0.5, make_context(epochs=0))
    with pytest.raises(SpecError, match="early_state"):
        make_method("lamp", rewind="early").prune(net, 0.5, make_context(epochs=0))


def test_iterative_rounds_keep_pruned_weights_pruned(trained_conv, make_context) -> None:
    net, _ = trained_conv
    method = make_method("random", schedule="iterative", rounds=3)
    result = method.prune(net, 0.8, make_context(epochs=3))
    assert result.info["rounds"] == 3
    assert result.info["round_sparsities"][-1] == 0.8
    assert result.info["sparsity"] == pytest.approx(0.8, abs=1e-3)
