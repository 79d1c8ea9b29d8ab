"""The two entries of "How far to trust this ranking" that ask the trained model itself: does it use the lesion
(:mod:`bench.report.verified`), and does each method's map follow the class asked for
(:mod:`bench.report.class_sensitivity`). :func:`model_check_entries` reads their tables from a run folder, writes
their CSVs and returns the entries, for :func:`bench.report.scorecard.build_report`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.class_sensitivity import class_sensitivity_entry, class_sensitivity_table
from bench.report.trust import TrustEntry
from bench.report.verified import verification_entry, verification_table

OUTPUTS = ("verification.csv", "class_sensitivity.csv")


def _threshold(run_info: dict, verified: pd.DataFrame | None) -> float:
    """The run's ``report.verified_drop`` (its suite in ``run.json``), else the default."""
    from bench.metrics.lesion_use import VERIFIED_DROP

    value = ((run_info.get("suite") or {}).get("report") or {}).get("verified_drop")
    return float(value) if isinstance(value, (int, float)) else VERIFIED_DROP


def model_check_entries(run_dir: Path, out: Path, board: pd.DataFrame, run_info: dict, written: dict, *,
                        n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> list[TrustEntry]:
    """The model-verified ground truth and class sensitivity entries of the run folder ``run_dir`` (its
    ``verified.parquet``, ``class_sensitivity.parquet`` and ``class_sensitivity_notes.parquet``); writes
    ``verification.csv`` and ``class_sensitivity.csv`` into ``out`` (added to ``written``) or removes stale ones."""
    read = lambda name: pd.read_parquet(run_dir / name) if (run_dir / name).is_file() else None  # noqa: E731
    verified, cs_rows = read("verified.parquet"), read("class_sensitivity.parquet")
    threshold = _threshold(run_info, verified)
    drops = None if verified is None else verification_table(
        verified, threshold=threshold, n_resamples=n_resamples, confidence=confidence, seed=seed)
    summary = None if cs_rows is None else class_sensitivity_table(
        cs_rows, n_resamples=n_resamples, confidence=confidence, seed=seed)
    for name, table in zip(OUTPUTS, (drops, summary)):
        if table is None:
            (out / name).unlink(missing_ok=True)  # a stale CSV of an earlier run
        else:
            table.to_csv(out / name, index=False)
            written[name] = out / name
    return [verification_entry(drops, board, threshold=threshold),
            class_sensitivity_entry(summary, read("class_sensitivity_notes.parquet"), confidence=confidence)]


__all__ = ["OUTPUTS", "model_check_entries"]
