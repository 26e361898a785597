"""A tiny name -> object registry used by every plugin family (datasets, models, methods, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ensprune.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to plugins; filled by the ``register`` decorator at import time.

    Example:
        >>> METRICS: Registry[Callable[..., float]] = Registry("metric")
        >>> @METRICS.register("bd")
        ... def bd(...): ...
        >>> METRICS.get("bd")
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under ``name`` (names are unique)."""

        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the plugin called ``name``; an unknown name raises with the valid ones listed.

        Names are matched case-insensitively when there is no exact match (``"CK"`` is ``ck``).
        """
        if name in self._items:
            return self._items[name]
        folded = {key.casefold(): key for key in self._items}
        try:
            return self._items[folded[str(name).casefold()]]
        except KeyError:
            valid = ", ".join(self.names())
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid {self.kind} names: {valid}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, plugin) pairs, sorted by name."""
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
