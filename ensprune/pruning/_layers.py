"""Which layers a method may prune: prunable types, include/exclude patterns, the protected head.

Prunable layers are the ``Linear``, ``Conv1d`` and ``Conv2d`` modules of any ``nn.Module``
(:data:`~ensprune.models.measure.PRUNABLE_TYPES`); their weights are keyed by qualified parameter
name (``"layer1.0.conv1.weight"``). A :class:`LayerSelection` narrows that set with fnmatch-style
patterns matched against the module name or the weight name (``"layer3.*"``, ``"*.shortcut.*"``,
``"fc.weight"``), and protects the classifier head (the last prunable layer the forward pass runs)
from structured removal: removing its output units would remove classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ensprune.data.batching import as_batch_source
from ensprune.errors import SpecError
from ensprune.models.measure import PRUNABLE_TYPES, prunable_parameters

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class LayerSelection:
    """Narrow the prunable layers of a network.

    Attributes:
        include: patterns; when given, only matching layers are pruned.
        exclude: patterns; matching layers are never pruned (applied after ``include``).
        protect_head: structured methods never remove output units of the classifier head.

    Example:
        >>> LayerSelection(exclude=("conv1", "*.shortcut.*")).names(resnet)
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    protect_head: bool = True

    def __post_init__(self) -> None:
        for field_name in ("include", "exclude"):
            value = getattr(self, field_name)
            if isinstance(value, str):
                value = (value,)
            if not all(isinstance(p, str) and p for p in value):
                raise SpecError(
                    f"layer {field_name} patterns must be non-empty strings; got {value!r}"
                )
            object.__setattr__(self, field_name, tuple(value))

    def matches(self, weight_name: str) -> bool:
        """True when the layer owning ``weight_name`` is selected."""
        included = not self.include or any(_hit(weight_name, p) for p in self.include)
        return included and not any(_hit(weight_name, p) for p in self.exclude)

    def parameters(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The selected prunable weights by qualified name, in module order.

        Raises:
            SpecError: the patterns leave no prunable layer (the message lists the layers).
        """
        every = prunable_parameters(model)
        chosen = {name: p for name, p in every.items() if self.matches(name)}
        if not chosen:
            raise SpecError(
                f"layer patterns include={list(self.include)} exclude={list(self.exclude)} select "
                f"no prunable layer; prunable layers: {', '.join(every) or 'none'}"
            )
        return chosen

    def names(self, model: nn.Module) -> list[str]:
        """Names of the selected prunable weights."""
        return list(self.parameters(model))

    def check(
        self, model: nn.Module, include_label: str = "include", exclude_label: str = "exclude"
    ) -> None:
        """Refuse a pattern that matches no prunable layer of ``model`` (a typo), or a selection
        that leaves none; cheap, so callers run it on the untrained network.

        Raises:
            SpecError: one line naming the pattern, the prunable layers and the fix. The labels
                name the patterns' origin in it (``"--include"``, ``"[search] exclude"``).
        """
        every = list(prunable_parameters(model))
        for label, patterns in ((include_label, self.include), (exclude_label, self.exclude)):
            for pattern in patterns:
                if any(_hit(name, pattern) for name in every):
                    continue
                hint = (
                    f"layer names are case-sensitive: did you mean {_recased(pattern, every)!r}?"
                    if any(_hit(n.lower(), pattern.lower()) for n in every)
                    else "fix the pattern (fnmatch-style, against module or weight names, "
                    f"e.g. {(_module(every[0]) or every[0])!r} or '*.weight')"
                )
                raise SpecError(
                    f"{label} pattern {pattern!r} matches no prunable layer of this "
                    f"{type(model).__name__}; {hint}; prunable layers: {_listing(every)}"
                )
        if not any(self.matches(name) for name in every):
            raise SpecError(
                f"{include_label} {list(self.include)} and {exclude_label} {list(self.exclude)} "
                f"leave no layer of this {type(model).__name__} to prune; narrow "
                f"{exclude_label if self.exclude else include_label}; prunable layers: "
                f"{_listing(every)}"
            )


def _module(weight_name: str) -> str:
    return weight_name.rsplit(".", 1)[0] if "." in weight_name else ""


def _hit(weight_name: str, pattern: str) -> bool:
    return fnmatchcase(weight_name, pattern) or fnmatchcase(_module(weight_name), pattern)


def _recased(pattern: str, names: list[str]) -> str:
    """The pattern in the case the layers use: lower-cased if that matches, else a layer name."""
    if any(_hit(n, pattern.lower()) for n in names):
        return pattern.lower()
    return next(_module(n) or n for n in names if _hit(n.lower(), pattern.lower()))


def _listing(names: list[str], limit: int = 24) -> str:
    """Module names, the first ``limit`` of them (a ResNet has dozens of layers)."""
    modules = [_module(n) or n for n in names]
    shown = ", ".join(modules[:limit])
    return f"{shown}, ... ({len(modules)} in all)" if len(modules) > limit else shown or "none"


ALL_LAYERS = LayerSelection()


def example_input(model: nn.Module, data: Any = None) -> torch.Tensor:
    """One input sample (batch of 1) for tracing ``model``.

    Taken from ``model.input_shape`` when the network declares it (every zoo model does),
    otherwise from the first sample of ``data`` (an array or anything indexable by ``[:1]``).
    """
    shape = getattr(model, "input_shape", None)
    device = _device(model)
    if isinstance(shape, tuple) and shape:
        return torch.zeros((1, *shape), device=device)
    if data is not None:  # arrays, a Dataset or a DataLoader (ensprune.data.batching)
        first = next(iter(as_batch_source(data).take([0]).inputs(1)))
        return first.to(device)
    raise SpecError(
        f"cannot trace a {type(model).__name__}: it declares no input_shape and no example input "
        "was given; pass example= (a batch of one sample)"
    )


@torch.no_grad()
def head_name(model: nn.Module, example: torch.Tensor) -> str | None:
    """The weight name of the classifier head: the last prunable layer the forward pass runs."""
    names = {module: name for name, module in model.named_modules()}
    order: list[str] = []

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        order.append(names[module])

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, PRUNABLE_TYPES)
    ]
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if not order:
        return None
    return f"{order[-1]}.weight" if order[-1] else "weight"


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def as_selection(value: LayerSelection | Sequence[str] | None) -> LayerSelection:
    """``None`` -> every layer; a selection as is."""
    if value is None:
        return ALL_LAYERS
    if isinstance(value, LayerSelection):
        return value
    return LayerSelection(include=tuple(value))
