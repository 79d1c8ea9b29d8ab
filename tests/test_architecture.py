"""The house rules of the package, checked on its source: imports run one way, no cycles, no private names.

Every import statement counts, also one inside a function (a late import hides a cycle, it does not remove
it). ``from bench.x import name`` is an edge to ``bench.x.name`` when that is a module, else to ``bench.x``.
The walk is the package's own (:func:`bench.sweep.sources.imports`), the one that gives each sweep stage its
code version.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sweep.sources import imports, module_files

PACKAGE = Path(__file__).resolve().parent.parent / "bench"

# stage -> the stages it must not import (its ``cli`` module, which composes stages for one command, is exempt)
FORBIDDEN = {
    "data": ("train", "models", "metrics", "attribution", "sweep", "report", "perf"),
    "models": ("data", "train", "metrics", "attribution", "sweep", "report", "perf"),
    "attribution": ("metrics", "train", "sweep", "report", "perf"),
    "metrics": ("attribution", "train", "sweep", "report", "perf"),
}
# the one allowed exception: the randomisation test calls the public explain()
ALLOWED = {("metrics", "bench.attribution", "explain")}


def module_names() -> dict[str, Path]:
    return module_files(PACKAGE)


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph():
    modules = module_names()
    return modules, imports(modules)


def test_the_walk_sees_the_package(graph):
    modules, found = graph
    assert {"bench", "bench.sweep.jobs", "bench.metrics.localisation", "bench.data.loader"} <= set(modules)
    assert ("bench.sweep.runner", "bench.sweep.jobs", "") in {(a, b, "") for a, b, _ in found}


def test_no_import_cycle_in_the_package(graph):
    modules, found = graph
    edges: dict[str, set[str]] = {}
    for importer, target, _ in found:
        if target in modules and target != importer:
            edges.setdefault(importer, set()).add(target)
    assert cycles(edges) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_a_private_name_of_another(graph):
    _, found = graph
    private = [(a, f"{b}.{n}") for a, b, n in found
               if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))]
    assert private == []


def test_stages_import_one_way(graph):
    _, found = graph
    wrong = []
    for importer, target, name in found:
        own, other = stage(importer), stage(target)
        if importer.endswith(".cli") or other not in FORBIDDEN.get(own, ()):
            continue
        if (own, target, name) in ALLOWED:
            continue
        wrong.append(f"{importer} imports {target}{'.' + name if name else ''}")
    assert wrong == []
