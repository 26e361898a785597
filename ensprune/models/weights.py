"""Trained weights from a file into a network built here: a plain state_dict or an ensprune checkpoint.

Users bring networks trained elsewhere: ``ensprune prune --model my_pkg.nets:make_net
--checkpoint dense.pt`` builds the network from its factory and loads the weights into it. The
file is read with ``torch.load(weights_only=True)`` (tensors and plain containers only, never
pickled code) and checked key by key and shape by shape before anything is loaded, so a mismatch
is one line naming the first offending parameter.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ensprune.errors import CheckpointError

CHECKPOINT_FORMAT_PREFIX = "ensprune-checkpoint/"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict stored in ``path``: a plain ``torch.save(model.state_dict())`` file, or
    the ``state_dict`` of an ensprune checkpoint (any format version).

    Raises:
        CheckpointError: a missing, unreadable or pickled-code file, or one holding neither.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read with weights_only=True ({first[:160]}); save "
            "model.state_dict() with torch.save, not the pickled model"
        ) from None
    if isinstance(payload, Mapping) and str(payload.get("format", "")).startswith(
        CHECKPOINT_FORMAT_PREFIX
    ):
        payload = payload.get("state_dict")
    if not isinstance(payload, Mapping) or not payload:
        raise CheckpointError(
            f"checkpoint {path} holds neither a state_dict nor an ensprune checkpoint; save "
            "model.state_dict() with torch.save"
        )
    bad = [k for k, v in payload.items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if bad:
        raise CheckpointError(
            f"checkpoint {path} is not a state_dict: entry {bad[0]!r} is not a named tensor"
        )
    return dict(payload)


def _listed(keys: list[str], limit: int = 3) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights in ``path`` into ``model`` (in place), refusing any mismatch.

    Raises:
        CheckpointError: one line naming missing or unexpected keys and the first shape mismatch.

    Example:
        >>> net = load_weights(build_from_factory("my_pkg.nets:make_net"), "dense.pt")
    """
    return load_state(model, read_state_dict(path), f"checkpoint {path}")


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> nn.Module:
    """Load ``state`` into ``model`` after checking keys and shapes; ``what`` names it in errors."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if mismatched:
        k = mismatched[0]
        problems.append(
            f"{len(mismatched)} shape mismatch(es), first {k}: checkpoint "
            f"{tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        )
    if missing:
        problems.append(f"missing keys {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listed(unexpected)}")
    if problems:
        raise CheckpointError(
            f"{what} does not fit the {type(model).__name__} built here: "
            f"{'; '.join(problems)}; build the model with the options it was trained with"
        )
    model.load_state_dict(dict(state))
    return model
