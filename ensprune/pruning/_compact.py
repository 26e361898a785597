"""Structured removal on any graph: unit groups, masking and compaction through Torch-Pruning.

A *unit* is an output channel (a Linear row, a conv filter) of a prunable layer. On a plain chain a
unit belongs to one layer; on a real graph units are coupled: the channels of a residual stream
are the outputs of every conv added into it, a concatenation joins its inputs' channels, a
BatchNorm, a depthwise conv and the flattened positions feeding a Linear follow the channels they
read. Torch-Pruning's ``DependencyGraph`` traces the network once and groups coupled channels; one
*unit group* is such a group, named by its root layer's weight (``"layer1.0.conv1.weight"``), and a
*unit mask* is a boolean vector over the group's units (True = keep).

:func:`mask_units` zeroes removed units in place (the *masked model*: every removed unit's output is
exactly zero); :func:`compact` physically removes them from a copy (fewer channels in every coupled
layer); both give the same outputs within float rounding. Groups that cannot be removed exactly
stay whole: groups of the protected classifier head or of excluded layers, groups through a
grouped (not depthwise) convolution, and groups holding a layer with parameters other than
Linear / Conv / BatchNorm (its per-channel parameters could not be zeroed exactly).

Example:
    >>> groups = unit_layers(net)  # [UnitGroup(name="0.weight", width=300, ...), ...]
    >>> small = compact(net, {"0.weight": keep_300})  # same outputs as the masked network
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ensprune.errors import SpecError
from ensprune.models.measure import PRUNABLE_TYPES, prunable_parameters
from ensprune.pruning._layers import ALL_LAYERS, LayerSelection, example_input, head_name

log = logging.getLogger(__name__)

UnitMasks = dict[str, torch.Tensor]
_CONV = (nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True)
class UnitGroup:
    """Coupled output units that are removed together.

    Attributes:
        name: the root layer's weight name (``"0.weight"``); keys unit masks and scores.
        width: number of units.
        producers: names of the Linear/Conv layers whose outputs are these units, each with the
            group's unit index of every one of its output channels (``(layer, root_indices)``).
    """

    name: str
    width: int
    producers: tuple[tuple[str, tuple[int, ...]], ...]


class UnitGraph:
    """Torch-Pruning's dependency graph of ``model``, restricted to the removable unit groups.

    Edits (:meth:`mask`, :meth:`remove`) act on ``model`` itself, in place.
    """

    def __init__(
        self,
        model: nn.Module,
        example: torch.Tensor | None = None,
        selection: LayerSelection = ALL_LAYERS,
    ) -> None:
        self.model = model
        example = example_input(model) if example is None else example
        was_training = model.training
        model.eval()
        try:
            with torch.enable_grad():  # Torch-Pruning traces through autograd
                self.graph = tp.DependencyGraph().build_dependency(
                    model, example_inputs=example, verbose=False
                )
            head = head_name(model, example) if selection.protect_head else None
        finally:
            model.train(was_training)
        self.names = {module: name for name, module in model.named_modules()}
        modules = dict(model.named_modules())
        selected = set(selection.names(model))
        ignored = [
            modules[w.rsplit(".", 1)[0] if "." in w else ""]
            for w in prunable_parameters(model)
            if w not in selected or w == head
        ]
        self._roots: dict[str, nn.Module] = {}
        self._producers: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}
        self.groups: list[UnitGroup] = []
        for group in self.graph.get_all_groups(
            ignored_layers=ignored, root_module_types=PRUNABLE_TYPES
        ):
            root = group[0].dep.target.module
            name = self._weight_name(root)
            reason = _unremovable(group)
            if reason:
                log.debug("unit group %s stays whole: %s", name, reason)
                continue
            producers = tuple(
                (self.names[item.dep.target.module], tuple(int(i) for i in item.root_idxs))
                for item in group.items
                if isinstance(item.dep.target.module, PRUNABLE_TYPES)
                and self.graph.is_out_channel_pruning_fn(item.dep.handler)
            )
            self._roots[name] = root
            self._producers[name] = producers
            self.groups.append(UnitGroup(name, len(group[0].idxs), producers))
        order = {self._weight_name(m): i for i, m in enumerate(model.modules()) if m in self.names}
        self.groups.sort(key=lambda g: order[g.name])  # module order, not the trace's

    def _weight_name(self, module: nn.Module) -> str:
        name = self.names[module]
        return f"{name}.weight" if name else "weight"

    def _group(self, name: str, drop: list[int]) -> Any:
        root = self._roots[name]
        handler = self.graph.get_pruner_of_module(root).prune_out_channels
        return self.graph.get_pruning_group(root, handler, drop)

    def check(self, unit_masks: UnitMasks) -> dict[str, list[int]]:
        """Validate ``unit_masks``; returns the units each group loses."""
        widths = {g.name: g.width for g in self.groups}
        drops = {}
        for name, mask in unit_masks.items():
            if name not in widths:
                raise SpecError(
                    f"unit mask {name!r} names no removable unit group; groups: "
                    f"{', '.join(widths) or 'none'}"
                )
            keep = torch.as_tensor(mask).to(torch.bool).flatten().cpu()
            if keep.numel() != widths[name]:
                raise SpecError(
                    f"unit mask {name!r} has {keep.numel()} entries; the group has {widths[name]}"
                )
            if not bool(keep.any()):
                raise SpecError(f"unit mask {name!r} removes every unit; keep at least one")
            for layer, units in self._producers[name]:
                if units and not bool(keep[list(units)].any()):
                    raise SpecError(
                        f"unit mask {name!r} removes every output of layer {layer!r} (the group "
                        "joins several layers' outputs); keep at least one of each"
                    )
            drops[name] = torch.nonzero(~keep).flatten().tolist()
        return drops

    @torch.no_grad()
    def mask(self, unit_masks: UnitMasks) -> None:
        """Zero the removed units of ``model`` in place (weights, biases, norm affine and stats)."""
        for name, drop in self.check(unit_masks).items():
            if not drop:
                continue
            for item in self._group(name, drop).items:
                module = item.dep.target.module
                if self.graph.is_out_channel_pruning_fn(item.dep.handler):
                    _zero_outputs(module, torch.as_tensor(item.idxs, dtype=torch.long))

    @torch.no_grad()
    def remove(self, unit_masks: UnitMasks) -> None:
        """Remove the units physically from ``model`` (every coupled layer shrinks), in place."""
        for name, drop in self.check(unit_masks).items():
            if drop:
                self._group(name, drop).prune(record_history=False)

    @torch.no_grad()
    def readers(
        self, name: str
    ) -> list[tuple[nn.Linear | nn.Conv1d | nn.Conv2d, list[int], list[int]]]:
        """Layers reading the group's units: (Linear/Conv, input indices, their unit indices)."""
        group = self._group(name, list(range(self._width(name))))
        out = []
        for item in group.items:
            module = item.dep.target.module
            if isinstance(
                module, nn.Linear | nn.Conv1d | nn.Conv2d
            ) and not self.graph.is_out_channel_pruning_fn(item.dep.handler):
                out.append((module, list(item.idxs), [int(i) for i in item.root_idxs]))
        return out

    def _width(self, name: str) -> int:
        return next(g.width for g in self.groups if g.name == name)


def _unremovable(group: Any) -> str:
    """Why a group cannot be removed exactly, or ``""``."""
    for item in group.items:
        module = item.dep.target.module
        if isinstance(module, _CONV) and module.groups > 1:
            depthwise = module.groups == module.in_channels == module.out_channels
            if not depthwise:
                return f"grouped convolution ({module.groups} groups)"
        known = isinstance(module, (*PRUNABLE_TYPES, _BatchNorm))
        if not known and isinstance(module, nn.Module) and any(module.parameters(recurse=False)):
            return f"{type(module).__name__} has per-channel parameters"
    return ""


def _zero_outputs(module: nn.Module, idx: torch.Tensor) -> None:
    if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
        module.weight[idx] = 0.0
        if module.bias is not None:
            module.bias[idx] = 0.0
    elif isinstance(module, _BatchNorm):
        # A zero input normalises to zero with a zero running mean (eval) or batch mean
        # (training); gamma = beta = 0 keeps it there whatever the statistics.
        if module.running_mean is not None and module.running_var is not None:
            module.running_mean[idx] = 0.0
            module.running_var[idx] = 1.0
        if module.affine:
            module.weight[idx] = 0.0
            module.bias[idx] = 0.0


def unit_layers(
    model: nn.Module,
    example: torch.Tensor | None = None,
    selection: LayerSelection = ALL_LAYERS,
) -> list[UnitGroup]:
    """The removable unit groups of ``model`` (never the protected head's outputs)."""
    return UnitGraph(model, example, selection).groups


def mask_units(
    model: nn.Module, unit_masks: UnitMasks, example: torch.Tensor | None = None
) -> None:
    """Zero the removed units in place; afterwards their outputs are exactly zero for any input."""
    UnitGraph(model, example).mask(unit_masks)


def compact(
    model: nn.Module, unit_masks: UnitMasks, example: torch.Tensor | None = None
) -> nn.Module:
    """A physically smaller copy of ``model`` without the units ``unit_masks`` removes.

    The copy's outputs equal those of the masked model (:func:`mask_units`) within float
    rounding; ``model`` is not modified. Groups without an entry keep all their units. The copy
    saves and loads like its source (its new layer shapes are recorded in the checkpoint).

    Raises:
        SpecError: a mask for an unknown group, of the wrong length, or removing every unit.
    """
    small = copy.deepcopy(model)
    UnitGraph(small, example).remove(unit_masks)
    return small


def unit_weight_masks(
    model: nn.Module, unit_masks: UnitMasks, example: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Weight keep-masks equivalent to ``unit_masks``: removed rows and the readers' columns."""
    graph = UnitGraph(model, example)
    drops = graph.check(unit_masks)
    params = prunable_parameters(model)
    masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}
    for name, drop in drops.items():
        if not drop:
            continue
        for item in graph._group(name, drop).items:
            module = item.dep.target.module
            if not isinstance(module, PRUNABLE_TYPES):
                continue
            key = graph._weight_name(module)
            idx = torch.as_tensor(item.idxs, dtype=torch.long)
            if graph.graph.is_out_channel_pruning_fn(item.dep.handler):
                masks[key][idx] = False
            else:
                masks[key][:, idx] = False
    return masks


@torch.no_grad()
def dead_units(model: nn.Module, example: torch.Tensor | None = None) -> UnitMasks:
    """Unit masks keeping only units that something downstream still reads.

    A unit whose every reader (the next Linear's columns, the next convs' input channels, every
    flattened position of a channel) has all-zero weights cannot influence the output, so removing
    it is exact. Unstructured pruning at high sparsity leaves many such units behind; removing
    them turns part of the sparsity into real speed. Removal cascades: a unit read only by dead
    units is dead too. Every group keeps at least one unit.

    Example:
        >>> smaller = compact(result.model, dead_units(result.model))  # same outputs
    """
    work = copy.deepcopy(model)
    graph = UnitGraph(work, example)
    keep = {g.name: torch.ones(g.width, dtype=torch.bool) for g in graph.groups}
    changed = True
    while changed:  # zeroing a dead unit's rows may leave the units it read unread
        changed = False
        for group in graph.groups:
            readers = graph.readers(group.name)
            if not readers:
                continue  # nothing prunable reads it (e.g. it feeds the output): keep all
            reads = torch.zeros(group.width, dtype=torch.bool)
            for module, columns, units in readers:
                weight = module.weight.detach()
                used = weight.transpose(0, 1).reshape(weight.shape[1], -1).ne(0).any(dim=1)
                for column, unit in zip(columns, units, strict=True):
                    if bool(used[column]):
                        reads[unit] = True
            alive = keep[group.name] & reads
            if not bool(alive.any()):
                alive[int(torch.nonzero(keep[group.name])[0])] = True
            if not torch.equal(alive, keep[group.name]):
                keep[group.name] = alive
                graph.mask({group.name: alive})
                changed = True
    return keep
