"""Structural edits: module replacements a checkpoint records and its loader replays.

Factorising a layer (``lowrank``, ``pca``) or wrapping it (``randmm``) replaces one module by
modules of other types, which neither the dense network's description nor its layer shapes can
express. Each such change is an *edit*, a JSON-able dict ``{"op": ..., "name": <qualified module
name>, ...}`` applied with :func:`apply_edit`, which also records it on the model. A checkpoint
saves the recorded list; loading rebuilds the dense network, replays the edits in order (fresh
modules of the right shapes), then loads the weights, so ``torch.load(weights_only=True)`` stays
sufficient.

Edits (registry ``EDITS``):

- ``factorise``: a Linear / Conv1d / Conv2d becomes ``nn.Sequential(first, second)`` with
  ``rank`` channels in between: Linear ``in -> rank -> out``; a convolution keeps its kernel in
  the first factor and mixes channels with a 1x1 second one. ``first_bias`` gives the first
  factor a bias (PCA's centring), ``second_bias`` the second (default: as the layer had).
- ``eigenbasis``: a Linear / Conv1d / Conv2d becomes ``nn.Sequential(project, core, back)``
  (EigenDamage's rebuilt layer): ``project`` maps the input onto ``rank_in`` directions (the
  layer's kernel, stride and padding; no bias), ``core`` mixes them into ``rank_out`` (no bias),
  ``back`` maps those to the layer's outputs (with the layer's bias); the last two are 1x1 for
  convolutions.
- ``randmm``: a Linear becomes :class:`RandMMLinear` (same weights, randomized product).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ensprune._registry import Registry
from ensprune.errors import CheckpointError, SpecError

Edit = dict[str, Any]
EditBuilder = Callable[[nn.Module, Edit], nn.Module]
EDITS: Registry[EditBuilder] = Registry("structural edit")
_RECORD = "structural_edits"


def edits_of(model: nn.Module) -> list[Edit]:
    """The edits applied to ``model`` so far, in order (empty for an unedited network)."""
    return [dict(e) for e in getattr(model, _RECORD, [])]


def apply_edit(model: nn.Module, edit: Edit) -> nn.Module:
    """Replace module ``edit["name"]`` of ``model`` as ``edit`` says; returns the new module.

    The new module's parameters are freshly initialised: the caller sets them.
    """
    name = str(edit.get("name", ""))
    try:
        old = model.get_submodule(name)
    except AttributeError:
        raise CheckpointError(
            f"structural edit {edit!r}: the model has no module {name!r}"
        ) from None
    if not getattr(model, _RECORD, None):
        _pin_source(model)
    new = EDITS.get(str(edit.get("op")))(old, edit)
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if not leaf:
        raise SpecError("a structural edit cannot replace the whole model")
    setattr(parent, leaf, new)
    record = list(getattr(model, _RECORD, []))
    record.append(dict(edit))
    model.__dict__[_RECORD] = record  # a plain attribute: copied by deepcopy, not a submodule
    return new


def _pin_source(model: nn.Module) -> None:
    """Before the first edit, record a layer-list network's description as its source.

    A :class:`~ensprune.models.architecture.SequentialNet` describes itself from its modules,
    which a factorised child (an ``nn.Sequential``) no longer allows; its checkpoint rebuilds the
    unedited network from this description and replays the edits on it.
    """
    from ensprune.models.architecture import SequentialNet
    from ensprune.models.factory import source_of, with_source

    if source_of(model) is None and isinstance(model, SequentialNet):
        source = {"kind": "layers", "layers": model.layers, "input_shape": list(model.input_shape)}
        with_source(model, source)


def replay_edits(model: nn.Module, edits: list[Edit]) -> None:
    """Apply recorded ``edits`` in order (the loader's half of :func:`apply_edit`)."""
    for edit in edits:
        if not isinstance(edit, dict):
            raise CheckpointError(f"a structural edit must be a dict; got {edit!r}")
        apply_edit(model, edit)


@EDITS.register("factorise")
def _factorise(old: nn.Module, edit: Edit) -> nn.Module:
    rank = int(edit["rank"])
    first_bias = bool(edit.get("first_bias", False))
    bias = bool(edit.get("second_bias", getattr(old, "bias", None) is not None))
    if isinstance(old, nn.Linear):
        return nn.Sequential(
            nn.Linear(old.in_features, rank, bias=first_bias),
            nn.Linear(rank, old.out_features, bias=bias),
        )
    if isinstance(old, (nn.Conv1d, nn.Conv2d)) and old.groups == 1:
        conv = nn.Conv1d if isinstance(old, nn.Conv1d) else nn.Conv2d
        return nn.Sequential(
            conv(
                old.in_channels,
                rank,
                old.kernel_size,  # type: ignore[arg-type]
                stride=old.stride,  # type: ignore[arg-type]
                padding=old.padding,  # type: ignore[arg-type]
                dilation=old.dilation,  # type: ignore[arg-type]
                bias=first_bias,
                padding_mode=old.padding_mode,
            ),
            conv(rank, old.out_channels, 1, bias=bias),
        )
    raise SpecError(
        f"cannot factorise {edit.get('name')!r}: a {type(old).__name__} (factorisation covers "
        "Linear and ungrouped Conv1d/Conv2d layers)"
    )


@EDITS.register("eigenbasis")
def _eigenbasis(old: nn.Module, edit: Edit) -> nn.Module:
    rank_in, rank_out = int(edit["rank_in"]), int(edit["rank_out"])
    if rank_in < 1 or rank_out < 1:
        raise CheckpointError(f"structural edit {edit!r}: ranks must be >= 1")
    bias = getattr(old, "bias", None) is not None
    if isinstance(old, nn.Linear):
        return nn.Sequential(
            nn.Linear(old.in_features, rank_in, bias=False),
            nn.Linear(rank_in, rank_out, bias=False),
            nn.Linear(rank_out, old.out_features, bias=bias),
        )
    if isinstance(old, (nn.Conv1d, nn.Conv2d)) and old.groups == 1:
        conv = nn.Conv1d if isinstance(old, nn.Conv1d) else nn.Conv2d
        return nn.Sequential(
            conv(
                old.in_channels,
                rank_in,
                old.kernel_size,  # type: ignore[arg-type]
                stride=old.stride,  # type: ignore[arg-type]
                padding=old.padding,  # type: ignore[arg-type]
                dilation=old.dilation,  # type: ignore[arg-type]
                bias=False,
                padding_mode=old.padding_mode,
            ),
            conv(rank_in, rank_out, 1, bias=False),
            conv(rank_out, old.out_channels, 1, bias=bias),
        )
    raise SpecError(
        f"cannot rebuild {edit.get('name')!r} in its eigenbasis: a {type(old).__name__} (this "
        "covers Linear and ungrouped Conv1d/Conv2d layers)"
    )


class RandMMLinear(nn.Linear):
    """A Linear layer computed by randomized matrix multiplication (Drineas et al.).

    ``y = X Wᵀ + b`` with the inner sum over ``in_features`` replaced by ``samples`` indices
    drawn with replacement, ``p_k ∝ ‖X_{:,k}‖ ‖W_{:,k}‖``, and the unbiased estimator
    ``(1/c) Σ_i X_{:,k_i} W_{:,k_i}ᵀ / p_{k_i}``. The draw is seeded by ``seed`` on every call,
    so the same batch gives the same output (and a saved model reproduces its outputs).
    With ``samples >= in_features`` it is the exact product.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *, samples: int, seed: int
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.samples = int(samples)
        self.seed = int(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.samples >= self.in_features:
            return super().forward(x)
        flat = x.reshape(-1, self.in_features)
        weight_norms = self.weight.detach().norm(dim=0)
        probs = flat.detach().norm(dim=0) * weight_norms
        total = probs.sum()
        if not torch.isfinite(total) or total <= 0:
            return super().forward(x)  # an all-zero batch: the product is exactly the bias
        probs = probs / total
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        index = torch.multinomial(probs, self.samples, replacement=True, generator=gen)
        scale = 1.0 / (self.samples * probs[index])
        out = (flat[:, index] * scale) @ self.weight[:, index].T
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, samples={self.samples}"


@EDITS.register("randmm")
def _randmm(old: nn.Module, edit: Edit) -> nn.Module:
    if not isinstance(old, nn.Linear):
        raise SpecError(
            f"randomized multiplication wraps Linear layers; {edit.get('name')!r} is a "
            f"{type(old).__name__}"
        )
    samples = int(edit["samples"])
    if samples < 1 or not math.isfinite(samples):
        raise SpecError(f"randmm: samples must be >= 1; got {samples}")
    new = RandMMLinear(
        old.in_features,
        old.out_features,
        bias=old.bias is not None,
        samples=samples,
        seed=int(edit.get("seed", 0)),
    )
    return new
