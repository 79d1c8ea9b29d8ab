"""How the sweep calls the metrics: one adapter, so jobs stay generic.

Localisation metrics are called as ``fn(maps (B, H, W), masks (B, H, W), **options)``; deletion and
insertion as one computation; the randomisation test per method.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch


def score(metric: str, options: dict[str, Any], *, maps: np.ndarray, data, idx: list[int], targets: list[int],
          model) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], pd.DataFrame | None]:
    """Score ``maps`` (B, H, W) of images ``data.images[idx]``.

    Returns ``({metric_name: (values (B,), degenerate (B,))}, curves or None)``. Maps that are NaN
    (excluded images) are scored as zeros and masked by the caller.
    """
    from bench.metrics import METRICS

    finite_maps = np.nan_to_num(maps, nan=0.0)
    if metric == "deletion_insertion":
        from bench.metrics import deletion_insertion

        device = next(model.parameters()).device
        res = deletion_insertion(model, data.images[idx].to(device), torch.from_numpy(finite_maps).to(device),
                                 torch.as_tensor(targets, device=device), **options)
        steps = res["deletion_curve"].shape[1] - 1
        frac = np.arange(steps + 1) / steps
        curves = pd.concat([
            pd.DataFrame({"curve": name, "step": np.arange(steps + 1), "fraction": frac,
                          "value": np.asarray(res[f"{name}_curve"]).mean(axis=0), "n": len(idx)})
            for name in ("deletion", "insertion")
        ], ignore_index=True)
        degenerate = np.asarray(res["degenerate"], dtype=bool)
        return {"deletion": (np.asarray(res["deletion"]), degenerate),
                "insertion": (np.asarray(res["insertion"]), degenerate)}, curves
    masks = data.masks[idx].numpy()
    values, degenerate = METRICS.get(metric)(finite_maps, masks, return_degenerate=True, **options)
    return {metric: (np.atleast_1d(np.asarray(values, dtype=np.float64)), np.atleast_1d(degenerate))}, None


def sanity(model, images: torch.Tensor, targets: list[int], method: str, *, layer: str | None,
           options: dict[str, Any], seed: int) -> pd.DataFrame:
    """The cascading randomisation test of ``method`` as a table (see ``bench.metrics.randomisation_test``)."""
    from bench.metrics import randomisation_test

    device = next(model.parameters()).device
    method_options = {**options, **({"layer": layer} if layer else {})}
    res = randomisation_test(model, images.to(device), torch.as_tensor(targets, device=device), method,
                             seed=seed, method_options=method_options)
    return pd.DataFrame(res)
