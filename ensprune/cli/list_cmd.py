"""``ensprune list KIND``: the registered plugins of one kind, with a one-line description each."""

from __future__ import annotations

import argparse
import importlib
import inspect
from typing import Any

from ensprune._registry import Registry

# kind -> (module, registry attribute); only the asked-for module is imported, so listing
# metrics never pays for torch and listing methods never pays for scikit-learn.
REGISTRIES: dict[str, tuple[str, str]] = {
    "datasets": ("ensprune.data", "DATASETS"),
    "models": ("ensprune.models.zoo", "MODELS"),
    "methods": ("ensprune.pruning", "METHODS"),
    "schedules": ("ensprune.pruning._schedule", "SCHEDULES"),
    "optimizers": ("ensprune.models.training", "OPTIMIZERS"),
    "lr_schedules": ("ensprune.models.training", "LR_SCHEDULES"),
    "augmentations": ("ensprune.data.augment", "AUGMENTATIONS"),
    "samplers": ("ensprune.study.samplers", "SAMPLERS"),
    "pruners": ("ensprune.study.pruners", "PRUNERS"),
    "metrics": ("ensprune.ensemble.diversity", "METRICS"),
    "selectors": ("ensprune.ensemble.selection", "SELECTORS"),
    "voting": ("ensprune.ensemble.voting", "VOTING"),
}
KINDS = tuple(REGISTRIES)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "list",
        help=f"list registered plugins: {', '.join(KINDS)}",
        description="List the registered plugins of one kind with a one-line description; the "
        "names may be written in any case wherever ensprune takes them.",
    )
    parser.add_argument("kind", type=str.lower, choices=KINDS, help="what to list")
    parser.set_defaults(handler=run)


def _describe(obj: Any) -> str:
    text = getattr(obj, "description", "") or inspect.getdoc(obj) or ""
    return str(text).strip().splitlines()[0] if str(text).strip() else ""


def registry(kind: str) -> Registry[Any]:
    """The registry behind ``ensprune list KIND`` (imports only its own module)."""
    module, attribute = REGISTRIES[kind]
    found: Registry[Any] = getattr(importlib.import_module(module), attribute)
    return found


def entries(kind: str) -> list[tuple[str, str]]:
    """(name, one-line description) of every registered plugin of ``kind``."""
    return [(name, _describe(obj)) for name, obj in registry(kind).items()]


def run(args: argparse.Namespace) -> int:
    rows = entries(args.kind)
    width = max(len(name) for name, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}".rstrip())
    return 0
