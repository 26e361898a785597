"""``ensprune list datasets|models|methods|metrics|selectors|augmentations``."""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from ensprune._registry import Registry

KINDS = ("datasets", "models", "methods", "metrics", "selectors", "augmentations")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "list", help="list registered datasets, models, methods, metrics, selectors, augmentations"
    )
    parser.add_argument("kind", choices=KINDS, help="what to list")
    parser.set_defaults(handler=run)


def _describe(obj: Any) -> str:
    text = getattr(obj, "description", "") or inspect.getdoc(obj) or ""
    return str(text).strip().splitlines()[0] if str(text).strip() else ""


def _registries() -> dict[str, Registry[Any]]:
    from ensprune.data import DATASETS
    from ensprune.data.augment import AUGMENTATIONS
    from ensprune.ensemble import METRICS, SELECTORS
    from ensprune.models import MODELS
    from ensprune.pruning import METHODS

    return {
        "datasets": DATASETS,
        "models": MODELS,
        "methods": METHODS,
        "metrics": METRICS,
        "selectors": SELECTORS,
        "augmentations": AUGMENTATIONS,
    }


def entries(kind: str) -> list[tuple[str, str]]:
    """(name, one-line description) of every registered plugin of ``kind``."""
    return [(name, _describe(obj)) for name, obj in _registries()[kind].items()]


def run(args: argparse.Namespace) -> int:
    rows = entries(args.kind)
    width = max(len(name) for name, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}".rstrip())
    return 0
