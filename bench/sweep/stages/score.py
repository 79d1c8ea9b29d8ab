"""The ``score`` stage: one computation of metrics (a localisation metric, or deletion and insertion) over one
explain job's maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.sweep import scoring
from bench.sweep.extensions import extensions
from bench.sweep.loading import dataset_for, train_outputs
from bench.sweep.tables import rows_frame


def run(spec: dict, inputs: dict[str, Path], out: Path, label: str) -> None:
    """Write ``rows.parquet`` (one row per image x requested metric, ``spec["outputs"]``), ``curves.parquet``
    (deletion / insertion: the mean curves of the requested ones) and what the extensions add."""
    edir = inputs["explain"]
    meta = json.loads((edir / "images.json").read_text())
    maps = np.load(edir / "maps.npy")
    needs_model = spec["metric"] in scoring.MODEL_COMPUTATIONS  # the localisation metrics read masks only
    cfg, model, _, _ = train_outputs(inputs["train"], device=None if needs_model else "cpu")
    data, index = dataset_for(cfg)
    idx = [index[i] for i in meta["ids"]]
    table, curves, base = score_images(spec["metric"], spec["metric_options"], spec["outputs"], maps=maps,
                                       meta=meta, data=data, idx=idx, model=model)
    table.to_parquet(out / "rows.parquet", index=False)
    if curves is not None:
        curves.to_parquet(out / "curves.parquet", index=False)
    for ext in extensions():
        ext.after_score(out, spec["metric"], spec["metric_options"], maps, data, idx, base)


def score_images(metric: str, options: dict, outputs: list[str], *, maps: np.ndarray, meta: dict, data,
                 idx: list[int], model) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame]:
    """One score computation over one method's maps: what a score job stores, and what ``bench score``
    (:mod:`bench.sweep.score_maps`) computes for maps made elsewhere.

    ``maps`` (B, H, W) at the masks' size, of the images ``data.images[idx]`` / ``data.masks[idx]``;
    ``meta`` as the explain stage's ``images.json`` (``ids``, ``labels``, ``targets``, ``correct``,
    ``errors``: image id -> why it is excluded, ``grid``: (h, w) or None for the masks' size); ``model``:
    needed by the computations that run it (``deletion_insertion``, ``road``) only. Returns ``(rows, curves or
    None, base)``: the job's rows (one per image x metric of ``outputs``, :func:`bench.sweep.tables.rows_frame`),
    the mean deletion / insertion (or ROAD) curves, and the per-image columns the rows repeat."""
    excluded = [meta["errors"].get(i, "") for i in meta["ids"]]
    rows, curves = scoring.score(metric, options, maps=maps, data=data, idx=idx, targets=meta["targets"],
                                 model=model, excluded=[e != "" for e in excluded], outputs=outputs)
    h, w = data.masks.shape[-2:]
    grid = meta.get("grid") or [h, w]
    base = pd.DataFrame({"image_id": meta["ids"], "label": meta["labels"], "target": meta["targets"],
                         "correct": meta["correct"], "excluded": excluded,
                         "lesion_area": data.masks[idx].flatten(1).double().mean(1).numpy() if idx else [],
                         "cell_area": 1.0 / (int(grid[0]) * int(grid[1]))})
    return rows_frame(base, rows), curves, base
