"""The ``sanity`` stage: the cascading randomisation test of one method on one trained model."""

from __future__ import annotations

from pathlib import Path

from bench.sweep import scoring
from bench.sweep.loading import dataset_for, select_images, train_outputs


def run(spec: dict, inputs: dict[str, Path], out: Path, label: str) -> None:
    """Write ``sanity.parquet`` (see :func:`bench.sweep.scoring.sanity`)."""
    cfg, model, _, ev = train_outputs(inputs["train"])
    data, index = dataset_for(cfg)
    picked = select_images(data, index, ev["test_ids"], spec["n_images"])
    table = scoring.sanity(model, data.images[picked], [int(data.labels[i]) for i in picked], spec["method"],
                           layer=spec["layer"] or None, options=spec["options"], seed=spec["seed_explain"])
    table.to_parquet(out / "sanity.parquet", index=False)
