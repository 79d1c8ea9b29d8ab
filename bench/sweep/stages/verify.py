"""The ``verify`` stage: model-verified ground truth for the images one trained model's explain jobs explain.

Once per trained model (not per method): each explained image is predicted with and without its lesion
(:func:`bench.data.lesion_free.remove_lesions`: a phantom redrawn without it, else inpainted) and the drop of the
target class's probability is stored (:func:`bench.metrics.lesion_drop`). The run folder joins it to every result
row of the image (``lesion_drop``, ``lesion_used``), so the leaderboards can score the maps on the images whose
prediction depends on the lesion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.sweep.loading import chosen_images, dataset_for, train_outputs

VERIFIED_FILE = "verified.parquet"
VERIFIED_COLUMNS = ["image_id", "label", "target", "p_image", "p_removed", "lesion_drop", "removal"]


def run(spec: dict, inputs: dict[str, Path], out: Path, label: str) -> None:
    """Write ``verified.parquet``: one row per explained image, :data:`VERIFIED_COLUMNS` (``removal``: ``redrawn``,
    ``inpainted`` or ``none``, then ``lesion_drop`` is NaN; ``target`` is the image's label, as the explain jobs
    explain it)."""
    from bench.data.lesion_free import NONE, remove_lesions
    from bench.metrics.lesion_use import lesion_drop

    cfg, model, _, ev = train_outputs(inputs["train"])
    data, index = dataset_for(cfg)
    picked, _ = chosen_images(cfg, data, index, inputs["train"], ev, spec["max_images"])
    removed, how = remove_lesions(cfg.data.dataset, data, picked, root=cfg.data.root, dilate=spec["dilate"])
    targets = [int(data.labels[i]) for i in picked]
    device = next(model.parameters()).device
    res = lesion_drop(model, data.images[picked] if picked else removed, removed, targets,
                      batch_size=spec["batch_size"], device=device)
    drop = np.where(np.asarray(how) == NONE, np.nan, res["lesion_drop"])  # no lesion: nothing was removed
    pd.DataFrame({"image_id": [data.ids[i] for i in picked], "label": targets, "target": targets,
                  "p_image": res["p_image"], "p_removed": res["p_removed"], "lesion_drop": drop,
                  "removal": how}, columns=VERIFIED_COLUMNS).to_parquet(out / VERIFIED_FILE, index=False)
