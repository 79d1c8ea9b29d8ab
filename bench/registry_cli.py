"""``bench list [methods|metrics|models|suites|datasets]``: every registered name, one line each.

It only reads the registries (and the suite files and dataset cards), so it sits beside ``bench/cli.py``
rather than in one stage: methods (family, whether it explains a layer, default options), metrics (kind,
which direction is better), models (default CAM layer and every CAM layer), suites (their description
line) and datasets (modality, classes). With no kind it lists all five. Entries from plugins (entry points,
:mod:`bench.registry`) are marked in a second column ``from`` (``plugin <distribution> <version>``), shown when
a table has any; plugins that failed to load are listed at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

KINDS = ("methods", "metrics", "models", "suites", "datasets")


def _options(options: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in options.items()) or "-"


def origin(registry, name: str) -> str:
    """Where an entry comes from: ``bench``, ``plugin <distribution> <version>`` (an entry point, see
    :mod:`bench.registry`), or the module that registered it directly."""
    plugin = registry.origin(name)
    if plugin is not None:
        return f"plugin {plugin.distribution} {plugin.version}"
    obj = registry.get(name)
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return "bench" if module == "bench" or module.startswith("bench.") else module


def _with_origin(table: list[tuple[str, ...]], registry) -> list[tuple[str, ...]]:
    """``table`` with a second column ``from`` (:func:`origin`) when any of its entries is not bench's own."""
    names = [r[0] for r in table[1:]]
    where = [origin(registry, n) for n in names]
    if all(w == "bench" for w in where):
        return table
    return [(table[0][0], "from", *table[0][1:]), *[(r[0], w, *r[1:]) for r, w in zip(table[1:], where)]]


def method_rows() -> list[tuple[str, ...]]:
    """Header + one row per attribution method: name, family, uses a layer, default options."""
    from bench.attribution import METHODS

    rows = [("method", "family", "layer", "default options")]
    for name in METHODS.names():
        meta = METHODS.meta(name)
        rows.append((name, meta["family"], "yes" if meta["uses_layer"] else "no", _options(meta["options"])))
    return _with_origin(rows, METHODS)


def metric_rows() -> list[tuple[str, ...]]:
    """Header + one row per metric: name, kind (localisation / faithfulness), direction, aliases."""
    from bench.metrics import METRICS

    rows = [("metric", "kind", "better", "aliases")]
    for name in METRICS.names():
        meta = METRICS.meta(name)
        rows.append((name, meta["kind"], f"{meta['direction']} is better", ", ".join(METRICS.aliases(name)) or "-"))
    return _with_origin(rows, METRICS)


def _instance(factory: Callable):
    """A throw-away model to read its CAM layers from: tiny when the factory takes width and head_units."""
    try:
        return factory(2, width=0.125, head_units=8)
    except TypeError:  # a user model with other options
        return factory(2)


def model_rows() -> list[tuple[str, ...]]:
    """Header + one row per model: name, default CAM layer, every CAM layer (input to output)."""
    from bench.models import MODELS

    rows = [("model", "default_cam_layer", "cam_layers")]
    for name in MODELS.names():
        try:
            model = _instance(MODELS.get(name))
        except Exception as exc:  # noqa: BLE001 - a plugin model that cannot be built must not hide the others
            rows.append((name, "-", f"(cannot build it with 2 classes: {type(exc).__name__}: {exc})"))
            continue
        layers = getattr(model, "cam_layers", None) or {}
        rows.append((name, str(getattr(model, "default_cam_layer", "-")), ", ".join(layers) or "-"))
    return _with_origin(rows, MODELS)


def suite_rows() -> list[tuple[str, ...]]:
    """Header + one row per built-in suite: name and its ``description`` line."""
    from bench.config import read_toml
    from bench.sweep.suite import SUITE_DIR, suite_names

    rows = [("suite", "description")]
    for name in suite_names():
        rows.append((name, str(read_toml(SUITE_DIR / f"{name}.toml").get("description", "")) or "-"))
    return rows


def dataset_rows(root: str | os.PathLike = "") -> list[tuple[str, ...]]:
    """Header + one row per dataset card (data root first, then the packaged cards): key, modality, classes."""
    from bench.data.cards import list_cards

    rows = [("dataset", "modality", "classes")]
    for card in list_cards(root):
        rows.append((card.key, card.modality, ", ".join(card.classes)))
    return rows


def rows(kind: str, *, root: str | os.PathLike = "") -> list[tuple[str, ...]]:
    """The table of ``kind`` (one of :data:`KINDS`): a header row, then one row per registered name."""
    if kind == "datasets":
        return dataset_rows(root)
    tables = {"methods": method_rows, "metrics": metric_rows, "models": model_rows, "suites": suite_rows}
    if kind not in tables:
        raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    return tables[kind]()


def format_rows(table: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell; the last column is not padded (it may be long)."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in table)


def plugin_error_lines() -> list[str]:
    """One line per plugin entry point that failed to load in this process (empty when none did)."""
    from bench.registry import plugin_errors

    return [f"  {plugin.label}: {why}" for plugin, why in plugin_errors()]


def cmd_list(args) -> int:
    kinds = [args.kind] if args.kind else list(KINDS)
    blocks = []
    for kind in kinds:
        table = rows(kind, root=args.root)
        blocks.append(f"{kind} ({len(table) - 1})\n{format_rows(table)}")
    failed = plugin_error_lines()
    if failed:
        blocks.append(f"plugins that failed to load ({len(failed)}; their names are missing above)\n" + "\n".join(failed))
    print("\n\n".join(blocks))
    return 0


def add_commands(sub) -> None:
    """Add ``list`` to the ``bench`` sub-command parsers."""
    p = sub.add_parser("list", help="list the registered methods, metrics, models, suites and datasets",
                       description="bench list  |  bench list methods  |  bench list datasets --root DIR")
    p.add_argument("kind", nargs="?", choices=KINDS, default=None, help="what to list (default: all five)")
    p.add_argument("--root", default="", help="data root whose own cards are listed too (datasets)")
    p.set_defaults(handler=cmd_list)


__all__ = ["KINDS", "add_commands", "cmd_list", "rows", "format_rows"]
