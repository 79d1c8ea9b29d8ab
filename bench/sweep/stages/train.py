"""The ``train`` stage: train one (dataset, model, seed, fold) and evaluate it on its test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.config import RunConfig, from_dict
from bench.sweep.cache import write_json
from bench.sweep.extensions import extensions
from bench.sweep.loading import dataset_for


def run(spec: dict, inputs: dict[str, Path], out: Path, label: str) -> None:
    """Write ``checkpoint.pt`` (by ``fit``), ``eval.npz`` (test ids, labels, probabilities), ``classification.json``
    (Table 2's numbers), ``history.json`` and what the extensions add."""
    from bench.train import fit

    cfg = from_dict(RunConfig, spec["config"], source=label)
    data, _ = dataset_for(cfg)
    res = fit(cfg, data=data, fold=spec["fold"], out_dir=out, progress=False)
    np.savez(out / "eval.npz", test_ids=np.asarray(res.test_ids), test_labels=res.test_labels,
             test_probs=res.test_probs)
    for ext in extensions():
        ext.after_train(out, cfg, res.model, data)
    write_json(out / "classification.json", res.metrics)
    write_json(out / "history.json", res.history)
