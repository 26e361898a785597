"""In-training gradual pruning (Zhu & Gupta): the cubic curve, step-wise masks, a fixed budget."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from ensprune.errors import SpecError
from ensprune.models.measure import prunable_parameters
from ensprune.pruning import make_method
from ensprune.pruning._gradual import GradualPruner, cubic_sparsity


def test_cubic_curve_starts_steep_and_ends_at_the_target() -> None:
    values = [cubic_sparsity(t, 100, 0.9) for t in range(0, 101, 10)]
    assert values[0] == 0.0 and values[-1] == 0.9
    steps = [b - a for a, b in itertools.pairwise(values)]
    assert all(s > 0 for s in steps)
    assert all(a > b for a, b in itertools.pairwise(steps))  # big cuts first
    assert cubic_sparsity(500, 100, 0.9) == 0.9
    assert cubic_sparsity(0, 0, 0.5) == 0.5


def test_pruner_updates_every_k_steps_and_never_revives_a_weight(tiny_conv) -> None:
    net = tiny_conv(0)
    gen = torch.Generator().manual_seed(0)
    pruner = GradualPruner(
        lambda m: {
            n: torch.rand(p.shape, generator=gen) for n, p in prunable_parameters(m).items()
        },
        target=0.8,
        ramp_steps=30,
        every=7,
    )
    previous = None
    sparsities = []
    for _ in range(40):
        with torch.no_grad():  # an "optimiser step" that would revive pruned weights
            for p in prunable_parameters(net).values():
                p.add_(0.01)
        pruner.after_step(net)
        sparsities.append(pruner.sparsity)
        if previous is not None:
            assert all(bool((pruner.masks[n] <= previous[n]).all()) for n in previous)
        previous = dict(pruner.masks) if pruner.masks else None
    assert pruner.updates == 5  # steps 7, 14, 21, 28 and the end of the ramp (30)
    assert sparsities == sorted(sparsities) and sparsities[-1] == 0.8
    for name, p in prunable_parameters(net).items():
        assert not bool(p[~pruner.masks[name]].any())


def test_gradual_schedule_reaches_the_target_and_keeps_the_last_weights(
    trained_conv, make_context
) -> None:
    net, _ = trained_conv
    context = make_context(epochs=3)
    context = dataclasses.replace(
        context, finetune=dataclasses.replace(context.finetune, lr_schedule="cosine")
    )
    method = make_method("lamp", schedule="gradual", ramp=0.5, prune_every=2)
    result = method.prune(net, 0.75, context)
    assert result.info["sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert result.info["finetune_epochs"] == 3  # a fixed budget: no early stopping
    assert result.info["mask_updates"] >= 3
    weights = prunable_parameters(result.model)
    for name, mask in result.masks.items():
        assert not bool(weights[name][~mask].any())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert zeros / sum(w.numel() for w in weights.values()) >= 0.75 - 1e-3
    assert method.params()["ramp"] == 0.5 and method.params()["prune_every"] == 2


def test_gradual_without_a_budget_is_one_shot(trained_conv, make_context) -> None:
    net, _ = trained_conv
    gradual = make_method("magnitude", schedule="gradual").prune(net, 0.6, make_context(epochs=0))
    oneshot = make_method("magnitude", schedule="oneshot").prune(net, 0.6, make_context(epochs=0))
    assert gradual.info["mask_updates"] == 1
    assert all(torch.equal(gradual.masks[n], oneshot.masks[n]) for n in oneshot.masks)


def test_gradual_knobs_are_validated() -> None:
    with pytest.raises(SpecError, match="ramp must be a number in"):
        make_method("lamp", schedule="gradual", ramp=1.5)
    with pytest.raises(SpecError, match="prune_every must be an integer >= 1"):
        make_method("lamp", schedule="gradual", prune_every=0)
    with pytest.raises(SpecError, match="needs a round-based schedule"):
        make_method("lamp", schedule="gradual", rewind="init")
    with pytest.raises(SpecError, match="cubic, iterative, oneshot, gradual"):
        make_method("lamp", schedule="weekly")
    # round-based methods keep their parameters (study fingerprints) unchanged
    assert "ramp" not in make_method("lamp").params()
