"""Studies: spec files, spec -> library objects, per-member searches and the end-to-end pipeline.

Attributes are imported on first use, so ``import ensprune.study.spec`` (or the command line's
start-up) does not pay for torch and Optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DataSpec": "ensprune.study.spec",
    "PoolSpec": "ensprune.study.spec",
    "SearchSpec": "ensprune.study.spec",
    "SelectionSpec": "ensprune.study.spec",
    "StudySpec": "ensprune.study.spec",
    "RunResult": "ensprune.study.pipeline",
    "run_study": "ensprune.study.pipeline",
    "prune_one": "ensprune.study.single",
    "SAMPLERS": "ensprune.study.samplers",
    "default_storage_url": "ensprune.storage",
    "open_storage": "ensprune.storage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ensprune.study' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
