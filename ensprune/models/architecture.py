"""Models as plain layer lists, so any pruned or compacted variant can be saved and rebuilt.

Every zoo model is an ``nn.Sequential`` built from a list of JSON-able layer dicts. Compaction and
factorisation edit that list (fewer units, a Linear split in two), and a checkpoint stores the list
next to the state_dict, which keeps ``torch.load(weights_only=True)`` sufficient to rebuild it.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from ensprune.errors import CheckpointError, SpecError

LayerSpec = dict[str, Any]


class SequentialNet(nn.Sequential):
    """An ``nn.Sequential`` that remembers the layer list it was built from."""

    def __init__(self, layers: list[LayerSpec], input_shape: tuple[int, ...]) -> None:
        super().__init__(*(_build_layer(spec) for spec in layers))
        self.layers: list[LayerSpec] = [dict(spec) for spec in layers]
        self.input_shape = tuple(int(d) for d in input_shape)


def _build_layer(spec: LayerSpec) -> nn.Module:
    kind = spec.get("type")
    if kind == "linear":
        return nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True))
    if kind == "conv2d":
        return nn.Conv2d(
            spec["in"],
            spec["out"],
            spec["kernel"],
            stride=spec.get("stride", 1),
            padding=spec.get("padding", 0),
            bias=spec.get("bias", True),
        )
    if kind == "relu":
        return nn.ReLU()
    if kind == "maxpool2d":
        return nn.MaxPool2d(spec["kernel"])
    if kind == "avgpool2d":
        return nn.AvgPool2d(spec["kernel"])
    if kind == "flatten":
        return nn.Flatten()
    if kind == "batchnorm2d":
        return nn.BatchNorm2d(spec["features"])
    if kind == "batchnorm1d":
        return nn.BatchNorm1d(spec["features"])
    if kind == "dropout":
        return nn.Dropout(spec.get("p", 0.5))
    raise CheckpointError(f"unknown layer type {kind!r} in a model description")


def build_from_layers(layers: list[LayerSpec], input_shape: tuple[int, ...]) -> SequentialNet:
    """Build a :class:`SequentialNet` from its layer list."""
    return SequentialNet(layers, input_shape)


class LayerListBuilder:
    """Helps zoo functions write layer lists while tracking the running tensor shape."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.shape: tuple[int, ...] = tuple(int(d) for d in input_shape)
        self.layers: list[LayerSpec] = []

    def conv(
        self, out: int, kernel: int, padding: int = 0, relu: bool = True, bn: bool = False
    ) -> None:
        if len(self.shape) != 3:
            raise SpecError(f"a convolution needs an image input (C, H, W); got shape {self.shape}")
        c, h, w = self.shape
        self.layers.append(
            {"type": "conv2d", "in": c, "out": out, "kernel": kernel, "padding": padding}
        )
        h, w = h + 2 * padding - kernel + 1, w + 2 * padding - kernel + 1
        if h < 1 or w < 1:
            raise SpecError(f"input {self.shape} is too small for a {kernel}x{kernel} convolution")
        self.shape = (out, h, w)
        if bn:
            self.layers.append({"type": "batchnorm2d", "features": out})
        if relu:
            self.layers.append({"type": "relu"})

    def pool(self, kernel: int = 2) -> None:
        c, h, w = self.shape
        if h // kernel < 1 or w // kernel < 1:
            return  # small inputs (e.g. 8x8 digits) skip pooling rather than collapse
        self.layers.append({"type": "maxpool2d", "kernel": kernel})
        self.shape = (c, h // kernel, w // kernel)

    def flatten(self) -> None:
        if len(self.shape) > 1:
            self.layers.append({"type": "flatten"})
            self.shape = (math.prod(self.shape),)

    def linear(self, out: int, relu: bool = True) -> None:
        self.flatten()
        self.layers.append({"type": "linear", "in": self.shape[0], "out": out})
        self.shape = (out,)
        if relu:
            self.layers.append({"type": "relu"})
