"""Compaction: a physically smaller network with the masked network's outputs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models import (
    build_from_factory,
    build_from_layers,
    build_seeded,
    count_macs,
    count_parameters,
    load_model,
    prunable_parameters,
    save_model,
)
from ensprune.pruning import (
    apply_masks,
    compact,
    dead_units,
    mask_units,
    unit_layers,
    unit_weight_masks,
)
from ensprune.pruning._layers import LayerSelection

BN1D_MLP = [
    {"type": "flatten"},
    {"type": "linear", "in": 64, "out": 32},
    {"type": "batchnorm1d", "features": 32},
    {"type": "relu"},
    {"type": "dropout", "p": 0.5},
    {"type": "linear", "in": 32, "out": 16},
    {"type": "relu"},
    {"type": "linear", "in": 16, "out": 10},
]


def _randomise_norms(net: nn.Module) -> None:
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen))


def _random_unit_masks(
    net: nn.Module, example: torch.Tensor | None = None, seed: int = 1
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    masks = {}
    for u in unit_layers(net, example):
        keep = torch.rand(u.width, generator=gen) > 0.5
        keep[0] = True
        if u.blocks:  # grouped convs: the same number from each block, down to the floor
            lose = min(len(u.blocks[0]) // 2, len(u.blocks[0]) - u.floor // len(u.blocks))
            keep = torch.ones(u.width, dtype=torch.bool)
            for block in u.blocks:
                order = torch.randperm(len(block), generator=gen)[:lose]
                keep[[block[int(i)] for i in order]] = False
        masks[u.name] = keep
    return masks


class UserNet(nn.Module):
    """A user's graph: skip connection, concatenation, BatchNorm, depthwise and grouped convs."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.side = nn.Conv2d(width, width // 2, 1)
        self.depthwise = nn.Conv2d(
            width + width // 2, width + width // 2, 3, padding=1, groups=width + width // 2
        )
        self.grouped = nn.Conv2d(width + width // 2, 8, 3, padding=1, groups=2)
        self.mixer = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6 * 16, 12)
        self.head = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(x + self.body(x))
        x = torch.cat([x, torch.relu(self.side(x))], dim=1)
        x = torch.relu(self.grouped(torch.relu(self.depthwise(x))))
        x = torch.relu(self.mixer(x))
        x = nn.functional.max_pool2d(x, 2)
        return self.head(torch.relu(self.fc(torch.flatten(x, 1))))


def make_user_net() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_from_factory(f"{__name__}:UserNet")


NETS = {
    "resnet20": lambda: build_seeded("resnet20", (1, 8, 8), 10, seed=0, width=4),
    "user_graph": make_user_net,
    "mlp": lambda: build_seeded("model_a", (1, 8, 8), 10, seed=0),
    "conv": lambda: build_seeded("model_b", (1, 8, 8), 10, seed=0),
    "conv_to_linear": lambda: build_seeded("lenet5", (1, 8, 8), 10, seed=0),
    "batchnorm2d": lambda: build_seeded("vgg_small", (1, 8, 8), 10, seed=0),
    "batchnorm1d": lambda: build_from_layers(BN1D_MLP, (1, 8, 8)),
}


@pytest.mark.parametrize("kind", [*sorted(NETS), "conv_bn_linear"])
def test_compacted_equals_masked(kind: str, tiny_conv, tmp_path: Path) -> None:
    net = tiny_conv(0) if kind == "conv_bn_linear" else NETS[kind]()
    _randomise_norms(net)
    net.eval()
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    one = x[:1]  # user networks declare no input shape: tracing takes an example
    units = _random_unit_masks(net, one)
    masked = copy.deepcopy(net)
    mask_units(masked, units, one)
    small = compact(net, units, one)
    small.eval()
    assert torch.allclose(small(x), masked(x), atol=1e-5)
    assert [u.width for u in unit_layers(small, one)] == [int(m.sum()) for m in units.values()]
    assert count_parameters(small).total < count_parameters(net).total
    assert count_macs(small, (1, 8, 8)) < count_macs(net, (1, 8, 8))

    # The equivalent weight masks (rows and the next layer's columns) keep what compaction keeps.
    weight_masks = unit_weight_masks(net, units, one)
    assert sum(int(m.sum()) for m in weight_masks.values()) == count_parameters(small).prunable
    apply_masks(masked, weight_masks)
    assert torch.allclose(small(x), masked(x), atol=1e-5)

    # Round trip: architecture + weights, torch.load(weights_only=True).
    loaded, _ = load_model(save_model(tmp_path / "small.pt", small))
    loaded.eval()
    assert getattr(loaded, "layers", None) == getattr(small, "layers", None)
    assert torch.allclose(loaded(x), small(x), atol=1e-7)


def test_flatten_boundary_removes_whole_channels(tiny_conv) -> None:
    net = tiny_conv(0)
    keep = torch.zeros(8, dtype=torch.bool)
    keep[[1, 6]] = True
    small = compact(net, {"0.weight": keep})
    # 2 channels x 4 x 4 positions feed the first linear layer, in the original order.
    assert small.layers[5]["in"] == 32
    expected = torch.cat([net[5].weight[:, 16:32], net[5].weight[:, 96:112]], dim=1)
    assert torch.equal(small[5].weight, expected)


def test_unmasked_layers_and_input_are_unchanged(tiny_conv) -> None:
    net = tiny_conv(0)
    before = copy.deepcopy(net.state_dict())
    small = compact(net, {})
    assert small.layers == net.layers
    assert all(torch.equal(v, small.state_dict()[k]) for k, v in before.items())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_output_layer_is_never_a_unit_layer() -> None:
    net = build_seeded("lenet300", (1, 8, 8), 10, seed=0)
    assert [u.width for u in unit_layers(net)] == [300, 100]
    with pytest.raises(SpecError, match="names no removable unit group"):
        compact(net, {"5.weight": torch.ones(10, dtype=torch.bool)})


@pytest.mark.parametrize(
    "mask",
    [torch.zeros(40, dtype=torch.bool), torch.ones(39, dtype=torch.bool)],
    ids=["empty", "short"],
)
def test_bad_unit_masks_raise(mask: torch.Tensor) -> None:
    net = build_seeded("model_a", (1, 8, 8), 10, seed=0)
    with pytest.raises(SpecError):
        compact(net, {"1.weight": mask})


@pytest.mark.parametrize("kind", ["mlp", "conv_to_linear", "batchnorm2d"])
def test_dead_units_are_removed_exactly(kind: str) -> None:
    net = NETS[kind]()
    _randomise_norms(net)
    net.eval()
    gen = torch.Generator().manual_seed(3)
    # Sparse downstream weights: zero whole input columns / channels at random.
    with torch.no_grad():
        for p in list(prunable_parameters(net).values())[1:]:
            dead = torch.rand(p.shape[1], generator=gen) < 0.4
            p[:, dead] = 0.0
    keep = dead_units(net)
    assert any(not bool(k.all()) for k in keep.values())
    small = compact(net, keep)
    small.eval()
    x = torch.randn(16, 1, 8, 8, generator=gen)
    assert torch.allclose(small(x), net(x), atol=1e-5)
    again = dead_units(small)
    assert all(bool(k.all()) for k in again.values())  # nothing left to remove


def test_resnet_groups_follow_the_residual_streams() -> None:
    net = NETS["resnet20"]()
    groups = {g.name: g for g in unit_layers(net)}
    # Every block's first conv is a group of its own; each stage's residual stream is one group
    # (stem or projection, every block's second conv); the classifier head is protected.
    assert "fc.weight" not in groups
    inner = [n for n in groups if n.endswith("conv1.weight") and n != "conv1.weight"]
    assert len(inner) == 9
    streams = [g for g in groups.values() if len(g.producers) > 1]
    assert len(streams) == 3
    first = {p for p, _ in streams[0].producers}
    assert first == {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"}


def test_grouped_convolutions_and_the_head_can_be_unprotected() -> None:
    net = make_user_net()
    one = torch.zeros(1, 1, 8, 8)
    groups = {g.name: g for g in unit_layers(net, one)}
    # The depthwise conv ties the concatenation's 12 channels (stem, body, side) into one group
    # that fills the grouped conv's inputs: its two channel groups lose alike. The grouped
    # conv's outputs keep two per channel group.
    names = set(groups)
    assert names == {"depthwise.weight", "grouped.weight", "mixer.weight", "fc.weight"}
    assert groups["depthwise.weight"].blocks == (tuple(range(6)), tuple(range(6, 12)))
    assert groups["grouped.weight"].blocks == ((0, 1, 2, 3), (4, 5, 6, 7))
    assert groups["grouped.weight"].floor == 4 and groups["mixer.weight"].blocks == ()
    unprotected = {g.name for g in unit_layers(net, one, LayerSelection(protect_head=False))}
    assert unprotected == names | {"head.weight"}
    narrowed = {g.name for g in unit_layers(net, one, LayerSelection(exclude=("fc",)))}
    assert narrowed == names - {"fc.weight"}


def test_dead_units_cascade() -> None:
    net = build_seeded("model_a", (1, 8, 8), 10, seed=0)
    with torch.no_grad():
        net[5].weight[:, :30] = 0.0  # units 0..29 of the second hidden layer are never read
        net[3].weight[30:, 7] = 0.0  # unit 7 of the first is read only by those
    keep = dead_units(net)
    assert int(keep["3.weight"].sum()) == 10
    assert not bool(keep["1.weight"][7]) and int(keep["1.weight"].sum()) == 39
