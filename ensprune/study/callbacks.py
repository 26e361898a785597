"""Optuna callbacks for every member study: from Python objects or a spec's import paths.

A spec lists callbacks as import paths of FACTORIES, ``"package.module:name"``: the named object
is called with no arguments to make the callback, once per member study and in the process that
runs it (so each worker makes its own tracker client). ``run_study(callbacks=[...])`` takes the
callback objects themselves (picklable ones when member studies run in worker processes).

Example, MLflow tracking through ``optuna-integration`` (``pip install optuna-integration mlflow``)::

    # tracking.py
    from optuna_integration.mlflow import MLflowCallback

    def mlflow_callback():
        return MLflowCallback(tracking_uri="file:./mlruns", metric_name=["val_accuracy", "sparsity"])

    # spec.toml
    [study]
    callbacks = ["tracking:mlflow_callback"]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from ensprune.errors import SpecError

Callback = Callable[[Any, Any], None]  # (optuna.Study, optuna.trial.FrozenTrial) -> None


def resolve_factory(path: str, where: str = "[study] callbacks") -> Callable[[], Callback]:
    """The factory named by ``"package.module:name"`` (imported, not yet called)."""
    module_name, sep, attr = str(path).partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(
            f"{where}: {path!r} is not an import path; write 'package.module:factory_name'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"{where}: cannot import {module_name!r} ({exc})") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise SpecError(f"{where}: module {module_name!r} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise SpecError(
            f"{where}: {path!r} is not callable; name a function that returns a callback"
        )
    return target


def make_callbacks(paths: Sequence[str]) -> list[Callback]:
    """Call each factory once and check that what it returns is a callback."""
    made = []
    for path in paths:
        callback = resolve_factory(path)()
        if not callable(callback):
            raise SpecError(
                f"[study] callbacks: {path!r} returned {type(callback).__name__}, not a callable "
                "taking (study, trial)"
            )
        made.append(callback)
    return made
