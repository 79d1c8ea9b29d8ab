"""Reports: tables and figures rebuilt from stored results.

Public API (imported lazily, so ``bench.report.markdown`` stays light):

- :func:`build_report` (``bench.report.scorecard``): rebuild every table, figure and ``scorecard.html``
  of a run folder; returns ``{name: path}`` of the files written.
- :func:`build_leaderboard` (the function ``bench.report.leaderboard.leaderboard``: the module of the same
  name shadows it here): the leaderboard of any results table, e.g. a sweep's and ``bench score``'s
  concatenated; :func:`overall_ranking`, :func:`write_leaderboard` (``bench.report.leaderboard``).
- :func:`classification_table`, :func:`write_classification` (``bench.report.classification``).
- :func:`bootstrap_ci`, :func:`holm`, :func:`paired_wilcoxon` (``bench.report.stats``).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_report": "bench.report.scorecard",
    "build_leaderboard": "bench.report.leaderboard",
    "overall_ranking": "bench.report.leaderboard",
    "write_leaderboard": "bench.report.leaderboard",
    "classification_table": "bench.report.classification",
    "write_classification": "bench.report.classification",
    "bootstrap_ci": "bench.report.stats",
    "holm": "bench.report.stats",
    "paired_wilcoxon": "bench.report.stats",
}

__all__ = sorted(_EXPORTS)
_RENAMED = {"build_leaderboard": "leaderboard"}  # exported name -> its name in the module


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), _RENAMED.get(name, name))
    raise AttributeError(f"module 'bench.report' has no attribute {name!r}")
