"""Checkpoints without pickled code: where the model comes from, its pruned shapes, its weights.

A checkpoint is a dict read back with ``torch.load(weights_only=True)``:

- ``source``: how to rebuild the dense network: a zoo name and config (``{"kind": "zoo", "name":
  "resnet20", "input_shape": [3, 32, 32], "num_classes": 10, "config": {"width": 8}}``), a user
  factory's import path and arguments (``{"kind": "factory", "target": "my_pkg.nets:make_net",
  "kwargs": {}}``, see :mod:`ensprune.models.factory`) or, for a :class:`SequentialNet` built from a
  layer list, the list itself (``{"kind": "layers", ...}``);
- ``shapes``: the size attributes of every layer as saved (``in_channels``, ``out_features``,
  ``num_features``, ``groups``, ...), so a network whose units were removed is rebuilt dense, then
  shrunk to these shapes, then given its weights;
- ``state_dict`` and JSON-able ``meta``.

Checkpoints of the first format (``ensprune-checkpoint/1``: a layer list) still load.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ensprune.errors import CheckpointError, EnsPruneError
from ensprune.models.architecture import SequentialNet, build_from_layers
from ensprune.models.edits import edits_of, replay_edits
from ensprune.models.factory import ModelSource, build_from_factory, source_of, with_source

FORMAT = "ensprune-checkpoint/2"
FORMAT_V1 = "ensprune-checkpoint/1"
# Layer attributes that structured pruning changes (Torch-Pruning edits exactly these).
SHAPE_ATTRS = (
    "in_features",
    "out_features",
    "in_channels",
    "out_channels",
    "groups",
    "num_features",
    "num_channels",
    "num_parameters",
    "normalized_shape",
)


def model_source(model: nn.Module) -> ModelSource:
    """How a checkpoint rebuilds ``model``: its recorded source, or its layer list.

    Raises:
        CheckpointError: the network has neither (build it with ``build_model`` or
            ``build_from_factory`` so it can be saved without pickling code).
    """
    source = source_of(model)
    if source is not None:
        return source
    if isinstance(model, SequentialNet):
        return {"kind": "layers", "layers": model.layers, "input_shape": list(model.input_shape)}
    raise CheckpointError(
        f"cannot save a {type(model).__name__} without knowing how to rebuild it; build it with "
        "ensprune.models.build_model (zoo) or build_from_factory('pkg.module:function')"
    )


def layer_shapes(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The size attributes (``SHAPE_ATTRS``) of every layer that has any, by qualified name."""
    shapes: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        attrs = {
            a: getattr(module, a)
            for a in SHAPE_ATTRS
            if isinstance(getattr(module, a, None), (int, tuple))
        }
        if attrs:
            shapes[name] = {
                a: list(v) if isinstance(v, tuple) else int(v) for a, v in attrs.items()
            }
    return shapes


def save_model(path: str | Path, model: nn.Module, meta: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (source, layer shapes, weights) and JSON-able ``meta`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "source": model_source(model),
        "shapes": layer_shapes(model),
        "edits": edits_of(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_model` (either format); returns (model, meta)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file makes torch raise almost anything (IndexError too)
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not an ensprune checkpoint ({type(exc).__name__}); "
            "delete it and re-run to recreate it"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, FORMAT_V1):
        raise CheckpointError(f"{path} is not an ensprune checkpoint (expected format {FORMAT})")
    try:
        if payload["format"] == FORMAT_V1:
            source: ModelSource = {
                "kind": "layers",
                "layers": payload["layers"],
                "input_shape": payload["input_shape"],
            }
            shapes: dict[str, dict[str, Any]] = {}
        else:
            source, shapes = payload["source"], payload["shapes"]
        model = rebuild(source, shapes, payload["state_dict"], payload.get("edits", []))
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    except EnsPruneError as exc:  # e.g. a factory that can no longer be imported
        raise CheckpointError(f"checkpoint {path} cannot rebuild its model: {exc}") from None
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} does not match its own architecture ({exc}); delete it and re-run"
        ) from None
    return model, dict(payload.get("meta", {}))


def rebuild(
    source: ModelSource,
    shapes: dict[str, dict[str, Any]],
    state_dict: dict[str, torch.Tensor],
    edits: list[dict[str, Any]] | None = None,
) -> nn.Module:
    """The dense network of ``source``, with its structural ``edits`` replayed (factorised or
    wrapped layers, see :mod:`ensprune.models.edits`), shrunk to ``shapes``, ``state_dict`` loaded.
    """
    model = build_source(source)
    replay_edits(model, list(edits or []))
    apply_shapes(model, shapes, state_dict)
    model.load_state_dict(state_dict)
    return model


def build_source(source: ModelSource) -> nn.Module:
    """The dense, freshly initialised network a source describes."""
    kind = source.get("kind")
    if kind == "layers":
        return build_from_layers(source["layers"], tuple(source["input_shape"]))
    if kind == "factory":
        return build_from_factory(source["target"], **source.get("kwargs", {}))
    if kind == "zoo":
        from ensprune.models.zoo import build_model  # the zoo imports this module's neighbours

        model = build_model(
            source["name"],
            tuple(source["input_shape"]),
            int(source["num_classes"]),
            **source.get("config", {}),
        )
        return with_source(model, source)
    raise CheckpointError(f"unknown model source kind {kind!r} (expected zoo, factory or layers)")


@torch.no_grad()
def apply_shapes(
    model: nn.Module, shapes: dict[str, dict[str, Any]], state_dict: dict[str, torch.Tensor]
) -> None:
    """Shrink ``model``'s layers in place to the recorded ``shapes`` and ``state_dict`` sizes.

    Size attributes are set from ``shapes``; every parameter or buffer whose saved tensor has
    another shape is replaced by an uninitialised one of the saved shape (the weights follow).
    """
    modules = dict(model.named_modules())
    for name, attrs in shapes.items():
        if name not in modules:
            raise CheckpointError(f"the rebuilt model has no layer {name!r}")
        for attr, value in attrs.items():
            setattr(modules[name], attr, tuple(value) if isinstance(value, list) else value)
    for key, saved in state_dict.items():
        owner_name, _, leaf = key.rpartition(".")
        owner = modules.get(owner_name)
        if owner is None:
            continue  # load_state_dict reports unexpected keys
        current = owner._parameters.get(leaf)
        if current is not None:
            if current.shape != saved.shape:
                owner._parameters[leaf] = nn.Parameter(
                    torch.empty(saved.shape, dtype=current.dtype), current.requires_grad
                )
            continue
        buffer = owner._buffers.get(leaf)
        if buffer is not None and buffer.shape != saved.shape:
            owner._buffers[leaf] = torch.empty(saved.shape, dtype=buffer.dtype)
