"""Grouped convolutions in structured removal: equal loss per channel group, exact compaction.

The network is defined only here (a user's own): a residual block whose branch is a grouped conv
(``groups`` = 2 or 4) -> BatchNorm -> ReLU -> a 1x1 grouped conv, added back into the stem's
stream, then a flatten into the Linear head.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models import build_from_factory, count_parameters, load_model, save_model
from ensprune.pruning import (
    METHODS,
    UnitScoreMethod,
    apply_masks,
    compact,
    dead_units,
    make_method,
    mask_units,
    unit_layers,
    unit_weight_masks,
)

GROUPS = [2, 4]
ONE = torch.zeros(1, 1, 8, 8)
# Every registered method that removes units through UnitScoreMethod (dropnet, apoz, ...).
UNIT_METHODS = sorted(n for n in METHODS.names() if issubclass(METHODS.get(n), UnitScoreMethod))


class GroupedResidualNet(nn.Module):
    """stem -> BN -> ReLU -> x + bn2(mix(relu(bn1(grouped(x))))) -> ReLU -> pool -> Linear."""

    def __init__(self, groups: int = 2, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.grouped = nn.Conv2d(width, width, 3, padding=1, groups=groups)
        self.bn1 = nn.BatchNorm2d(width)
        self.mix = nn.Conv2d(width, width, 1, groups=2)
        self.bn2 = nn.BatchNorm2d(width)
        self.head = nn.Linear(width * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        branch = self.bn2(self.mix(torch.relu(self.bn1(self.grouped(x)))))
        x = torch.relu(x + branch)
        return self.head(torch.flatten(nn.functional.max_pool2d(x, 2), 1))


def make_grouped_net(groups: int = 2) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_from_factory(f"{__name__}:GroupedResidualNet", groups=groups)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # non-trivial norms, so that a wrong channel shows in the outputs
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
    return net


def _balanced_random_masks(net: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Per group: the same number dropped from every block, at different positions per block."""
    gen = torch.Generator().manual_seed(seed)
    masks = {}
    for group in unit_layers(net, ONE):
        keep = torch.ones(group.width, dtype=torch.bool)
        blocks = group.blocks or (tuple(range(group.width)),)
        most = len(blocks[0]) - group.floor // len(blocks)  # at most down to the floor
        lose = int(torch.randint(1, most + 1, (1,), generator=gen))
        for block in blocks:
            order = torch.randperm(len(block), generator=gen)[:lose]
            keep[[block[int(i)] for i in order]] = False
        masks[group.name] = keep
    return masks


@pytest.mark.parametrize("groups", GROUPS)
def test_blocks_follow_the_channel_groups(groups: int) -> None:
    net = make_grouped_net(groups)
    found = {g.name: g for g in unit_layers(net, ONE)}
    # Two removable groups: the residual stream (stem, bn, mix's outputs, grouped's inputs) and
    # the branch's inner channels (grouped's outputs, bn1, mix's inputs). The head is protected.
    assert len(found) == 2 and "head.weight" not in found
    stream = next(g for g in found.values() if len(g.producers) == 2)
    inner = next(g for g in found.values() if len(g.producers) == 1)
    assert {p for p, _ in stream.producers} == {"stem", "mix"}
    assert inner.producers[0][0] == "grouped"
    # Both groups meet a conv with `groups` groups and mix's 2: the finer split wins.
    blocks = max(groups, 2)
    size = 16 // blocks
    expected = tuple(tuple(range(b * size, (b + 1) * size)) for b in range(blocks))
    assert stream.blocks == expected and inner.blocks == expected
    # grouped's outputs keep two per channel group (Torch-Pruning would take one per group for
    # a depthwise conv); the stream feeds mix's outputs (2 groups) likewise.
    assert inner.floor == 2 * groups and stream.floor == 4


@pytest.mark.parametrize("groups", GROUPS)
def test_compacted_equals_masked_and_round_trips(groups: int, tmp_path: Path) -> None:
    net = make_grouped_net(groups)
    net.eval()
    x = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    units = _balanced_random_masks(net, seed=groups)
    masked = copy.deepcopy(net)
    mask_units(masked, units, ONE)
    small = compact(net, units, ONE)
    small.eval()
    assert torch.allclose(small(x), masked(x), atol=1e-5)
    # The group count stays; every channel group shrinks by the same number.
    for name in ("grouped", "mix"):
        conv = getattr(small, name)
        assert conv.groups == getattr(net, name).groups
        assert conv.weight.shape[1] * conv.groups == conv.in_channels
        assert conv.out_channels % conv.groups == 0
    assert small.grouped.in_channels == int(units[_stream_name(net)].sum())
    assert count_parameters(small).total < count_parameters(net).total

    # The equivalent weight masks keep exactly what compaction keeps.
    weight_masks = unit_weight_masks(net, units, ONE)
    assert sum(int(m.sum()) for m in weight_masks.values()) == count_parameters(small).prunable
    apply_masks(masked, weight_masks)
    assert torch.allclose(small(x), masked(x), atol=1e-5)

    # Saved as factory path + shapes + weights, read back with weights_only=True.
    loaded, _ = load_model(save_model(tmp_path / "small.pt", small))
    loaded.eval()
    assert (
        loaded.grouped.groups == groups and loaded.grouped.in_channels == small.grouped.in_channels
    )
    assert torch.allclose(loaded(x), small(x), atol=1e-7)


def _stream_name(net: nn.Module) -> str:
    return next(g.name for g in unit_layers(net, ONE) if len(g.producers) == 2)


def test_unequal_loss_per_channel_group_is_refused() -> None:
    net = make_grouped_net(4)
    stream = _stream_name(net)
    keep = torch.ones(16, dtype=torch.bool)
    keep[0] = False  # one unit from the first channel group only
    with pytest.raises(SpecError, match="removes 0 to 1 units from the 4 channel groups"):
        compact(net, {stream: keep}, ONE)
    inner = next(g.name for g in unit_layers(net, ONE) if len(g.producers) == 1)
    keep = torch.tensor([True, False, False, False] * 4)  # one output per channel group
    with pytest.raises(SpecError, match="must keep at least 8"):
        compact(net, {inner: keep}, ONE)


def test_dead_units_stay_balanced_and_exact() -> None:
    net = make_grouped_net(4)
    net.eval()
    with torch.no_grad():
        net.mix.weight[:, 0] = 0.0  # mix's input 0 of each of its 2 groups: inner units 0 and 8
    keep = dead_units(net, ONE)
    inner = next(g for g in unit_layers(net, ONE) if len(g.producers) == 1)
    # Units 0 and 8 are unread, but the 4 blocks of 4 must lose alike and blocks 1 and 3 have
    # nothing dead: nothing is removed.
    assert bool(keep[inner.name].all())
    with torch.no_grad():
        net.mix.weight[:, 4] = 0.0  # now inner units 0, 4, 8, 12 are unread: one per block
    keep = dead_units(net, ONE)
    small = compact(net, keep, ONE)
    small.eval()
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(small(x), net(x), atol=1e-5)
    assert all(int(keep[inner.name][list(b)].sum()) == 3 for b in inner.blocks)


def test_a_group_covering_part_of_a_grouped_conv_stays_whole() -> None:
    class Concat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 4, 3, padding=1)
            self.b = nn.Conv2d(1, 4, 3, padding=1)
            self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
            self.head = nn.Linear(8 * 64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1)
            return self.head(torch.flatten(torch.relu(self.grouped(x)), 1))

    # a's channels fill two of grouped's input groups, b's the other two: each of a and b could
    # lose alike across its own two groups, but not without tying the other's choice.
    names = {g.name for g in unit_layers(Concat(), ONE)}
    assert names == {"grouped.weight"}


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("groups", GROUPS)
@pytest.mark.parametrize("name", UNIT_METHODS)
def test_unit_score_methods_remove_alike_from_each_channel_group(
    name: str, groups: int, scope: str, make_context, digits, tmp_path: Path
) -> None:
    net = make_grouped_net(groups)
    method = make_method(name, scope=scope, fraction=0.3, reset="none", kappa=0.0)
    steps = list(method.rounds(net, 0.6, make_context(epochs=0)))  # type: ignore[attr-defined]
    assert steps, f"{name} removed nothing"
    found = {g.name: g for g in unit_layers(net, ONE)}
    total = sum(g.width for g in found.values())
    for step in steps:
        for group_name, keep in step.keep.items():
            lost = {len(b) - int(keep[list(b)].sum()) for b in found[group_name].blocks}
            assert len(lost) == 1, (step.index, group_name, keep)
        removed = sum(int((~k).sum()) for k in step.keep.values())
        assert removed <= math.floor(0.6 * total)  # never past the target
    assert steps[-1].units_remaining < 1.0

    # The result is the masked network compacted, and it saves and loads.
    result = method.prune(net, 0.6, make_context(epochs=0))
    units = {}
    for group_name, kept in result.info["kept_units"].items():
        keep = torch.zeros(found[group_name].width, dtype=torch.bool)
        keep[kept] = True
        units[group_name] = keep
    masked = copy.deepcopy(net)
    mask_units(masked, units, ONE)
    masked.eval(), result.model.eval()
    x = torch.as_tensor(digits["x_val"][:50])
    assert torch.allclose(result.model(x), masked(x), atol=1e-5)
    assert result.model.grouped.groups == groups
    loaded, _ = load_model(save_model(tmp_path / "pruned.pt", result.model))
    loaded.eval()
    assert torch.allclose(loaded(x), result.model(x), atol=1e-6)


class Grouped1d(nn.Module):
    """The same rule on Conv1d: the 8x8 image read as 8 channels of length 8."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv1d(8, 16, 3, padding=1)
        self.grouped = nn.Conv1d(16, 16, 3, padding=1, groups=4)
        self.bn = nn.BatchNorm1d(16)
        self.head = nn.Linear(16 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x.flatten(1, 2)))
        x = torch.relu(x + self.bn(self.grouped(x)))
        return self.head(torch.flatten(x, 1))


def test_grouped_conv1d_compacts_exactly(tmp_path: Path) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_from_factory(f"{__name__}:Grouped1d")
    net.eval()
    (stream,) = unit_layers(net, ONE)  # stem + grouped's outputs and inputs, one residual group
    assert len(stream.blocks) == 4 and stream.floor == 8
    keep = torch.ones(16, dtype=torch.bool)
    keep[[0, 5, 10, 15]] = False  # one per channel group, at a different position in each
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    masked = copy.deepcopy(net)
    mask_units(masked, {stream.name: keep}, ONE)
    small = compact(net, {stream.name: keep}, ONE)
    small.eval()
    assert small.grouped.weight.shape == (12, 3, 3) and small.grouped.groups == 4
    assert torch.allclose(small(x), masked(x), atol=1e-5)
    loaded, _ = load_model(save_model(tmp_path / "small.pt", small))
    loaded.eval()
    assert torch.allclose(loaded(x), small(x), atol=1e-7)


@pytest.mark.parametrize("groups", GROUPS)
def test_same_positions_match_torch_pruning_own_rule(groups: int) -> None:
    # Torch-Pruning removes the same positions from every channel group of a grouped conv;
    # where a mask does that, its own pruning and our compaction build the same network.
    import torch_pruning as tp

    net = make_grouped_net(groups)
    net.eval()
    stream = next(g for g in unit_layers(net, ONE) if len(g.producers) == 2)
    drop = [block[0] for block in stream.blocks]
    keep = torch.ones(stream.width, dtype=torch.bool)
    keep[drop] = False
    ours = compact(net, {stream.name: keep}, ONE)
    theirs = copy.deepcopy(net)
    graph = tp.DependencyGraph().build_dependency(theirs, example_inputs=ONE)
    graph.get_pruning_group(theirs.stem, tp.prune_conv_out_channels, drop).prune()
    for key, value in ours.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[key]), key
