"""The map-repeatability table of a suite with two or more seeds (``repeatability.parquet``).

For every (dataset, model, fold, method) and every pair of seeds, the maps the two seeds' models gave of the
same test images (the split is the same for every seed: ``data.split_seed``) are compared image by image
(:func:`bench.metrics.sanity.map_similarity`: Spearman and SSIM), and against the maps of *different* images
from the same two models (image i of one seed with image i + k of the other, k = 1 .. :data:`SHIFTS`, averaged).
:func:`bench.report.repeatability.map_repeatability` summarises it per method.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

SHIFTS = 3  # different-image pairs per image (cyclic shifts of the image order)
COLUMNS = ["dataset", "model", "fold", "method", "seed_a", "seed_b", "image_id", "spearman_same", "ssim_same",
           "spearman_different", "ssim_different"]


def map_pairs(maps: dict[int, tuple[list[str], np.ndarray]]) -> pd.DataFrame:
    """Same-image and different-image map similarities between every pair of seeds.

    Args:
        maps: seed -> (image ids, maps ``(N, H, W)``; NaN rows are excluded images) of one (dataset, model,
            fold, method).

    Returns:
        one row per (seed pair, image both seeds explained): ``seed_a, seed_b, image_id``, ``spearman_same``,
        ``ssim_same`` and the means over :data:`SHIFTS` other images of ``spearman_different``,
        ``ssim_different``. Empty with fewer than two seeds or fewer than two shared images.
    """
    from bench.metrics.sanity import map_similarity

    rows = []
    for a, b in itertools.combinations(sorted(maps), 2):
        ids_a, maps_a = maps[a]
        ids_b, maps_b = maps[b]
        where_b = {t: i for i, t in enumerate(ids_b)}
        shared = [(i, where_b[t]) for i, t in enumerate(ids_a)
                  if t in where_b and np.isfinite(maps_a[i]).all() and np.isfinite(maps_b[where_b[t]]).all()]
        if len(shared) < 2:
            continue
        xa = maps_a[[i for i, _ in shared]].astype(np.float64)
        xb = maps_b[[j for _, j in shared]].astype(np.float64)
        sp_same, ss_same = map_similarity(xa, xb)
        shifts = range(1, min(SHIFTS, len(shared) - 1) + 1)
        sp_diff = np.zeros(len(shared))
        ss_diff = np.zeros(len(shared))
        for k in shifts:
            sp, ss = map_similarity(xa, np.roll(xb, k, axis=0))
            sp_diff += sp
            ss_diff += ss
        sp_diff /= len(shifts)
        ss_diff /= len(shifts)
        for n, (i, _) in enumerate(shared):
            rows.append({"seed_a": a, "seed_b": b, "image_id": ids_a[i], "spearman_same": sp_same[n],
                         "ssim_same": ss_same[n], "spearman_different": sp_diff[n], "ssim_different": ss_diff[n]})
    return pd.DataFrame(rows, columns=COLUMNS[4:])


def repeatability_table(explained: dict[tuple[str, str, int, str], dict[int, Path]]) -> pd.DataFrame:
    """:func:`map_pairs` of every (dataset, model, fold, method) -> {seed: explain job folder}; the long table
    (:data:`COLUMNS`), empty when no group has two seeds."""
    parts = []
    for (dataset, model, fold, method), dirs in sorted(explained.items()):
        if len(dirs) < 2:
            continue
        maps = {}
        for seed, d in dirs.items():
            meta = json.loads((d / "images.json").read_text())
            maps[seed] = ([str(t) for t in meta["ids"]], np.load(d / "maps.npy"))
        pairs = map_pairs(maps)
        if len(pairs):
            parts.append(pairs.assign(dataset=dataset, model=model, fold=fold, method=method))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(parts, ignore_index=True)[COLUMNS]


__all__ = ["COLUMNS", "SHIFTS", "map_pairs", "repeatability_table"]
