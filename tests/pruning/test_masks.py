"""Scores to masks: global and per-layer thresholds, caps, already-pruned weights."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ensprune.errors import SpecError
from ensprune.pruning import mask_sparsity, masks_from_scores
from ensprune.pruning._masks import layer_cap


def _scores() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    # the small layer's scores are all lower: a plain global threshold would empty it
    return {
        "a.weight": torch.rand(10, 10, generator=gen) + 1.0,
        "b.weight": torch.rand(4, generator=gen),
    }


def test_global_threshold_removes_the_lowest_overall() -> None:
    scores = {"a": torch.tensor([1.0, 5.0, 3.0]), "b": torch.tensor([2.0, 4.0, 6.0])}
    masks = masks_from_scores(scores, 0.5, "global", max_layer_sparsity=1.0)
    assert masks["a"].tolist() == [False, True, False]
    assert masks["b"].tolist() == [False, True, True]


def test_global_cap_keeps_every_layer_alive() -> None:
    masks = masks_from_scores(_scores(), 0.5, "global", max_layer_sparsity=0.75)
    assert int(masks["b.weight"].sum()) == 1  # capped at 75 % of 4 weights
    assert mask_sparsity(masks) == pytest.approx(0.5, abs=0.01)  # the rest comes from layer a


def test_global_never_empties_a_layer_even_without_cap() -> None:
    masks = masks_from_scores(_scores(), 0.9, "global", max_layer_sparsity=1.0)
    assert all(int(m.sum()) >= 1 for m in masks.values())


def test_layer_scope_prunes_each_layer_alike() -> None:
    masks = masks_from_scores(_scores(), 0.5, "layer")
    assert int((~masks["a.weight"]).sum()) == 50
    assert int((~masks["b.weight"]).sum()) == 2


def test_minus_infinity_goes_first() -> None:
    scores = {"a": torch.tensor([5.0, -math.inf, 3.0, 4.0])}
    masks = masks_from_scores(scores, 0.5, "layer")
    assert masks["a"].tolist() == [True, False, False, True]


def test_ties_are_deterministic() -> None:
    scores = {"a": torch.zeros(6), "b": torch.zeros(6)}
    first = masks_from_scores(scores, 0.5, "global")
    second = masks_from_scores(scores, 0.5, "global")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert mask_sparsity(first) == pytest.approx(0.5)


def test_bad_scope_and_cap_raise() -> None:
    with pytest.raises(SpecError):
        masks_from_scores(_scores(), 0.5, "network")
    with pytest.raises(SpecError):
        masks_from_scores(_scores(), 0.5, "global", max_layer_sparsity=1.5)


@settings(max_examples=50, deadline=None)  # the CPU is shared: no timing flakes
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    sparsity=st.floats(0.0, 0.99),
    cap=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_global_masks_prune_lowest_first_within_caps(
    sizes: list[int], sparsity: float, cap: float, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    # integer-valued scores force ties across layers
    scores = {
        f"l{i}": torch.randint(0, 5, (n,), generator=gen).float() for i, n in enumerate(sizes)
    }
    masks = masks_from_scores(scores, sparsity, "global", max_layer_sparsity=cap)
    quotas = {k: min(math.floor(cap * s.numel() + 1e-9), s.numel() - 1) for k, s in scores.items()}
    pruned = {k: int((~m).sum()) for k, m in masks.items()}
    total = sum(s.numel() for s in scores.values())
    assert sum(pruned.values()) == min(round(sparsity * total), sum(quotas.values()))
    assert all(pruned[k] <= quotas[k] for k in scores)
    highest_pruned = max(
        (float(s[~masks[k]].max()) for k, s in scores.items() if pruned[k]), default=-1
    )
    for k, s in scores.items():
        if pruned[k] < quotas[k] and bool(masks[k].any()):
            assert float(s[masks[k]].min()) >= highest_pruned


def test_auto_cap_follows_the_target() -> None:
    assert layer_cap(0.99, None) == pytest.approx(0.999)
    assert layer_cap(0.5, None) == pytest.approx(0.95)
    assert layer_cap(0.99, 0.9) == 0.9
    # A fixed 0.99 cap at a 99 % target would force both layers to 99 %; the auto cap lets the
    # global ranking spare the small layer of large weights.
    scores = {
        "big": torch.rand(1000, generator=torch.Generator().manual_seed(0)),
        "small": torch.full((10,), 5.0),
    }
    masks = masks_from_scores(scores, 0.99, "global")
    assert int(masks["small"].sum()) == 9 and int(masks["big"].sum()) == 1
