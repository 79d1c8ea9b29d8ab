"""Sweep extensions: how a suite adds its own steps to the generic jobs and its own tables to the run folder.

The train, explain and score jobs and the assembly of the run folder know no particular suite: they call
each registered extension's hooks, and an extension acts only where it applies (e.g. the shortcut suite's,
:mod:`bench.sweep.shortcuts`, only on phantoms with a confounder). Every hook of :class:`SweepExtension`
does nothing; an extension overrides the ones it needs and registers an instance::

    from bench.sweep.extensions import EXTENSIONS, SweepExtension

    class MyTables(SweepExtension):
        def write_tables(self, suite, jobs, store, out): ...

    EXTENSIONS.register("my_tables", MyTables())

Hooks run inside the job that calls them, so what they write is cached, resumed and run on Ray with
the job. A hook must be deterministic. Every stage's code version (:mod:`bench.sweep.sources`) covers the
registered extensions' modules (``type(ext).__module__`` and what it imports) when they are part of the
``bench`` package; an extension registered from outside it is covered by its meta ``version`` (default
``"0"``: ``EXTENSIONS.register(name, instance, version="2")``), to bump when its code changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.registry import Registry


class SweepExtension:
    """The hooks a sweep extension may override (each a no-op here)."""

    def after_train(self, out: Path, cfg, model, data) -> None:
        """Train job, after training: write extra files into the job's folder ``out``.

        ``cfg`` the job's :class:`bench.config.RunConfig`, ``model`` the trained model (eval mode),
        ``data`` the whole :class:`bench.data.ImageSet`."""

    def select_images(self, cfg, data, index: dict[str, int], train_dir: Path,
                      max_images: int) -> tuple[list[int], dict[str, np.ndarray]] | None:
        """Explain job: ``(indices of data to explain, image id -> predicted probabilities (C,))``, or None to
        leave the choice to the next extension and, failing all, to the sweep's default selection."""
        return None

    def after_score(self, out: Path, metric: str, options: dict[str, Any], maps: np.ndarray, data,
                    idx: list[int], base: pd.DataFrame) -> None:
        """Score job, after scoring ``maps`` (B, H, W) of ``data``'s images ``idx`` with ``metric``: write extra
        files into ``out``. ``base`` holds the job's per-image columns (see :func:`bench.sweep.tables.rows_frame`)."""

    def write_tables(self, suite, jobs: list, store, out: Path) -> None:
        """Assembly of the run folder ``out`` from the stored jobs of the plan ``jobs`` (plan order): write the
        extension's tables, or remove stale ones when the plan gives it nothing to write."""


EXTENSIONS: Registry[SweepExtension] = Registry("sweep extension")


def extensions() -> list[SweepExtension]:
    """The registered extensions, in name order."""
    return [EXTENSIONS.get(n) for n in EXTENSIONS.names()]


__all__ = ["EXTENSIONS", "SweepExtension", "extensions"]
