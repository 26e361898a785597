"""Which layers a method prunes: qualified names, include/exclude patterns, the protected head."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models import build_seeded, prunable_parameters
from ensprune.pruning import LayerSelection, make_method, unit_layers
from ensprune.pruning._layers import head_name


class Conv1dNet(nn.Module):
    """A sequence model: Conv1d layers are prunable too."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 6, 3, padding=1)
        self.norm = nn.BatchNorm1d(6)
        self.out = nn.Linear(6 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.conv(x.flatten(1).unsqueeze(1))))
        return self.out(x.flatten(1))


def test_masks_are_keyed_by_qualified_parameter_names() -> None:
    net = build_seeded("resnet20", (1, 8, 8), 10, seed=0, width=2)
    names = list(prunable_parameters(net))
    assert names[:3] == ["conv1.weight", "layer1.0.conv1.weight", "layer1.0.conv2.weight"]
    assert "layer2.0.shortcut.0.weight" in names and names[-1] == "fc.weight"
    assert head_name(net, torch.zeros(1, 1, 8, 8)) == "fc.weight"


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (LayerSelection(), None),
        (LayerSelection(include=("layer3.*",)), lambda n: n.startswith("layer3.")),
        (
            LayerSelection(exclude=("*shortcut*", "fc")),
            lambda n: "shortcut" not in n and n != "fc.weight",
        ),
        (
            LayerSelection(include=("layer1.*", "fc.weight"), exclude=("*.conv2",)),
            lambda n: (n.startswith("layer1.") and "conv2" not in n) or n == "fc.weight",
        ),
    ],
)
def test_weight_methods_prune_only_the_selected_layers(selection, expected, make_context) -> None:
    net = build_seeded("resnet20", (1, 8, 8), 10, seed=0, width=2)
    context = dataclasses.replace(make_context(epochs=0), layers=selection)
    result = make_method("magnitude", schedule="oneshot").prune(net, 0.5, context)
    everything = list(prunable_parameters(net))
    chosen = everything if expected is None else [n for n in everything if expected(n)]
    assert sorted(result.masks) == sorted(chosen)
    pruned = prunable_parameters(result.model)
    for name in everything:
        zeros = int((pruned[name] == 0).sum())
        assert (zeros > 0) == (name in chosen), name
    removed = sum(int((~m).sum()) for m in result.masks.values())
    assert removed / sum(m.numel() for m in result.masks.values()) == pytest.approx(0.5, abs=0.01)


def test_patterns_that_select_nothing_name_the_layers(make_context) -> None:
    net = build_seeded("model_a", (1, 8, 8), 10, seed=0)
    context = dataclasses.replace(make_context(epochs=0), layers=LayerSelection(include=("conv*",)))
    with pytest.raises(SpecError, match=r"select no prunable layer; prunable layers: 1\.weight"):
        make_method("lamp").prune(net, 0.5, context)
    with pytest.raises(SpecError, match="non-empty strings"):
        LayerSelection(exclude=("",))


def test_structured_methods_keep_excluded_layers_and_the_head(make_context) -> None:
    net = build_seeded("lenet300", (1, 8, 8), 10, seed=0)
    context = dataclasses.replace(
        make_context(epochs=0), layers=LayerSelection(exclude=("1",))
    )  # the first hidden layer: only the second may lose units
    result = make_method("dropnet", reset="none", kappa=0.0).prune(net, 0.5, context)
    assert list(result.info["units_per_layer"]) == ["3.weight"]
    assert result.model[1].out_features == 300 and result.model[3].out_features < 100
    assert result.model[5].out_features == 10  # the head is never shrunk


def test_the_head_can_be_unprotected() -> None:
    net = build_seeded("model_a", (1, 8, 8), 10, seed=0)
    assert [g.name for g in unit_layers(net)] == ["1.weight", "3.weight"]
    free = unit_layers(net, selection=LayerSelection(protect_head=False))
    assert [g.name for g in free] == ["1.weight", "3.weight", "5.weight"]


def test_conv1d_layers_are_prunable(make_context) -> None:
    torch.manual_seed(0)
    net = Conv1dNet()
    assert list(prunable_parameters(net)) == ["conv.weight", "out.weight"]
    result = make_method("magnitude", schedule="oneshot").prune(net, 0.5, make_context(epochs=0))
    assert set(result.masks) == {"conv.weight", "out.weight"}
    groups = unit_layers(net, torch.zeros(1, 1, 8, 8))
    assert [(g.name, g.width) for g in groups] == [("conv.weight", 6)]
