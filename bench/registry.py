"""A small name -> factory registry, one per kind (models, datasets, methods, metrics), and the plugins
that fill the registries from other distributions.

Modelled on torchvision's ``models/_api.py``: registering a name twice raises, asking for an
unknown name raises a ``ValueError`` that lists the valid names. Each entry may carry metadata
(a frozen dict of facts about it: a method's family and cost, a metric's direction, ...).

Plugins: an installed distribution adds methods, metrics, models or converters without editing bench by
declaring Python entry points in the groups of :data:`PLUGIN_GROUPS`::

    [project.entry-points."bench.methods"]
    brightness = "bench_brightness"            # a module: importing it registers its things
    [project.entry-points."bench.models"]
    tiny_cnn = "bench_brightness:register"     # or a callable, called once with no arguments

A registry made with ``plugins=True`` (the methods, metrics, models and converters registries) loads every
entry point of every group, once per process, before its first lookup by name (``get``, ``names``, ``in``,
...): so the CLI, a sweep and each Ray worker (a fresh process that imports bench anew) see the same names.
Each entry point is loaded once even when it is listed in several groups. A plugin that fails to load
(import error, duplicate name, ...) is skipped with a :class:`PluginWarning` naming its distribution and entry
point, and recorded in :func:`plugin_errors`; the other plugins and every command still work. The environment
variable ``BENCH_PLUGINS=0`` turns plugin loading off. :meth:`Registry.origin` tells which plugin registered
a name (``None``: bench itself, or code that registered it directly).
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
import warnings
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

    def __init__(self, kind: str, *, plugins: bool = False) -> None:
        self.kind = kind
        self.plugins = plugins  # load the entry-point plugins before the first lookup
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._origins: dict[str, Plugin] = {}

    def register(self, name: str, obj: T | None = None, *, aliases: tuple[str, ...] = (), **meta: Any):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(o: T) -> T:
            if not isinstance(name, str) or not name:
                raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
            for n in (name, *aliases):
                if n in self._entries or n in self._aliases:
                    where = self._origins.get(n)
                    by = f" (by plugin {where.label})" if where is not None else ""
                    raise ValueError(f"{self.kind} {n!r} is already registered{by}; choose another name")
            self._entries[name] = Entry(name, o, MappingProxyType(dict(meta)))
            for a in aliases:
                self._aliases[a] = name
            if _LOADING.current is not None:
                self._origins[name] = _LOADING.current
            return o

        return _add if obj is None else _add(obj)

    def origin(self, name: str) -> Plugin | None:
        """The plugin (entry point) that registered ``name``; ``None`` for bench's own entries and for
        entries registered directly by code that was not loaded as a plugin."""
        return self._origins.get(self.canonical(name))

    def _ready(self) -> None:
        if self.plugins and not _LOADING.done:
            load_plugins()

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; ``ValueError`` if unknown."""
        self._ready()
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
        self._ready()
        return sorted(self._entries)

    def aliases(self, name: str) -> list[str]:
        """The aliases of ``name`` (or of the name an alias stands for), sorted."""
        canonical = self.canonical(name)
        return sorted(a for a, n in self._aliases.items() if n == canonical)

    def __contains__(self, name: object) -> bool:
        self._ready()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ready()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def build(registry: Registry[Callable[..., T]], name: str, /, *args: Any, **kwargs: Any) -> T:
    """Call the factory registered as ``name``."""
    return registry.get(name)(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# plugins (entry points)

PLUGIN_GROUPS = ("bench.methods", "bench.metrics", "bench.models", "bench.converters")
PLUGINS_ENV = "BENCH_PLUGINS"  # "0" (or "false", "no", "off") turns plugin loading off


class PluginWarning(UserWarning):
    """A plugin's entry point failed to load; the plugin is skipped."""


@dataclass(frozen=True)
class Plugin:
    """One entry point of a plugin distribution: ``group`` (a name in :data:`PLUGIN_GROUPS`), ``name``, ``value``
    (``module`` or ``module:callable``), and the ``distribution`` that declares it with its ``version``."""

    group: str
    name: str
    value: str
    distribution: str
    version: str

    @property
    def label(self) -> str:
        """``"<distribution> <version> (<group>: <name> = <value>)"``, for messages."""
        return f"{self.distribution} {self.version} ({self.group}: {self.name} = {self.value})"


class _State:
    """What this process loaded (per process, shared by its threads; guarded by ``lock``)."""

    def __init__(self) -> None:
        self.done = False
        self.current: Plugin | None = None
        self.loaded: list[Plugin] = []
        self.errors: list[tuple[Plugin, str]] = []
        self.lock = threading.RLock()


_LOADING = _State()


def plugins_enabled() -> bool:
    """False when the environment variable ``BENCH_PLUGINS`` is ``0``, ``false``, ``no`` or ``off``."""
    return os.environ.get(PLUGINS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _bench_importing() -> bool:
    """Whether a module of the bench package is being imported right now (a lookup made while a registry's
    package is half imported must not load plugins: they import that package themselves)."""
    for name, module in list(sys.modules.items()):
        if (name == "bench" or name.startswith("bench.")) and getattr(getattr(module, "__spec__", None),
                                                                      "_initializing", False):
            return True
    return False


def _entry_points() -> list[Plugin]:
    from importlib.metadata import entry_points

    found: dict[tuple[str, str], Plugin] = {}
    for group in PLUGIN_GROUPS:
        for ep in entry_points(group=group):
            dist = getattr(ep, "dist", None)
            plugin = Plugin(group, ep.name, ep.value, getattr(dist, "name", None) or "?",
                            getattr(dist, "version", None) or "?")
            found.setdefault((plugin.distribution, ep.value), plugin)  # one load per (distribution, target)
    return list(found.values())


def _load_one(plugin: Plugin) -> None:
    from importlib import import_module

    module, _, attr = plugin.value.partition(":")
    obj = import_module(module.strip())
    for part in attr.strip().split(".") if attr.strip() else ():
        obj = getattr(obj, part)
    if attr.strip():
        if not callable(obj):
            raise TypeError(f"{plugin.value} is not callable; an entry point names a module or a callable")
        obj()


def load_plugins(*, reload: bool = False) -> list[Plugin]:
    """Load every plugin entry point of :data:`PLUGIN_GROUPS` (once per process; ``reload=True`` looks for new
    entry points and loads those not loaded yet). Returns the plugins loaded so far.

    A failing entry point gives a :class:`PluginWarning` (distribution, entry point, error) and is recorded in
    :func:`plugin_errors`; nothing is raised. Does nothing when ``BENCH_PLUGINS=0``, and defers while a bench
    module is being imported (the next lookup loads them).
    """
    state = _LOADING
    with state.lock:
        if (state.done and not reload) or state.current is not None:  # done, or a plugin's own lookup
            return list(state.loaded)
        if not plugins_enabled():
            state.done = True
            return []
        if _bench_importing():
            return list(state.loaded)
        seen = {(p.distribution, p.value) for p in state.loaded} | {(p.distribution, p.value) for p, _ in state.errors}
        try:
            for plugin in _entry_points():
                if (plugin.distribution, plugin.value) in seen:
                    continue
                # while it loads, the plugin's own lookups (same thread) see what is registered so far; other
                # threads wait on the lock
                state.current = plugin
                try:
                    _load_one(plugin)
                except Exception as exc:  # noqa: BLE001 - a broken plugin must not break every command
                    why = f"{type(exc).__name__}: {exc}"
                    state.errors.append((plugin, why))
                    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
                    at = f" (at {where.filename}:{where.lineno})" if where is not None else ""
                    warnings.warn(
                        f"bench plugin {plugin.label} failed to load and is skipped: {why}{at}. Fix or uninstall "
                        f"the distribution {plugin.distribution!r}; {PLUGINS_ENV}=0 turns all plugins off",
                        PluginWarning, stacklevel=2,
                    )
                else:
                    state.loaded.append(plugin)
                finally:
                    state.current = None
        finally:
            state.done = True
        return list(state.loaded)


def loaded_plugins() -> list[Plugin]:
    """The plugin entry points loaded in this process (after :func:`load_plugins`)."""
    return list(_LOADING.loaded)


def plugin_errors() -> list[tuple[Plugin, str]]:
    """``(plugin, "ErrorType: message")`` of every entry point that failed to load in this process."""
    return list(_LOADING.errors)
