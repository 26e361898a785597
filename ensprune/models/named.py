"""A network by name: a zoo model (any case) or a user's factory named by its import path.

``ensprune prune --model`` and a spec's ``[pool] architectures`` accept both: ``"resnet20"`` (see
``ensprune list models``) or ``"my_pkg.nets:make_net"``, the way Hydra's ``_target_`` names a
callable. A factory is called with the options given (``--model-arg width=32``), plus
``input_shape`` and ``num_classes`` of the dataset when its signature takes them and they were
not given; it must return a ``torch.nn.Module``. The network records where it came from, so its
checkpoints rebuild it without pickling code (see :mod:`ensprune.models.checkpoint`).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ensprune.models.factory import build_from_factory, is_factory_path, resolve_factory
from ensprune.models.zoo import MODELS, build_model


def canonical_model_name(name: str) -> str:
    """The registered spelling of a zoo name, or the factory path as written (stripped).

    Raises:
        UnknownNameError: neither a zoo name nor a ``pkg.module:function`` path.
        SpecError: a factory path whose module or attribute cannot be found.
    """
    if isinstance(name, str) and is_factory_path(name):
        resolve_factory(name)  # fail now, before any data is loaded or network trained
        return name.strip()
    return MODELS.canonical(name)


def build_named(
    name: str, input_shape: tuple[int, ...], num_classes: int, seed: int, **config: Any
) -> nn.Module:
    """Build zoo model or factory ``name`` with weights initialised from ``seed``.

    The global RNG is left untouched. ``config`` goes to the zoo builder or the factory.

    Example:
        >>> build_named("my_pkg.nets:make_net", (1, 28, 28), 10, seed=0, width=32)
    """
    kwargs = dict(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if not is_factory_path(name):
            return build_model(name, input_shape, num_classes, **kwargs)
        accepted = _named_parameters(resolve_factory(name))
        for key, value in (("input_shape", list(input_shape)), ("num_classes", int(num_classes))):
            if key in accepted and key not in kwargs:
                kwargs[key] = value
        return build_from_factory(name, **kwargs)


def _named_parameters(factory: Any) -> set[str]:
    """The parameter names ``factory`` declares (not those a ``**kwargs`` would swallow)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
