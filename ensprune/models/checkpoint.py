"""Checkpoints: layer list + state_dict + metadata, loaded with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from ensprune.errors import CheckpointError
from ensprune.models.architecture import SequentialNet, build_from_layers

FORMAT = "ensprune-checkpoint/1"


def save_model(path: str | Path, model: SequentialNet, meta: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (architecture and weights) and JSON-able ``meta`` atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "layers": model.layers,
        "input_shape": list(model.input_shape),
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


def load_model(path: str | Path) -> tuple[SequentialNet, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_model`; returns (model, meta)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
    ) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not an ensprune checkpoint ({type(exc).__name__}); "
            "delete it and re-run to recreate it"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ensprune checkpoint (expected format {FORMAT})")
    try:
        model = build_from_layers(payload["layers"], tuple(payload["input_shape"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} does not match its own architecture ({exc}); delete it and re-run"
        ) from None
    return model, dict(payload.get("meta", {}))
