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

Code registered from outside the package cannot be walked; instead a registry entry whose object comes from
a module outside ``bench`` contributes its meta ``version`` (default ``"0"``; bump it when the code changes)
to the stages that use it: methods to ``explain`` and ``sanity``, metrics to ``score``, models to ``train``,
and sweep extensions to every stage.
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
    "report": ("bench.sweep.runner", "bench.report.*"),  # the run folder's tables and report (not a job)
}

# stage -> the registries whose entries from outside the package key it by their meta "version"
STAGE_REGISTRIES: dict[str, tuple[str, ...]] = {
    "train": ("models",),
    "explain": ("methods",),
    "score": ("metrics",),
    "sanity": ("methods",),
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


def registered_versions(stage: str) -> dict[str, str]:
    """``{"<registry>:<name>": version}`` of the registry entries from outside the package that ``stage`` uses
    (see the module docstring); empty when every entry is the package's own."""
    from bench.sweep.extensions import EXTENSIONS

    registries = {"extensions": EXTENSIONS}
    kinds = STAGE_REGISTRIES[stage]
    if "methods" in kinds:
        from bench.attribution import METHODS

        registries["methods"] = METHODS
    if "metrics" in kinds:
        from bench.metrics import METRICS

        registries["metrics"] = METRICS
    if "models" in kinds:
        from bench.models import MODELS

        registries["models"] = MODELS
    out = {}
    for kind, registry in registries.items():
        for name in registry.names():
            entry = registry.entry(name)
            if _outside(entry.obj):
                out[f"{kind}:{name}"] = str(entry.meta.get("version", "0"))
    return out


_SOURCE_HASHES: dict[str, str] = {}


def forget() -> None:
    """Drop the source hashes computed so far (they are computed once per process)."""
    _SOURCE_HASHES.clear()


def code_version(stage: str) -> str:
    """Hash of the code a stage's results depend on: the package version, the source of every module of
    :func:`stage_modules` and the versions of :func:`registered_versions`. Changes when that code changes."""
    if stage not in _SOURCE_HASHES:
        modules = module_files()
        h = hashlib.sha256(VERSION.encode())
        for name in closure([*STAGE_ENTRIES[stage], *extension_modules()], modules):
            h.update(name.encode() + b"\0")
            h.update(modules[name].read_bytes())
        _SOURCE_HASHES[stage] = h.hexdigest()
    plugins = registered_versions(stage)
    if not plugins:
        return _SOURCE_HASHES[stage][:12]
    extra = "".join(f"{k}={v}\0" for k, v in sorted(plugins.items()))
    return hashlib.sha256((_SOURCE_HASHES[stage] + extra).encode()).hexdigest()[:12]


__all__ = ["PACKAGE_ROOT", "STAGE_ENTRIES", "closure", "code_version", "extension_modules", "forget", "imports",
           "module_files", "module_imports", "registered_versions", "stage_modules"]
