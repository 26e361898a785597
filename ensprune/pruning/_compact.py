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
stay whole: groups of the protected classifier head or of excluded layers, groups holding a layer
with parameters other than Linear / Conv / BatchNorm (its per-channel parameters could not be
zeroed exactly), and some groups through grouped convolutions (below).

Grouped convolutions (``1 < groups``, not depthwise). A conv with ``g`` groups splits its input
and its output channels into ``g`` equal, contiguous channel groups; output group ``k`` reads input
group ``k`` only. The rule: **a unit group touching a grouped convolution loses the same number of
units from each of that convolution's channel groups** (any units within a channel group, not
necessarily the same positions in each), and keeps at least one in each; the group count never
changes. Then every channel group of the compacted conv still has equal width; its weight keeps,
for output group ``k``, exactly the rows and columns of ``k``'s surviving channels; and the masked
model's zero inputs meet exactly the columns compaction drops, so both give the same outputs. The
constraint is :attr:`UnitGroup.blocks` (the units that must each lose the same number; with
several grouped convs in one group, their channel groups' common refinement), checked by
:meth:`UnitGraph.check`. Torch-Pruning takes any conv with one output per channel group for a
depthwise one, so a grouped conv's outputs keep at least two per channel group
(:attr:`UnitGroup.floor`). These stay whole: a unit group holding only part of a grouped conv's
channels (a concatenation feeding it whose other part is another unit group: equal removal would
tie two groups' choices together), a unit group only some of whose units reach grouped convs (e.g.
a grouped conv's stream concatenated with another layer's outputs), and a conv with one output
but several inputs per channel group. Whole channel groups are never removed (reducing ``groups``):
a channel group's outputs and its inputs belong to different unit groups.

Example:
    >>> groups = unit_layers(net)  # [UnitGroup(name="0.weight", width=300, ...), ...]
    >>> small = compact(net, {"0.weight": keep_300})  # same outputs as the masked network
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
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
        blocks: where the group touches grouped convolutions, a partition of its units into
            equal-sized blocks that must each lose the same number of units (``()``: no
            constraint). See the module docstring.
        floor: the fewest units the group may keep (more than one where a grouped conv's outputs
            must keep two per channel group).
    """

    name: str
    width: int
    producers: tuple[tuple[str, tuple[int, ...]], ...]
    blocks: tuple[tuple[int, ...], ...] = ()
    floor: int = 1

    def balanced(
        self,
        keep: torch.Tensor,
        allowed: torch.Tensor | None = None,
        prefer: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``keep`` with units given back so that every block loses the same number.

        Each block keeps as many units as the block keeping the most; the units given back are
        units ``keep`` drops and ``allowed`` (default: every unit) permits, highest ``prefer``
        first (default: in index order).
        """
        if not self.blocks:
            return keep
        keep = keep.clone()
        allowed = torch.ones_like(keep) if allowed is None else allowed
        most = max(int(keep[list(block)].sum()) for block in self.blocks)
        for block in self.blocks:
            missing = most - int(keep[list(block)].sum())
            candidates = [u for u in block if not bool(keep[u]) and bool(allowed[u])]
            if prefer is not None:
                candidates.sort(key=lambda u: -float(prefer[u]))
            for unit in candidates[: max(missing, 0)]:
                keep[unit] = True
        return keep


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
        self._blocks: dict[str, tuple[tuple[int, ...], ...]] = {}
        self._floors: dict[str, int] = {}
        self.groups: list[UnitGroup] = []
        for group in self.graph.get_all_groups(
            ignored_layers=ignored, root_module_types=PRUNABLE_TYPES
        ):
            root = group[0].dep.target.module
            name = self._weight_name(root)
            blocks, floor, reason = _grouped_conv_blocks(
                group, self.names, self.graph.is_out_channel_pruning_fn
            )
            reason = reason or _unremovable(group)
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
            self._blocks[name] = blocks
            self._floors[name] = floor
            self.groups.append(UnitGroup(name, len(group[0].idxs), producers, blocks, floor))
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
            if int(keep.sum()) < self._floors[name]:
                raise SpecError(
                    f"unit mask {name!r} keeps {int(keep.sum())} units; the group holds a grouped "
                    f"convolution's outputs and must keep at least {self._floors[name]} (two "
                    "outputs per channel group)"
                )
            blocks = self._blocks[name]
            lost = sorted({len(b) - int(keep[list(b)].sum()) for b in blocks})
            if len(lost) > 1:
                raise SpecError(
                    f"unit mask {name!r} removes {lost[0]} to {lost[-1]} units from the "
                    f"{len(blocks)} channel groups of a grouped convolution; remove the same "
                    "number from each (UnitGroup.blocks lists them)"
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
            if not drop:
                continue
            group = self._group(name, drop)
            if not self._blocks[name]:
                group.prune(record_history=False)
                continue
            # Torch-Pruning assumes the same positions go from every input channel group of a
            # grouped conv; equal counts at any positions are removed here instead.
            for item in group.items:
                module = item.dep.target.module
                if _is_grouped(module) and not self.graph.is_out_channel_pruning_fn(
                    item.dep.handler
                ):
                    _remove_grouped_inputs(module, [int(i) for i in item.idxs])
                else:
                    item.dep(item.idxs)

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


def _is_grouped(module: Any) -> bool:
    """A grouped convolution that is not depthwise (depthwise ones couple inputs and outputs)."""
    return (
        isinstance(module, _CONV)
        and module.groups > 1
        and not module.groups == module.in_channels == module.out_channels
    )


def _grouped_conv_blocks(
    group: Any, names: dict[nn.Module, str], is_out: Callable[[Any], bool]
) -> tuple[tuple[tuple[int, ...], ...], int, str]:
    """The group's equal-loss blocks and floor (see :class:`UnitGroup`), or why it stays whole.

    ``group`` covers all its units (as from ``get_all_groups``). Each grouped conv reading or
    writing these units assigns every unit the channel group of its channel; units with the same
    assignment across all grouped convs form one block.

    Torch-Pruning takes any conv with one output per channel group for a depthwise one and ties
    its inputs to its outputs; so a grouped conv's outputs keep at least two per channel group
    (the floor), and a conv that already has one output per group but several inputs stays whole.
    """
    keys: dict[int, list[tuple[str, int]]] = {}
    convs: dict[str, int] = {}
    for item in group.items:
        module = item.dep.target.module
        if not _is_grouped(module):
            continue
        if any(m.dep.target.type == tp.ops.OPTYPE.PARAMETER for m in group.items):
            # UnitGraph.remove prunes these groups item by item, without Torch-Pruning's
            # bookkeeping for unwrapped parameters
            return _whole("an unwrapped parameter next to a grouped convolution")
        out = is_out(item.dep.handler)
        channels = module.out_channels if out else module.in_channels
        side = f"{names[module]}:{'out' if out else 'in'}"
        idxs = [int(i) for i in item.idxs]
        if module.groups == module.out_channels:
            return _whole(
                f"convolution {names[module]!r} has one output per channel group but "
                f"{module.in_channels // module.groups} inputs"
            )
        if sorted(idxs) != list(range(channels)):
            return _whole(
                f"covers part of grouped convolution {names[module]!r}'s channels (the rest "
                "belong to another unit group)"
            )
        per_group = channels // module.groups
        convs[side] = module.groups
        for channel, unit in zip(idxs, item.root_idxs, strict=True):
            keys.setdefault(int(unit), []).append((side, channel // per_group))
    if not convs:
        return (), 1, ""
    if len(keys) != len(group[0].idxs):
        # units outside every channel group would need a selection rule of their own
        return _whole("only part of its units reach its grouped convolutions")
    cells: dict[tuple[tuple[str, int], ...], list[int]] = {}
    for unit, sides in keys.items():
        if len({side for side, _ in sides}) != len(sides):
            return _whole("a unit reaches a grouped convolution through two channels")
        cells.setdefault(tuple(sorted(sides)), []).append(unit)
    blocks = tuple(tuple(sorted(units)) for _, units in sorted(cells.items()))
    # Equal loss per block must mean equal loss per channel group of every conv.
    misaligned = "grouped convolutions whose channel groups do not line up"
    if len({len(b) for b in blocks}) != 1:
        return _whole(misaligned)
    per_block = 1  # units each block keeps at least
    for side, count in convs.items():
        per: dict[int, int] = {}
        for key in cells:
            for s, g in key:
                if s == side:
                    per[g] = per.get(g, 0) + 1
        if len(per) != count or len(set(per.values())) != 1:
            return _whole(misaligned)
        if side.endswith(":out"):  # two outputs per channel group: blocks per group x kept
            per_block = max(per_block, -(-2 * count // len(blocks)))
    return blocks, per_block * len(blocks), ""


def _whole(reason: str) -> tuple[tuple[tuple[int, ...], ...], int, str]:
    return (), 1, reason


def _remove_grouped_inputs(module: nn.Conv1d | nn.Conv2d, drop: list[int]) -> None:
    """Remove input channels ``drop`` of a grouped conv (the same number from each group)."""
    groups, in_per, out_per = (
        module.groups,
        module.in_channels // module.groups,
        module.out_channels // module.groups,
    )
    dropped = set(drop)
    columns = [
        [c - k * in_per for c in range(k * in_per, (k + 1) * in_per) if c not in dropped]
        for k in range(groups)
    ]
    weight = module.weight.detach()
    parts = [weight[k * out_per : (k + 1) * out_per][:, columns[k]] for k in range(groups)]
    module.weight = nn.Parameter(torch.cat(parts, dim=0))
    module.in_channels -= len(dropped)


def _input_used(module: nn.Linear | nn.Conv1d | nn.Conv2d) -> torch.Tensor:
    """Per input channel (feature): whether any non-zero weight reads it."""
    weight = module.weight.detach()
    groups = getattr(module, "groups", 1)
    out, in_per = weight.shape[0], weight.shape[1]
    per_group = weight.reshape(groups, out // groups, in_per, -1).ne(0).any(dim=3).any(dim=1)
    return per_group.reshape(groups * in_per)


def _input_weight_index(
    module: nn.Linear | nn.Conv1d | nn.Conv2d, idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns) of ``module.weight`` that read input channels ``idx``, for indexing."""
    groups = getattr(module, "groups", 1)
    out, in_per = module.weight.shape[0], module.weight.shape[1]
    out_per = out // groups
    rows = (idx // in_per).unsqueeze(1) * out_per + torch.arange(out_per).unsqueeze(0)
    return rows, (idx % in_per).unsqueeze(1).expand_as(rows)


def _unremovable(group: Any) -> str:
    """Why a group cannot be removed exactly, or ``""``."""
    for item in group.items:
        module = item.dep.target.module
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
            if not isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
                continue
            key = graph._weight_name(module)
            idx = torch.as_tensor(item.idxs, dtype=torch.long)
            if graph.graph.is_out_channel_pruning_fn(item.dep.handler):
                masks[key][idx] = False
            else:
                masks[key][_input_weight_index(module, idx)] = False
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
                used = _input_used(module)
                for column, unit in zip(columns, units, strict=True):
                    if bool(used[column]):
                        reads[unit] = True
            alive = keep[group.name] & reads
            if not bool(alive.any()):
                alive[int(torch.nonzero(keep[group.name])[0])] = True
            # grouped convs: each channel group loses as many as the one losing fewest
            alive = group.balanced(alive, keep[group.name])
            if not torch.equal(alive, keep[group.name]):
                keep[group.name] = alive
                graph.mask({group.name: alive})
                changed = True
    return keep
