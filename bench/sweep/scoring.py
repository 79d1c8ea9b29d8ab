"""How the sweep calls the metrics: one adapter, so jobs stay generic.

Localisation metrics are called as ``fn(maps (B, H, W), masks (B, H, W), **options)``; deletion and
insertion as one computation; the randomisation test per method.

Maps are scored as they are: a map with a NaN or infinite pixel, or a constant one, is degenerate (the
metric's worst value, flagged), as the metrics define it. Images whose explanation failed (the explain job's
``errors``; their maps are all NaN) are *excluded*: not scored at all, their value NaN and never flagged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

DELETION_INSERTION = ("deletion", "insertion")  # what the ``deletion_insertion`` computation yields
ROAD = ("road_morf", "road_lerf")  # what the ``road`` computation yields
# the computations that run the model: name -> the metrics they yield (each with a ``<metric>_curve``)
MODEL_COMPUTATIONS = {"deletion_insertion": DELETION_INSERTION, "road": ROAD}


def score(metric: str, options: dict[str, Any], *, maps: np.ndarray, data, idx: list[int], targets: list[int],
          model, excluded=None, outputs=None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], pd.DataFrame | None]:
    """Score ``maps`` (B, H, W) of images ``data.images[idx]`` (targets ``targets``, B class indices).

    ``metric``: a localisation metric, or one of :data:`MODEL_COMPUTATIONS` (``"deletion_insertion"``, the
    computation of deletion and insertion; ``"road"``, of ROAD's two orders); ``outputs``: the metrics of that computation to return (default: all it yields);
    ``excluded``: bool (B,), the images not to score (default: none).

    Returns ``({metric_name: (values (B,) float64, degenerate (B,) bool)}, curves or None)``: excluded
    images get NaN and False; degenerate maps the metric's worst value and True. ``curves`` (the model
    computations only): the mean of each requested curve over the images that are neither excluded nor
    degenerate, one row per step with ``curve, step, fraction, value, n`` (``n``: the images averaged; the
    values are NaN where ``n`` is 0).
    """
    n = len(maps)
    excluded = np.zeros(n, dtype=bool) if excluded is None else np.asarray(excluded, dtype=bool).reshape(n)
    keep = np.flatnonzero(~excluded)
    values = np.full(n, np.nan)
    degenerate = np.zeros(n, dtype=bool)
    rows = [idx[k] for k in keep]
    if metric in MODEL_COMPUTATIONS:
        return _with_curves(metric, options, maps[keep], data.images[rows], np.asarray(targets)[keep], model,
                            keep, values, degenerate, list(outputs or MODEL_COMPUTATIONS[metric]))
    from bench.metrics import METRICS

    if keep.size:
        v, d = METRICS.get(metric)(maps[keep], data.masks[rows].numpy(), return_degenerate=True, **options)
        values[keep], degenerate[keep] = np.atleast_1d(v), np.atleast_1d(d)
    return {metric: (values, degenerate)}, None


def _with_curves(computation, options, maps, images, targets, model, keep, values, degenerate, outputs):
    """One of :data:`MODEL_COMPUTATIONS` (``bench.metrics.deletion_insertion`` or ``bench.metrics.road``)."""
    import bench.metrics

    yields = MODEL_COMPUTATIONS[computation]
    unknown = [o for o in outputs if o not in yields]
    if unknown:
        raise ValueError(f"{computation} yields {', '.join(yields)}, not {', '.join(unknown)}")
    device = next(model.parameters()).device
    res = getattr(bench.metrics, computation)(model, images.to(device), torch.from_numpy(maps).to(device),
                                              torch.as_tensor(targets, dtype=torch.long, device=device), **options)
    degenerate[keep] = res["degenerate"]
    averaged = ~np.asarray(res["degenerate"], dtype=bool)
    frac = np.asarray(res["fraction"])
    steps = np.arange(len(frac))
    rows, curves = {}, []
    for name in outputs:
        v = values.copy()
        v[keep] = res[name]
        rows[name] = (v, degenerate)
        chosen = np.asarray(res[f"{name}_curve"])[averaged]
        mean = chosen.mean(axis=0) if len(chosen) else np.full(len(frac), np.nan)
        curves.append(pd.DataFrame({"curve": name, "step": steps, "fraction": frac, "value": mean,
                                    "n": int(averaged.sum())}))
    return rows, pd.concat(curves, ignore_index=True)


def sanity(model, images: torch.Tensor, targets: list[int], method: str, *, layer: str | None,
           options: dict[str, Any], seed: int) -> pd.DataFrame:
    """The cascading randomisation test of ``method`` as a table (see ``bench.metrics.randomisation_test``)."""
    from bench.metrics import randomisation_test

    device = next(model.parameters()).device
    method_options = {**options, **({"layer": layer} if layer else {})}
    res = randomisation_test(model, images.to(device), torch.as_tensor(targets, device=device), method,
                             seed=seed, method_options=method_options)
    return pd.DataFrame(res)
