"""Which source code a stage's results depend on: a static walk of the package's imports, and the code version
that keys every job of a stage.

The code version of a stage hashes every ``bench`` module its entry modules (:data:`STAGE_ENTRIES`) import,
transitively, together with the modules of the registered sweep extensions (their hooks run inside every job),
so an edit to any code that produces a stage's output makes that stage's stored results stale, and an edit
elsewhere does not. The walk reads the import statements (:func:`imports`, every one, also those inside
functions) and follows the rule of ``tests/test_architecture.py``: ``from bench.x import name`` is an edge to
the module ``bench.x.name`` when that is a module, else to ``bench.x``; a package's ``__init__`` counts only
where it is imported by name. Left out: the command-line front ends (``cli`` modules: they compute nothing a
result depends on, and a new sub-command should not make every stored result stale) and the root package
``bench/__init__.py`` (it only re-exports lazily).

Code registered from outside the package (a plugin, :mod:`bench.registry`) cannot be walked; instead a registry
entry whose object comes from a module outside ``bench`` contributes its meta ``version`` (default ``"0"``; bump
it when the code changes) to the keys of the jobs that run it, and of no others: a method to its explain and
sanity jobs, a metric to its score jobs, a model to its ``train`` and ``load`` jobs (``load``: the job that loads
a checkpoint in place of training; and so to everything computed from them), given as
``code_version(stage, (kind, name))``. A sweep extension's hooks run inside every job, so one from outside
contributes its version to every stage's code version. Installing a plugin therefore changes no stored job of
bench's own methods, metrics and models, and a new version of a plugin recomputes exactly its jobs.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from bench.version import VERSION

PACKAGE = "bench"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the folder of the bench package

# stage -> the modules that run it ("pkg.*" = every module of that package: bench.report imports lazily)
STAGE_ENTRIES: dict[str, tuple[str, ...]] = {
    "train": ("bench.sweep.stages.train",),
    "explain": ("bench.sweep.stages.explain",),
    "score": ("bench.sweep.stages.score",),
    "sanity": ("bench.sweep.stages.sanity",),
    "load": ("bench.sweep.stages.load",),  # a train-slot job that loads a checkpoint (bench run --checkpoint)
    "verify": ("bench.sweep.stages.verify",),  # model-verified ground truth (lesion drop per explained image)
    "class_sensitivity": ("bench.sweep.stages.class_sensitivity",),  # two-lesion composites, per method
    "report": ("bench.sweep.runner", "bench.report.*"),  # the run folder's tables and report (not a job)
}

# stage -> the registries whose entries a job of that stage runs (``code_version(stage, (kind, name))``)
STAGE_REGISTRIES: dict[str, tuple[str, ...]] = {
    "train": ("models",),
    "explain": ("methods",),
    "score": ("metrics",),
    "sanity": ("methods",),
    "load": ("models",),
    "verify": (),
    "class_sensitivity": ("methods",),
    "report": (),
}


def module_files(root: Path | None = None) -> dict[str, Path]:
    """``{module name: file}`` of every module of the package at ``root`` (default :data:`PACKAGE_ROOT`)."""
    root = Path(root or PACKAGE_ROOT)
    names = {}
    for f in sorted(root.rglob("*.py")):
        parts = (PACKAGE, *f.relative_to(root).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return names


def module_imports(name: str, path: Path, modules: dict[str, Path] | dict[str, object]) -> list[tuple[str, str]]:
    """``(imported module, imported name or "")`` for every import of a ``bench`` module in the module
    ``name`` (file ``path``); ``modules`` tells submodules from other names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, "") if sub in modules else (target, alias.name))
    return found


def imports(modules: dict[str, Path]) -> list[tuple[str, str, str]]:
    """``(importer, imported module, imported name or "")`` for every import of a bench module in ``modules``."""
    return [(name, target, what) for name, path in modules.items()
            for target, what in module_imports(name, path, modules)]


def _skipped(name: str) -> bool:
    return name == PACKAGE or name.rpartition(".")[2] == "cli"


def closure(entries, modules: dict[str, Path] | None = None) -> list[str]:
    """The modules ``entries`` import, transitively, themselves included (sorted), without ``cli`` modules and
    the root package. An entry ``"pkg.*"`` stands for every module of the package ``pkg``; names that are not
    modules of ``modules`` (default: the package at :data:`PACKAGE_ROOT`) are ignored."""
    modules = module_files() if modules is None else modules
    todo: list[str] = []
    for e in entries:
        if e.endswith(".*"):
            prefix = e[:-1]
            todo += [m for m in modules if m.startswith(prefix) or m == e[:-2]]
        else:
            todo.append(e)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in modules or _skipped(name):
            continue
        seen.add(name)
        todo += [target for target, _ in module_imports(name, modules[name], modules)]
    return sorted(seen)


def extension_modules() -> list[str]:
    """The modules of the registered sweep extensions (``type(ext).__module__``): part of every stage."""
    from bench.sweep.extensions import extensions

    return sorted({type(ext).__module__ for ext in extensions()})


def stage_modules(stage: str) -> list[str]:
    """The modules whose source :func:`code_version` hashes for ``stage`` (sorted)."""
    return closure([*STAGE_ENTRIES[stage], *extension_modules()])


def _outside(obj) -> bool:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return not (module == PACKAGE or module.startswith(PACKAGE + "."))


def _registry(kind: str):
    """The registry of ``kind``: ``methods``, ``metrics``, ``models`` or ``extensions`` (imported lazily)."""
    if kind == "methods":
        from bench.attribution import METHODS

        return METHODS
    if kind == "metrics":
        from bench.metrics import METRICS

        return METRICS
    if kind == "models":
        from bench.models import MODELS

        return MODELS
    if kind == "extensions":
        from bench.sweep.extensions import EXTENSIONS

        return EXTENSIONS
    raise ValueError(f"unknown registry {kind!r}; valid: methods, metrics, models, extensions")


def entry_version(kind: str, name: str) -> str | None:
    """The meta ``version`` (default ``"0"``) of the entry ``name`` of registry ``kind`` when its object comes
    from outside the package; ``None`` for the package's own (its source is hashed instead) and for a name
    not registered (the job fails on it with the registry's message)."""
    registry = _registry(kind)
    if name not in registry:
        return None
    entry = registry.entry(name)
    return str(entry.meta.get("version", "0")) if _outside(entry.obj) else None


def registered_versions(kinds=("methods", "metrics", "models", "extensions")) -> dict[str, str]:
    """``{"<registry>:<name>": version}`` of every entry from outside the package in the registries ``kinds``
    (see the module docstring); empty when every entry is the package's own. A Ray worker compares it with
    the driver's."""
    out = {}
    for kind in kinds:
        registry = _registry(kind)
        for name in registry.names():
            version = entry_version(kind, name)
            if version is not None:
                out[f"{kind}:{name}"] = version
    return out


_SOURCE_HASHES: dict[str, str] = {}


def forget() -> None:
    """Drop the source hashes computed so far (they are computed once per process)."""
    _SOURCE_HASHES.clear()


def code_version(stage: str, *uses: tuple[str, str]) -> str:
    """Hash of the code a stage's results depend on: the package version, the source of every module of
    :func:`stage_modules` and the versions of the sweep extensions from outside the package; and, for each
    ``(kind, name)`` of ``uses`` (the method, metric or model a job runs, ``kind`` in ``STAGE_REGISTRIES[stage]``)
    that comes from outside the package, its version (:func:`entry_version`). Changes when that code changes;
    the package's own entries in ``uses`` change nothing (their source is already hashed)."""
    wrong = [kind for kind, _ in uses if kind not in STAGE_REGISTRIES[stage]]
    if wrong:
        raise ValueError(f"stage {stage!r} runs no {', '.join(wrong)}; it runs "
                         f"{', '.join(STAGE_REGISTRIES[stage]) or 'none'}")
    if stage not in _SOURCE_HASHES:
        modules = module_files()
        h = hashlib.sha256(VERSION.encode())
        for name in closure([*STAGE_ENTRIES[stage], *extension_modules()], modules):
            h.update(name.encode() + b"\0")
            h.update(modules[name].read_bytes())
        _SOURCE_HASHES[stage] = h.hexdigest()
    plugins = registered_versions(("extensions",))
    for kind, name in uses:
        version = entry_version(kind, name)
        if version is not None:
            plugins[f"{kind}:{name}"] = version
    if not plugins:
        return _SOURCE_HASHES[stage][:12]
    extra = "".join(f"{k}={v}\0" for k, v in sorted(plugins.items()))
    return hashlib.sha256((_SOURCE_HASHES[stage] + extra).encode()).hexdigest()[:12]


def sweep_versions() -> dict[str, str]:
    """Every stage's :func:`code_version` and, as ``"plugin <registry>:<name>"``, the version of every registry
    entry from outside the package (:func:`registered_versions`): what a Ray worker must share with the driver
    that planned the sweep (same bench sources, same plugins at the same versions)."""
    out = {stage: code_version(stage) for stage in STAGE_ENTRIES}
    out.update({f"plugin {k}": v for k, v in registered_versions().items()})
    return out


__all__ = ["PACKAGE_ROOT", "STAGE_ENTRIES", "closure", "code_version", "entry_version", "extension_modules", "forget",
           "imports", "module_files", "module_imports", "registered_versions", "stage_modules", "sweep_versions"]
