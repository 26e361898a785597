"""Third-party plugins: pruning methods, selectors, datasets and models from installed packages.

A package adds plugins by declaring Python entry points (``[project.entry-points]`` in its
``pyproject.toml``) in these groups; each entry point's name is the plugin's name:

================================  ======================================================================
group                             the object the entry point names
================================  ======================================================================
``ensprune.methods``              a :class:`~ensprune.pruning.PruningMethod` subclass
``ensprune.selectors``            a :class:`~ensprune.ensemble.selection.Selector` subclass (a dataclass)
``ensprune.datasets``             a fetch function ``SourceRequest -> RawData`` (or a ``DatasetSource``)
``ensprune.models``               a builder ``(input_shape, num_classes, **config) -> nn.Module``
================================  ======================================================================

Example (the plugin package's ``pyproject.toml``)::

    [project.entry-points."ensprune.methods"]
    my_saliency = "my_pkg.pruning:MySaliency"

    [project.entry-points."ensprune.models"]
    my_net = "my_pkg.nets:build"

After ``pip install`` of that package, ``ensprune list methods`` shows ``my_saliency`` and a study
spec can name it like a built-in one. Plugins load lazily: a registry imports them the first time
it is asked for a name, never when ``ensprune`` is imported. A plugin that fails to import is
skipped with a logged warning, and asking for it by name says why it failed; a plugin cannot
replace a built-in of the same name (it is skipped, with a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ensprune._registry import Registry

log = logging.getLogger(__name__)

GROUPS: dict[str, str] = {
    "methods": "ensprune.methods",
    "selectors": "ensprune.selectors",
    "datasets": "ensprune.datasets",
    "models": "ensprune.models",
}
"""What each entry-point group registers: ``ensprune list`` kind -> group name."""

Adapt = Callable[[str, Any], Any]


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return f"{ep.value!r}" + (f" (package {name})" if name else "")


def load_entry_points(registry: Registry[Any], group: str, adapt: Adapt | None) -> dict[str, str]:
    """Register every entry point of ``group`` in ``registry``; returns the failed ones' reasons.

    Args:
        registry: the registry to fill (its built-ins are registered already).
        group: the entry-point group, e.g. ``"ensprune.methods"``.
        adapt: turns ``(name, loaded object)`` into what the registry holds (e.g. wraps a
            dataset's fetch function), or ``None`` to register the object itself.

    Returns:
        ``{plugin name: why it could not be loaded}`` for plugins that failed to import.
    """
    broken: dict[str, str] = {}
    builtin = {name.casefold() for name in registry._registered}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        if ep.name.casefold() in builtin:
            log.warning(
                "%s plugin %r from %s is skipped: a built-in %s has that name",
                registry.kind,
                ep.name,
                _origin(ep),
                registry.kind,
            )
            continue
        try:
            obj = ep.load()
            if adapt is not None:
                obj = adapt(ep.name, obj)
        except Exception as exc:  # a broken plugin must not break the others or the CLI
            broken[ep.name] = f"{_origin(ep)} failed to load ({type(exc).__name__}: {exc})"
            log.warning("%s plugin %r %s", registry.kind, ep.name, broken[ep.name])
            continue
        current = registry._registered.get(ep.name)
        if current is None:
            registry.register(ep.name)(obj)
        elif current is not obj:  # its module registered something else under that name
            log.warning(
                "%s plugin %r from %s is skipped: its import registered another object under "
                "that name",
                registry.kind,
                ep.name,
                _origin(ep),
            )
    return broken
