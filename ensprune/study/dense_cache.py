"""A disk cache of trained dense networks, so ``ensprune prune`` trains each one once.

An entry is keyed by everything that decides the trained weights: dataset, training subsample,
model (and its options), seed and the training recipe (:class:`~ensprune.models.TrainConfig`
plus the lr factor of an annealed second stage). The key's SHA-256 names the file, and the key
itself is stored inside it and compared on load, so a renamed or colliding file is never used
for the wrong network. An entry holds the trained weights, the initial weights θ₀ and the early
checkpoint (what rewinding methods such as DropNet need), and a few facts about the training.

Location: ``$ENSPRUNE_CACHE_DIR/dense/`` when that variable is set, else
``$XDG_CACHE_HOME/ensprune/dense/`` (``~/.cache/ensprune/dense/`` by default). Entries are
written atomically and read with ``torch.load(..., weights_only=True)``; an unreadable or
mismatched entry is logged as a warning and trained again (then overwritten), never fatal.
Deleting the folder is always safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ensprune.models import TrainConfig
from ensprune.rundir import write_bytes

logger = logging.getLogger("ensprune.study")

CACHE_FORMAT = "ensprune-dense-cache/1"
# TrainConfig fields that say where training runs, not how: the same recipe on another device
# is the same entry.
NOT_RECIPE = ("device",)

__all__ = ["CachedDense", "cache_dir", "cache_key", "cache_path", "load_entry", "store_entry"]

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class CachedDense:
    """A trained dense network as cached: weights, θ₀, early checkpoint and training facts."""

    state: StateDict
    initial_state: StateDict
    early_state: StateDict | None
    facts: dict[str, Any]


def cache_dir() -> Path:
    """Where dense networks are cached (see the module docstring)."""
    root = os.environ.get("ENSPRUNE_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "dense"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "ensprune" / "dense"


def recipe_of(config: TrainConfig, anneal: float | None) -> dict[str, Any]:
    """The dense training recipe as plain data: the config's fields (not ``device``) + ``anneal``."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in NOT_RECIPE}
    return {**fields, "anneal": anneal}


def cache_key(
    *,
    dataset: str,
    model: str,
    model_args: dict[str, Any],
    seed: int,
    max_train: int | None,
    recipe: dict[str, Any],
) -> str:
    """The canonical JSON text that identifies one trained dense network."""
    return json.dumps(
        {
            "format": CACHE_FORMAT,
            "dataset": dataset,
            "model": model,
            "model_args": model_args,
            "seed": seed,
            "max_train": max_train,
            "recipe": recipe,
        },
        sort_keys=True,
        default=str,
    )


def cache_path(key: str, *, dataset: str, model: str, seed: int, root: Path | None = None) -> Path:
    """The entry's file: readable names first, then the key's hash."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
    safe_model = "".join(c if c.isalnum() or c in "-_" else "_" for c in model)
    return (root or cache_dir()) / f"{safe_model}-{dataset}-s{seed}-{digest}.pt"


def load_entry(path: Path, key: str) -> CachedDense | None:
    """The entry at ``path`` if it exists, is readable and was stored under ``key``; else None.

    A corrupt or mismatched file is reported as a warning (it is retrained and overwritten).
    """
    if not path.is_file():
        return None
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
        logger.warning(
            "cached dense network %s is unreadable (%s); training it again",
            path,
            type(exc).__name__,
        )
        return None
    problem = _check_payload(payload, key)
    if problem:
        logger.warning("cached dense network %s %s; training it again", path, problem)
        return None
    early = payload["early_state"] or None  # stored as {} when there was no early checkpoint
    return CachedDense(
        state=payload["state"],
        initial_state=payload["initial_state"],
        early_state=early,
        facts=json.loads(payload["facts"]),
    )


def _check_payload(payload: Any, key: str) -> str:
    """Why ``payload`` is not a valid entry for ``key`` ('' when it is)."""
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        return f"is not a {CACHE_FORMAT} entry"
    if payload.get("key") != key:
        return "was stored under another key (a different network)"
    for name in ("state", "initial_state", "early_state"):
        states = payload.get(name)
        if not isinstance(states, dict) or not all(
            isinstance(v, torch.Tensor) for v in states.values()
        ):
            return f"has no valid {name!r}"
    if not payload["state"] or not isinstance(payload.get("facts"), str):
        return "is incomplete"
    return ""


def store_entry(path: Path, key: str, entry: CachedDense) -> Path:
    """Write ``entry`` under ``key`` to ``path`` atomically (a killed run leaves no partial file)."""

    def cpu(states: StateDict | None) -> StateDict:
        return {k: v.detach().cpu().clone() for k, v in (states or {}).items()}

    payload = {
        "format": CACHE_FORMAT,
        "key": key,
        "state": cpu(entry.state),
        "initial_state": cpu(entry.initial_state),
        "early_state": cpu(entry.early_state),
        "facts": json.dumps(entry.facts, default=str),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes(path, buffer.getvalue())
