"""Compaction: remove whole units (neurons, filters) so the network is really smaller and faster.

Masks alone give no speed and no smaller file. A *unit mask* says which output units (rows of a
Linear, filters of a Conv2d) of a hidden layer survive. :func:`mask_units` zeroes the removed units
in place, so their post-activations are exactly zero (the *masked model*); :func:`compact` rebuilds
the network without them: the layer's outputs, the next layer's inputs (for a conv -> flatten ->
linear boundary: every spatial position of a removed channel) and the batch-norm features in
between are cut from the layer list and the weights. Both give the same outputs (up to float
rounding), and the compacted :class:`SequentialNet` saves and loads like any zoo model.

Unit masks are keyed like :func:`~ensprune.models.measure.prunable_parameters` (``"0.weight"``)
and hold a boolean vector over the layer's output units (True = keep).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ensprune.errors import SpecError
from ensprune.models.architecture import LayerSpec, SequentialNet, build_from_layers
from ensprune.models.measure import prunable_parameters

UnitMasks = dict[str, torch.Tensor]

_UNIT_TYPES = ("linear", "conv2d")
# Layers that act per unit (per feature or per channel): a unit's zero stays a zero through them.
_PASS_TYPES = ("relu", "dropout", "maxpool2d", "avgpool2d", "batchnorm1d", "batchnorm2d")
_NORM_TYPES = ("batchnorm1d", "batchnorm2d")


@dataclass(frozen=True)
class UnitLayer:
    """A layer whose output units may be removed.

    Attributes:
        name: the weight's key in ``prunable_parameters`` (``"0.weight"``).
        index: the module's position in the network.
        width: number of output units (neurons or filters).
        activation: position of the module whose output is the layer's post-activation (the end
            of the chain of batch norm, ReLU and dropout that follows the layer).
    """

    name: str
    index: int
    width: int
    activation: int


def unit_layers(model: SequentialNet) -> list[UnitLayer]:
    """The hidden Linear/Conv2d layers whose units can be removed (never the output layer).

    Raises:
        SpecError: the network holds a layer type compaction does not understand.
    """
    specs = model.layers
    for spec in specs:
        if spec["type"] not in (*_UNIT_TYPES, *_PASS_TYPES, "flatten"):
            raise SpecError(f"compaction does not support layer type {spec['type']!r}")
    weighted = [i for i, spec in enumerate(specs) if spec["type"] in _UNIT_TYPES]
    out = []
    for i in weighted[:-1]:  # the last weighted layer produces the classes: never removed
        act = i
        while act + 1 < len(specs) and specs[act + 1]["type"] in ("relu", "dropout", *_NORM_TYPES):
            act += 1
        out.append(UnitLayer(f"{i}.weight", i, int(specs[i]["out"]), act))
    return out


def _check_unit_masks(model: SequentialNet, unit_masks: UnitMasks) -> dict[int, torch.Tensor]:
    layers = {u.name: u for u in unit_layers(model)}
    by_index = {}
    for name, mask in unit_masks.items():
        if name not in layers:
            raise SpecError(
                f"unit mask {name!r} names no hidden layer; removable layers: {', '.join(layers)}"
            )
        layer = layers[name]
        mask = torch.as_tensor(mask).to(torch.bool).flatten().cpu()
        if mask.numel() != layer.width:
            raise SpecError(
                f"unit mask {name!r} has {mask.numel()} entries; the layer has {layer.width}"
            )
        if not bool(mask.any()):
            raise SpecError(f"unit mask {name!r} removes every unit; keep at least one")
        by_index[layer.index] = mask
    return by_index


@torch.no_grad()
def mask_units(model: SequentialNet, unit_masks: UnitMasks) -> None:
    """Zero the removed units in place: incoming weights, bias and the following norm's affine.

    Afterwards every removed unit's post-activation is exactly zero for any input.
    """
    by_index = _check_unit_masks(model, unit_masks)
    modules = list(model)
    for index, keep in by_index.items():
        drop = ~keep
        layer = modules[index]
        assert isinstance(layer, nn.Linear | nn.Conv2d)
        layer.weight[drop] = 0.0
        if layer.bias is not None:
            layer.bias[drop] = 0.0
        j = index + 1
        while j < len(modules) and model.layers[j]["type"] in ("relu", "dropout", *_NORM_TYPES):
            norm = modules[j]
            if isinstance(norm, nn.BatchNorm1d | nn.BatchNorm2d):
                # A zero input normalises to zero with a zero running mean (eval mode) or batch
                # mean (training); gamma = beta = 0 keeps it there whatever the statistics.
                if norm.running_mean is not None and norm.running_var is not None:
                    norm.running_mean[drop] = 0.0
                    norm.running_var[drop] = 1.0
                if norm.affine:
                    norm.weight[drop] = 0.0
                    norm.bias[drop] = 0.0
            j += 1


def unit_weight_masks(model: SequentialNet, unit_masks: UnitMasks) -> dict[str, torch.Tensor]:
    """Weight keep-masks equivalent to ``unit_masks``: removed rows and the next layer's columns."""
    by_index = _check_unit_masks(model, unit_masks)
    params = prunable_parameters(model)
    masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}
    keep_in: torch.Tensor | None = None
    for i, (spec, shape) in enumerate(zip(model.layers, _input_shapes(model), strict=True)):
        kind = spec["type"]
        if kind == "flatten":
            keep_in = _flatten_keep(keep_in, shape)
        elif kind in _UNIT_TYPES:
            mask = masks[f"{i}.weight"]
            if keep_in is not None:
                mask[:, ~keep_in] = False
            keep_out = by_index.get(i)
            if keep_out is not None:
                mask[~keep_out] = False
            keep_in = keep_out
    return masks


def _input_shapes(model: SequentialNet) -> list[tuple[int, ...]]:
    """The per-sample input shape of every module (one dummy forward pass)."""
    shapes: list[tuple[int, ...]] = []
    x = torch.zeros((1, *model.input_shape), device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for module in model:
            shapes.append(tuple(x.shape[1:]))
            x = module(x)
    model.train(was_training)
    return shapes


def _flatten_keep(keep: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor | None:
    """Kept channels (C,) -> kept flat features (C*H*W,), channel-major as Flatten lays them out."""
    if keep is None or len(shape) == 1:
        return keep
    spatial = 1
    for d in shape[1:]:
        spatial *= int(d)
    return keep.repeat_interleave(spatial)


@torch.no_grad()
def compact(model: SequentialNet, unit_masks: UnitMasks) -> SequentialNet:
    """A physically smaller copy of ``model`` without the units that ``unit_masks`` removes.

    The copy's outputs equal those of the masked model (:func:`mask_units`) within float rounding;
    ``model`` is not modified. Layers without an entry in ``unit_masks`` keep all their units.

    Example:
        >>> small = compact(net, {"0.weight": torch.tensor([True, False, True, ...])})
        >>> save_model("small.pt", small)  # architecture + weights; loads with weights_only=True

    Raises:
        SpecError: a mask for an unknown or output layer, of the wrong length, or empty.
    """
    by_index = _check_unit_masks(model, unit_masks)
    modules = list(model)
    layers: list[LayerSpec] = [dict(spec) for spec in model.layers]
    tensors: dict[str, torch.Tensor] = {}
    keep_in: torch.Tensor | None = None  # kept entries of the running tensor's unit axis
    for i, (spec, shape) in enumerate(zip(model.layers, _input_shapes(model), strict=True)):
        kind, module = spec["type"], modules[i]
        if kind == "flatten":
            keep_in = _flatten_keep(keep_in, shape)
        elif kind in _UNIT_TYPES:
            assert isinstance(module, nn.Linear | nn.Conv2d)
            keep_out = by_index.get(i)
            weight = module.weight.detach()
            if keep_in is not None:
                weight = weight[:, keep_in]
                layers[i]["in"] = int(keep_in.sum())
            if keep_out is not None:
                weight = weight[keep_out]
                layers[i]["out"] = int(keep_out.sum())
            tensors[f"{i}.weight"] = weight
            if module.bias is not None:
                bias = module.bias.detach()
                tensors[f"{i}.bias"] = bias if keep_out is None else bias[keep_out]
            keep_in = keep_out
        elif kind in _NORM_TYPES:
            assert isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d)
            for key, value in module.state_dict().items():
                sliced = keep_in is not None and value.dim() == 1
                tensors[f"{i}.{key}"] = value[keep_in] if sliced else value
            if keep_in is not None:
                layers[i]["features"] = int(keep_in.sum())
    small = build_from_layers(layers, model.input_shape)
    small.load_state_dict({k: v.clone() for k, v in tensors.items()})
    small.to(next(model.parameters()).device)
    small.train(model.training)
    return small


@torch.no_grad()
def dead_units(model: SequentialNet) -> UnitMasks:
    """Unit masks keeping only hidden units that something downstream still reads.

    A unit whose outgoing weights (the next Linear's columns, the next Conv2d's input channel, or
    every flattened position of a channel) are all zero cannot influence the output, so removing
    it is exact. Unstructured pruning at high sparsity leaves many such units behind; removing
    them turns part of the sparsity into real speed. Removal cascades: a unit read only by dead
    units is dead too. Every layer keeps at least one unit.

    Example:
        >>> smaller = compact(result.model, dead_units(result.model))  # same outputs
    """
    layers = unit_layers(model)
    specs, modules = model.layers, list(model)
    keep: UnitMasks = {}
    # Walk backwards so a unit read only by removed units is removed as well.
    next_keep: torch.Tensor | None = None
    for layer in reversed(layers):
        j = layer.index + 1
        while specs[j]["type"] not in _UNIT_TYPES:
            j += 1
        reader = modules[j]
        assert isinstance(reader, nn.Linear | nn.Conv2d)
        weight = reader.weight.detach()
        if next_keep is not None:  # rows of removed downstream units read nothing
            weight = weight[next_keep.to(weight.device)]
        reads = weight.abs().sum(dim=0)  # per input feature or input channel (conv: summed kernels)
        if reads.dim() > 1:
            reads = reads.flatten(1).sum(1)
        flattened = any(specs[k]["type"] == "flatten" for k in range(layer.index + 1, j))
        if flattened and reads.numel() != layer.width:  # conv -> flatten -> linear: per channel
            reads = reads.view(layer.width, -1).sum(1)
        alive = (reads != 0).cpu()
        if not bool(alive.any()):
            alive[0] = True
        keep[layer.name] = alive
        next_keep = alive
    return dict(reversed(list(keep.items())))
