"""Writing the sweep's tables: per-job rows, and stacking stored job tables into the run folder's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.sweep.cache import write_atomic


def rows_frame(base: pd.DataFrame, rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """A score job's rows: ``base`` (one row per image: ``image_id, label, target, correct, excluded``)
    repeated for each metric of ``rows`` (``{metric: (values (B,), degenerate (B,))}``) with the columns
    ``metric``, ``value`` (NaN for excluded images) and ``degenerate`` (never set on excluded images)."""
    frames = []
    for metric, (values, degenerate) in rows.items():
        f = base.copy()
        f["metric"] = metric
        f["value"] = np.where(f["excluded"] != "", np.nan, values).astype(np.float64)
        f["degenerate"] = np.asarray(degenerate, dtype=bool) & (f["excluded"] == "")
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` to ``path`` atomically (no index)."""
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def read_table(path: Path):
    """A stored job table as an Arrow table (stacked by :func:`stack` without a pandas round trip)."""
    import pyarrow.parquet as pq

    return pq.read_table(path)


def stack(parts: list[tuple[Any, dict[str, Any]]]) -> pd.DataFrame | None:
    """One frame from (Arrow table, {column: constant}) parts: the tables stacked, each part's constants
    as columns repeated over its rows (one concatenation, not a column insert per part). None if no parts."""
    if not parts:
        return None
    import pyarrow as pa

    tables = [t for t, _ in parts]
    frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    lengths = [t.num_rows for t in tables]
    for k in parts[0][1]:
        frame[k] = pd.Series([tags[k] for _, tags in parts]).repeat(lengths).to_numpy()
    return frame


__all__ = ["read_table", "rows_frame", "stack", "write_parquet"]
