"""A tiny name -> object registry used by every plugin family (datasets, models, methods, ...)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from ensprune.errors import SpecError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to plugins; filled by the ``register`` decorator at import time.

    Example:
        >>> METRICS: Registry[Callable[..., float]] = Registry("metric")
        >>> @METRICS.register("bd")
        ... def bd(...): ...
        >>> METRICS.get("bd")
    """

    def __init__(
        self,
        kind: str,
        entry_points: str | None = None,
        adapt: Callable[[str, Any], T] | None = None,
        supplied: Iterable[str] = (),
    ) -> None:
        """
        Args:
            kind: what the plugins are, for messages (``"pruning method"``).
            entry_points: the entry-point group third-party packages register plugins in
                (``"ensprune.methods"``); loaded lazily, on the first lookup (see
                :mod:`ensprune.plugins`).
            adapt: turns ``(name, object an entry point names)`` into a plugin of this registry.
            supplied: arguments the library passes itself (e.g. a sampler's ``seed``); they
                are not knobs a user sets, so :meth:`knobs` leaves them out.
        """
        self.kind = kind
        self.entry_points = entry_points
        self._adapt = adapt
        self.supplied = frozenset(supplied)
        self._registered: dict[str, T] = {}
        self._plugins_loaded = entry_points is None
        self._broken: dict[str, str] = {}

    @property
    def _items(self) -> dict[str, T]:
        """Every plugin: the built-ins, and the entry points' ones from the first lookup on."""
        if not self._plugins_loaded and self.entry_points is not None:
            self._plugins_loaded = True
            from ensprune.plugins import load_entry_points

            self._broken = load_entry_points(self, self.entry_points, self._adapt)
        return self._registered

    @_items.setter
    def _items(self, items: dict[str, T]) -> None:
        """Replace every plugin (tests swap in a private copy; see monkeypatch)."""
        self._registered = items

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under ``name`` (names are unique).

        A registered class gets ``name`` as its ``name`` attribute, so a plugin writes its name
        once, in the decorator; a class that spells out a different ``name`` is refused.
        """

        def decorator(obj: T) -> T:
            if name in self._registered:  # no plugin loading here: built-ins register at import
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if isinstance(obj, type):
                own = obj.__dict__.get("name")
                if isinstance(own, str) and own != name:
                    raise ValueError(
                        f"{self.kind} class {obj.__qualname__} says name={own!r} but is "
                        f"registered as {name!r}; drop the class attribute, the decorator sets it"
                    )
                setattr(obj, "name", name)  # noqa: B010 - a ClassVar the plugin must not repeat
            self._registered[name] = obj
            return obj

        return decorator

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name``: exact first, then case-insensitive (``"CK"`` -> ``"ck"``).

        Callers key results, files and dictionaries by this name, never by what the user typed, so
        ``"GD"`` and ``"gd"`` give the same result everywhere. An unknown name raises
        :class:`~ensprune.errors.UnknownNameError` listing the valid ones.
        """
        if isinstance(name, str) and name in self._items:
            return name
        folded = {key.casefold(): key for key in self._items}
        try:
            return folded[str(name).strip().casefold()]
        except KeyError:
            broken = {k.casefold(): v for k, v in self._broken.items()}.get(
                str(name).strip().casefold()
            )
            if broken is not None:
                raise UnknownNameError(
                    f"{self.kind} {name!r} is a plugin that {broken}; fix or uninstall it"
                ) from None
            valid = ", ".join(self.names())
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid {self.kind} names: {valid}"
            ) from None

    def get(self, name: str) -> T:
        """Return the plugin called ``name`` (any case); an unknown name raises listing the valid ones."""
        return self._items[self.canonical(name)]

    def knobs(self, name: str) -> tuple[str, ...] | None:
        """The keyword arguments plugin ``name`` takes from users, or None when it takes any.

        Read from the plugin itself, so a new plugin is covered without listing them anywhere:
        a ``knobs`` attribute when it declares one, else a dataclass's init fields, else the
        signature of the class's ``__init__`` or of the factory function. Arguments the
        library supplies (``supplied``) are left out.
        """
        obj: Any = self.get(name)
        declared = getattr(obj, "knobs", None)
        if isinstance(declared, (tuple, list, frozenset, set)):
            return tuple(k for k in declared if k not in self.supplied)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            names = [f.name for f in dataclasses.fields(obj) if f.init]
        else:
            found = _init_knobs(obj) if isinstance(obj, type) else _signature_knobs(obj)
            if found is None:
                return None
            names = found
        return tuple(k for k in names if k not in self.supplied)

    def check_knobs(self, name: str, given: Mapping[str, Any], where: str = "") -> None:
        """Refuse settings that plugin ``name`` does not take, naming the valid ones.

        Raises:
            SpecError: one line naming the unknown knob(s), the plugin and its valid knobs.
        """
        valid = self.knobs(name)
        if valid is None:
            return
        unknown = sorted(str(k) for k in given if k not in valid)
        if unknown:
            prefix = f"{where}: " if where else ""
            plural = "s" if len(unknown) > 1 else ""
            raise SpecError(
                f"{prefix}{', '.join(map(repr, unknown))} "
                f"{'are not knobs' if plural else 'is not a knob'} of {self.kind} {self.canonical(name)!r}; its knobs: "
                f"{', '.join(valid) or '(none)'}"
            )

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, plugin) pairs, sorted by name."""
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        """True when ``name`` is registered, in any case."""
        if not isinstance(name, str):
            return False
        return name in self._items or name.strip().casefold() in {k.casefold() for k in self._items}

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def _signature_knobs(func: Any) -> list[str] | None:
    """Named keyword parameters of ``func``; None when it takes ``**kwargs`` or has no signature."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _init_knobs(cls: type) -> list[str] | None:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the class hierarchy.

    A subclass that adds its own knobs and passes ``**kwargs`` on to ``super().__init__`` (the
    convention of the pruning methods) accepts its own named parameters plus those of the next
    ``__init__`` in its MRO; the walk stops at the first ``__init__`` without ``**kwargs``.
    None when the chain ends in ``object`` (anything goes) or a signature cannot be read.
    """
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return None
        try:
            params = list(inspect.signature(init).parameters.values())[1:]  # drop self
        except (TypeError, ValueError):
            return None
        names += [
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None
