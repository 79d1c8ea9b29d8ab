"""A small name -> factory registry, one per kind (models, datasets, methods, metrics).

Modelled on torchvision's ``models/_api.py``: registering a name twice raises, asking for an
unknown name raises a ``ValueError`` that lists the valid names. Each entry may carry metadata
(a frozen dict of facts about it: a method's family and cost, a metric's direction, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its name and metadata."""

    name: str
    obj: T
    meta: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))


class Registry(Generic[T]):
    """Name -> object registry.

    >>> MODELS = Registry("model")
    >>> @MODELS.register("tiny", family="test")
    ... def tiny(): ...
    >>> MODELS.names()
    ['tiny']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, obj: T | None = None, *, aliases: tuple[str, ...] = (), **meta: Any):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(o: T) -> T:
            for n in (name, *aliases):
                if n in self._entries or n in self._aliases:
                    raise ValueError(f"{self.kind} {n!r} is already registered")
            self._entries[name] = Entry(name, o, MappingProxyType(dict(meta)))
            for a in aliases:
                self._aliases[a] = name
            return o

        return _add if obj is None else _add(obj)

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; ``ValueError`` if unknown."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise ValueError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.canonical(name)]

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def meta(self, name: str) -> MappingProxyType:
        return self.entry(name).meta

    def names(self) -> list[str]:
        return sorted(self._entries)

    def aliases(self, name: str) -> list[str]:
        """The aliases of ``name`` (or of the name an alias stands for), sorted."""
        canonical = self.canonical(name)
        return sorted(a for a, n in self._aliases.items() if n == canonical)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def build(registry: Registry[Callable[..., T]], name: str, /, *args: Any, **kwargs: Any) -> T:
    """Call the factory registered as ``name``."""
    return registry.get(name)(*args, **kwargs)
