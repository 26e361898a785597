"""Where a model comes from: a zoo name and config, or a user's factory named by import path.

A network's *source* is what a checkpoint records instead of pickled code: enough to rebuild the
dense network (``{"kind": "zoo", "name": "resnet20", ...}`` or ``{"kind": "factory", "target":
"my_pkg.nets:make_net", "kwargs": {...}}``). The checkpoint then re-applies the recorded shapes of
pruned layers and loads the weights (see :mod:`ensprune.models.checkpoint`).

A factory is named the way Hydra's ``_target_`` names one: ``"package.module:function"`` (or
``"package.module:Class"``, or a dotted attribute after the colon). Loading a checkpoint that
names a factory imports that module, so only name factories from code you trust.

Example:
    >>> net = build_from_factory("my_pkg.nets:make_net", width=32)
    >>> source_of(net)
    {'kind': 'factory', 'target': 'my_pkg.nets:make_net', 'kwargs': {'width': 32}}
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from typing import Any

from torch import nn

from ensprune.errors import SpecError

ModelSource = dict[str, Any]
# The attribute a built network carries its source in (a plain, JSON-able dict; deep copies and
# in-place pruning keep it).
SOURCE_ATTR = "ensprune_source"
_TARGET = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_factory_path(text: str) -> bool:
    """True when ``text`` looks like ``"pkg.module:function"`` (zoo names have no colon)."""
    return isinstance(text, str) and _TARGET.match(text.strip()) is not None


def resolve_factory(target: str) -> Callable[..., Any]:
    """The callable named by ``"pkg.module:attr"`` (``attr`` may be dotted: ``"Class.build"``).

    Raises:
        SpecError: a malformed path, a module that cannot be imported, a missing attribute, or
            something that is not callable; the message says which and how to fix it.
    """
    if not is_factory_path(target):
        raise SpecError(
            f"model factory {target!r} is not an import path; write it as 'package.module:function'"
        )
    module_name, attr_path = target.strip().split(":", 1)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(
            f"model factory {target!r}: cannot import module {module_name!r} ({exc}); install it "
            "or add its folder to PYTHONPATH"
        ) from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpecError(
                f"model factory {target!r}: module {module_name!r} has no attribute {attr_path!r}"
            ) from None
    if not callable(obj):
        raise SpecError(f"model factory {target!r} is not callable ({type(obj).__name__})")
    return obj


def build_from_factory(target: str, **kwargs: Any) -> nn.Module:
    """Call the factory named ``target`` with ``kwargs``; the network remembers its source.

    ``kwargs`` must be JSON-able (they are written into checkpoints).

    Raises:
        SpecError: the factory cannot be resolved, refuses the arguments, or returns something
            that is not a ``torch.nn.Module``.
    """
    _check_json("model factory arguments", kwargs)
    factory = resolve_factory(target)
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise SpecError(f"model factory {target!r} refused its arguments {kwargs}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise SpecError(
            f"model factory {target!r} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return with_source(model, {"kind": "factory", "target": target.strip(), "kwargs": kwargs})


def with_source(model: nn.Module, source: ModelSource) -> nn.Module:
    """Record ``source`` on ``model`` (in place) and return it."""
    _check_json("a model source", source)
    object.__setattr__(model, SOURCE_ATTR, json.loads(json.dumps(source)))
    return model


def source_of(model: nn.Module) -> ModelSource | None:
    """The source recorded on ``model``, or ``None`` for a network built some other way."""
    source = getattr(model, SOURCE_ATTR, None)
    return dict(source) if isinstance(source, dict) else None


def _check_json(what: str, value: Any) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise SpecError(
            f"{what} must be JSON-able (numbers, strings, lists, dicts); got {value!r}"
        ) from None
