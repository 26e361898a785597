"""ResNet-20 and Model C: the architectures of the papers, for 1- and 3-channel inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ensprune.models import build_model, count_parameters


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_resnet20_is_three_stages_of_three_residual_blocks(shape: tuple[int, ...]) -> None:
    net = build_model("resnet20", shape, 10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    # 19 3x3 convs + the fc = 20 weighted layers, plus 2 projection shortcuts (option B).
    assert sum(c.kernel_size == (3, 3) for c in convs) == 19
    assert sum(c.kernel_size == (1, 1) for c in convs) == 2
    assert len(norms) == 21 and convs[0].in_channels == shape[0]
    assert [len(s) for s in (net.layer1, net.layer2, net.layer3)] == [3, 3, 3]
    assert [s[0].conv1.out_channels for s in (net.layer1, net.layer2, net.layer3)] == [16, 32, 64]
    assert net(torch.zeros(2, *shape)).shape == (2, 10)
    if shape[0] == 3:  # He et al.: 0.27 M parameters (ours adds 2 projection shortcuts)
        assert count_parameters(net).total == 272_474


def test_resnet20_width_gives_a_narrower_variant() -> None:
    net = build_model("resnet20", (1, 28, 28), 10, width=8)
    assert [s[0].conv1.out_channels for s in (net.layer1, net.layer2, net.layer3)] == [8, 16, 32]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_model_c_is_a_small_vgg(shape: tuple[int, ...]) -> None:
    net = build_model("model_c", shape, 10)
    widths = [m.out_channels for m in net if isinstance(m, nn.Conv2d)]
    dense = [m.out_features for m in net if isinstance(m, nn.Linear)]
    pools = sum(isinstance(m, nn.MaxPool2d) for m in net)
    assert widths == [64, 64, 128, 128] and dense == [256, 10] and pools == 2
    first = next(m for m in net if isinstance(m, nn.Linear))
    assert first.in_features == 128 * (shape[1] // 4) * (shape[2] // 4)
