"""The model zoo: architectures of the source papers, each adapting to the dataset's input shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ensprune._registry import Registry
from ensprune.errors import SpecError
from ensprune.models.architecture import LayerListBuilder, SequentialNet, build_from_layers
from ensprune.models.factory import with_source
from ensprune.models.resnet import CifarResNet

ModelBuilder = Callable[..., nn.Module]


def _plugin_model(name: str, obj: Any) -> ModelBuilder:
    """An entry point of ``ensprune.models``: a builder ``(input_shape, num_classes, **config)``."""
    if not callable(obj):
        raise TypeError(f"{obj!r} is not callable (a model builder)")
    return obj


MODELS: Registry[ModelBuilder] = Registry(
    "model", entry_points="ensprune.models", adapt=_plugin_model
)


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, **config: Any
) -> nn.Module:
    """Build zoo model ``name`` for inputs of ``input_shape`` (C, H, W) and ``num_classes`` outputs.

    ``config`` holds the model's own options (``width`` for ``resnet20``). The network records
    its name and config, so checkpoints rebuild it without pickling code.

    Example:
        >>> net = build_model("lenet300", (1, 28, 28), 10)
        >>> small = build_model("resnet20", (1, 28, 28), 10, width=8)
    """
    canonical = MODELS.canonical(name)
    shape = tuple(int(d) for d in input_shape)
    try:
        model = MODELS.get(canonical)(shape, int(num_classes), **config)
    except TypeError as exc:
        raise SpecError(f"bad options {config} for model {canonical!r}: {exc}") from None
    source = {
        "kind": "zoo",
        "name": canonical,
        "input_shape": list(shape),
        "num_classes": int(num_classes),
        "config": dict(config),
    }
    return with_source(model, source)


def _mlp(hidden: tuple[int, ...]) -> ModelBuilder:
    def builder(input_shape: tuple[int, ...], num_classes: int) -> SequentialNet:
        b = LayerListBuilder(input_shape)
        for width in hidden:
            b.linear(width)
        b.linear(num_classes, relu=False)
        return build_from_layers(b.layers, input_shape)

    return builder


MODELS.register("model_a")(_mlp((40, 40)))  # DropNet Model A: FC40-FC40
MODELS.register("lenet300")(_mlp((300, 100)))  # LeNet-300-100
MODELS.register("mlp_40_20")(_mlp((40, 20)))  # WoodFisher's 784-40-20-10
MODELS.register("mlp_512")(_mlp((512, 512)))  # the learned-ratio thesis's 784-512-512-10


@MODELS.register("lenet5")
def lenet5(input_shape: tuple[int, ...], num_classes: int) -> SequentialNet:
    """LeNet-5 (Caffe variant used by Han et al.): conv20-pool-conv50-pool-fc500."""
    b = LayerListBuilder(input_shape)
    small = min(input_shape[1:]) < 16
    b.conv(20, 5 if not small else 3, padding=0 if not small else 1)
    b.pool()
    b.conv(50, 5 if not small else 3, padding=0 if not small else 1)
    b.pool()
    b.linear(500)
    b.linear(num_classes, relu=False)
    return build_from_layers(b.layers, input_shape)


@MODELS.register("model_b")
def model_b(input_shape: tuple[int, ...], num_classes: int) -> SequentialNet:
    """DropNet Model B: Conv64-Conv64-pool, then the classifier."""
    b = LayerListBuilder(input_shape)
    b.conv(64, 3, padding=1)
    b.conv(64, 3, padding=1)
    b.pool()
    b.linear(num_classes, relu=False)
    return build_from_layers(b.layers, input_shape)


@MODELS.register("model_c")
def model_c(input_shape: tuple[int, ...], num_classes: int) -> SequentialNet:
    """DropNet Model C: Conv64-64-pool-Conv128-128-pool, Dense 256."""
    b = LayerListBuilder(input_shape)
    b.conv(64, 3, padding=1)
    b.conv(64, 3, padding=1)
    b.pool()
    b.conv(128, 3, padding=1)
    b.conv(128, 3, padding=1)
    b.pool()
    b.linear(256)
    b.linear(num_classes, relu=False)
    return build_from_layers(b.layers, input_shape)


@MODELS.register("resnet20")
def resnet20(input_shape: tuple[int, ...], num_classes: int, width: int = 16) -> CifarResNet:
    """CIFAR-style ResNet-20 (He et al. 2016): a 3x3 stem, three stages of three residual blocks
    (``width``, 2x, 4x channels; stride 2 into stages 2 and 3), BatchNorm, global average pooling.

    ``width=16`` is the paper's network (0.27 M parameters on 3-channel input); a smaller width
    gives a narrower variant with the same depth and graph.
    """
    return CifarResNet(input_shape, num_classes, depth=20, width=width)


@MODELS.register("vgg_small")
def vgg_small(input_shape: tuple[int, ...], num_classes: int) -> SequentialNet:
    """A small VGG: three conv blocks (32, 64, 128) with batch norm, Dense 128."""
    b = LayerListBuilder(input_shape)
    for width in (32, 64, 128):
        b.conv(width, 3, padding=1, bn=True)
        b.conv(width, 3, padding=1, bn=True)
        b.pool()
    b.linear(128)
    b.linear(num_classes, relu=False)
    return build_from_layers(b.layers, input_shape)


def build_seeded(
    name: str, input_shape: tuple[int, ...], num_classes: int, seed: int, **config: Any
) -> nn.Module:
    """Build zoo model ``name`` with weights initialised from ``seed`` (global RNG left untouched)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, input_shape, num_classes, **config)
