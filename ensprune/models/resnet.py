"""CIFAR-style residual networks (He et al. 2016, section 4.2) for any (C, H, W) input."""

from __future__ import annotations

import torch
from torch import nn

from ensprune.errors import SpecError


class BasicBlock(nn.Module):
    """Two 3x3 conv + BatchNorm layers with a skip connection; a 1x1 conv + BatchNorm projection
    on the skip path when the block changes width or resolution (the paper's option B, which keeps
    the graph free of zero-padding so channels can be removed along it)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2): stem, three stages of n basic blocks, global average pooling, classifier.

    Args:
        input_shape: (C, H, W) of one sample (1 channel for MNIST, 3 for CIFAR-10).
        num_classes: outputs of the classifier.
        depth: 6n + 2 (20, 32, 44, 56, ...).
        width: channels of the first stage (16 in the paper); the others have 2x and 4x.
    """

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, depth: int = 20, width: int = 16
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise SpecError(f"a ResNet needs an image input (C, H, W); got shape {input_shape}")
        if depth < 8 or (depth - 2) % 6:
            raise SpecError(f"ResNet depth must be 6n + 2 with n >= 1 (20, 32, 44); got {depth}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise SpecError(f"ResNet width must be an integer >= 1; got {width!r}")
        self.input_shape = tuple(int(d) for d in input_shape)
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        stages: list[nn.Module] = []
        channels = width
        for stage, out_channels in enumerate((width, 2 * width, 4 * width)):
            layers = []
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))
