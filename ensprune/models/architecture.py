"""Models as plain layer lists, so any pruned or compacted variant can be saved and rebuilt.

Every zoo model is an ``nn.Sequential`` built from a list of JSON-able layer dicts. Compaction and
factorisation edit that list (fewer units, a Linear split in two), and a checkpoint stores the list
next to the state_dict, which keeps ``torch.load(weights_only=True)`` sufficient to rebuild it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ensprune._registry import Registry
from ensprune.errors import CheckpointError, SpecError

LayerSpec = dict[str, Any]


class SequentialNet(nn.Sequential):
    """An ``nn.Sequential`` built from a layer list; ``layers`` describes its modules as they are.

    ``layers`` is read back from the modules, so a network whose layers were pruned in place
    (fewer units, fewer channels) still describes itself exactly.
    """

    def __init__(self, layers: list[LayerSpec], input_shape: tuple[int, ...]) -> None:
        super().__init__(*(build_layer(spec) for spec in layers))
        self.input_shape = tuple(int(d) for d in input_shape)

    @property
    def layers(self) -> list[LayerSpec]:
        """The JSON-able layer list that rebuilds this network's architecture."""
        return [describe_layer(module) for module in self]


@dataclass(frozen=True)
class LayerKind:
    """How one layer type is built from its description and described from a module.

    Attributes:
        module_type: the torch module class this kind builds.
        build: ``spec -> module``.
        describe: ``module -> spec`` (without ``"type"``, which the registry adds).
    """

    module_type: type[nn.Module]
    build: Callable[[LayerSpec], nn.Module]
    describe: Callable[[Any], LayerSpec]


LAYERS: Registry[LayerKind] = Registry("layer type")


def _register(name: str, kind: LayerKind) -> None:
    LAYERS.register(name)(kind)


_register(
    "linear",
    LayerKind(
        nn.Linear,
        lambda s: nn.Linear(s["in"], s["out"], bias=s.get("bias", True)),
        lambda m: {"in": m.in_features, "out": m.out_features, "bias": m.bias is not None},
    ),
)
_register(
    "conv2d",
    LayerKind(
        nn.Conv2d,
        lambda s: nn.Conv2d(
            s["in"],
            s["out"],
            s["kernel"],
            stride=s.get("stride", 1),
            padding=s.get("padding", 0),
            groups=s.get("groups", 1),
            bias=s.get("bias", True),
        ),
        lambda m: {
            "in": m.in_channels,
            "out": m.out_channels,
            "kernel": _single(m.kernel_size),
            "stride": _single(m.stride),
            "padding": _single(m.padding),
            "groups": m.groups,
            "bias": m.bias is not None,
        },
    ),
)
_register("relu", LayerKind(nn.ReLU, lambda s: nn.ReLU(), lambda m: {}))
_register(
    "maxpool2d",
    LayerKind(
        nn.MaxPool2d,
        lambda s: nn.MaxPool2d(s["kernel"]),
        lambda m: {"kernel": _single(m.kernel_size)},
    ),
)
_register(
    "avgpool2d",
    LayerKind(
        nn.AvgPool2d,
        lambda s: nn.AvgPool2d(s["kernel"]),
        lambda m: {"kernel": _single(m.kernel_size)},
    ),
)
_register("flatten", LayerKind(nn.Flatten, lambda s: nn.Flatten(), lambda m: {}))
_register(
    "batchnorm2d",
    LayerKind(
        nn.BatchNorm2d,
        lambda s: nn.BatchNorm2d(s["features"]),
        lambda m: {"features": m.num_features},
    ),
)
_register(
    "batchnorm1d",
    LayerKind(
        nn.BatchNorm1d,
        lambda s: nn.BatchNorm1d(s["features"]),
        lambda m: {"features": m.num_features},
    ),
)
_register(
    "dropout",
    LayerKind(nn.Dropout, lambda s: nn.Dropout(s.get("p", 0.5)), lambda m: {"p": m.p}),
)


def _single(value: Any) -> Any:
    """``(3, 3)`` -> ``3``: square kernels, strides and paddings are written as one number."""
    if isinstance(value, tuple) and len(set(value)) == 1:
        return int(value[0])
    return list(value) if isinstance(value, tuple) else value


def build_layer(spec: LayerSpec) -> nn.Module:
    """The module a layer description stands for (``{"type": "linear", "in": 4, "out": 2}``)."""
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in LAYERS:
        raise CheckpointError(
            f"unknown layer type {kind!r} in a model description; known: {', '.join(LAYERS.names())}"
        )
    return LAYERS.get(kind).build(spec)


def describe_layer(module: nn.Module) -> LayerSpec:
    """The layer description of ``module`` (the inverse of :func:`build_layer`)."""
    for name, kind in LAYERS.items():
        if type(module) is kind.module_type:
            return {"type": name, **kind.describe(module)}
    raise SpecError(f"a SequentialNet cannot describe a {type(module).__name__} layer")


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
