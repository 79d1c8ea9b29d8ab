"""The run folder's tables of the ``verify`` and ``class_sensitivity`` jobs (how far to trust the maps).

- ``verified.parquet``: one row per trained model and explained image: ``run, dataset, model, seed, fold,
  image_id, label, target, p_image, p_removed, lesion_drop, removal, lesion_used`` (see
  :mod:`bench.sweep.stages.verify`; ``lesion_used`` = ``lesion_drop >= report.verified_drop``, NA where the drop
  is NaN). Its ``lesion_drop`` and ``lesion_used`` are also joined to every row of ``results.parquet`` of the
  same image (:func:`add_lesion_use`).
- ``class_sensitivity.parquet``: one row per trained model, method and composite: ``run, dataset, model, seed,
  fold, method`` and the columns of :data:`bench.sweep.stages.class_sensitivity.COLUMNS`; and
  ``class_sensitivity_notes.parquet``: ``dataset, model, seed, fold, method, n, note`` (why a dataset has fewer
  composites than asked, or none).

A table whose jobs the plan does not have is removed, so nothing stale is left behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import IDENT, RESULT_TYPES
from bench.sweep.stages.class_sensitivity import COLUMNS as CS_COLUMNS
from bench.sweep.stages.class_sensitivity import TABLE as CS_TABLE
from bench.sweep.stages.verify import VERIFIED_COLUMNS, VERIFIED_FILE
from bench.sweep.tables import read_table, stack, write_parquet

VERIFIED = "verified.parquet"
CLASS_SENSITIVITY = "class_sensitivity.parquet"
CLASS_SENSITIVITY_NOTES = "class_sensitivity_notes.parquet"
NOTE_COLUMNS = [*IDENT, "method", "n", "note"]


def write_trust_tables(suite, jobs: list, store, out: Path) -> pd.DataFrame | None:
    """Write ``verified.parquet``, ``class_sensitivity.parquet`` and its notes from the stored jobs of ``jobs``
    (plan order); returns the verified table (None when no verify job is stored)."""
    verified, cs, notes = [], [], []
    for job in jobs:
        if job.stage not in ("verify", "class_sensitivity") or not store.done(job.stage, job.key):
            continue
        d = store.path(job.stage, job.key)
        ident = {k: job.spec[k] for k in IDENT}
        if job.stage == "verify":
            verified.append((read_table(d / VERIFIED_FILE), {"run": suite.name, **ident}))
        else:
            tags = {"run": suite.name, **ident, "method": job.spec["method"]}
            cs.append((read_table(d / CS_TABLE), tags))
            note = json.loads((d / "note.json").read_text())
            notes.append({**ident, "method": job.spec["method"], "n": int(note["n"]), "note": note["note"]})
    table = stack(verified)
    if table is not None:
        table = table.reindex(columns=["run", *IDENT, *VERIFIED_COLUMNS])
        table["lesion_used"] = lesion_used_column(table["lesion_drop"], suite.report.verified_drop)
        write_parquet(out / VERIFIED, table)
    else:
        (out / VERIFIED).unlink(missing_ok=True)
    frame = stack(cs)
    if frame is not None:
        write_parquet(out / CLASS_SENSITIVITY, frame.reindex(columns=["run", *IDENT, "method", *CS_COLUMNS]))
        write_parquet(out / CLASS_SENSITIVITY_NOTES, pd.DataFrame(notes, columns=NOTE_COLUMNS))
    else:
        (out / CLASS_SENSITIVITY).unlink(missing_ok=True)
        (out / CLASS_SENSITIVITY_NOTES).unlink(missing_ok=True)
    return table


def lesion_used_column(drop: pd.Series, threshold: float) -> pd.Series:
    """``drop >= threshold`` as a nullable boolean column (NA where ``drop`` is NaN)."""
    d = pd.to_numeric(drop, errors="coerce").astype(np.float64)
    return (d >= float(threshold)).astype("boolean").mask(~np.isfinite(d))


def add_lesion_use(results: pd.DataFrame, verified: pd.DataFrame | None, threshold: float) -> pd.DataFrame:
    """``results`` with ``lesion_drop`` and ``lesion_used`` of each row's image (by dataset, model, seed, fold and
    image id) from ``verified``; NaN / NA where the image was not verified. Row order and other columns kept."""
    out = results.copy()
    if verified is None or verified.empty or out.empty:
        out["lesion_drop"] = np.nan
    else:
        keys = [*IDENT, "image_id"]
        drop = verified.drop_duplicates(keys).set_index(keys)["lesion_drop"]
        where = pd.MultiIndex.from_frame(out[keys].astype({"seed": "int64", "fold": "int64", "image_id": str}))
        out["lesion_drop"] = drop.reindex(where).to_numpy(dtype=np.float64)
    out["lesion_used"] = lesion_used_column(out["lesion_drop"], threshold)
    return out.astype({k: RESULT_TYPES[k] for k in ("lesion_drop", "lesion_used")})


__all__ = ["CLASS_SENSITIVITY", "CLASS_SENSITIVITY_NOTES", "VERIFIED", "add_lesion_use", "lesion_used_column",
           "write_trust_tables"]
