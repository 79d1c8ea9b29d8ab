"""A small synthetic run folder in the layout of docs/CONTRACTS.md ("Sweep run folder").

Method quality is known by construction: ``grad_cam`` and ``score_cam`` point at the lesion most of
the time, ``guided_backprop`` is mediocre, ``random`` and ``centre`` are baselines. Some images have
empty masks (NaN values), some are excluded (an error), some maps are degenerate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

DATASETS = {  # name -> (real, paper_key, classes)
    "lidc_idri": (True, "lidc_idri", ["benign", "malignant"]),
    "synthetic-ham10000": (False, "ham10000", ["akiec", "bcc", "bkl", "mel", "nv"]),
    "synthetic-cov_ct": (False, "cov_ct", ["covid", "normal"]),
}
QUALITY = {"grad_cam": 0.75, "score_cam": 0.8, "guided_backprop": 0.45, "centre": 0.35, "random": 0.2}
METRICS = ["pointing_game", "energy_pointing_game", "iou", "deletion", "insertion"]
FOLDS = (0, 1)
N_PER_FOLD = 30

RESAMPLES = 200  # bootstrap resamples in the report tests: enough, and fast


def fake_results(seed: int = 0, metrics: list[str] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for dataset, (_, _, classes) in DATASETS.items():
        for fold in FOLDS:
            for i in range(N_PER_FOLD):
                image_id = f"{dataset[:4]}{fold}_{i:03d}"
                label = classes[i % len(classes)]
                empty_mask = i % 10 == 9
                difficulty = rng.normal(0, 0.1)
                for method, q in QUALITY.items():
                    for metric in metrics or METRICS:
                        if metric == "pointing_game":
                            v = float(rng.random() < q - difficulty)
                        elif metric == "deletion":
                            v = float(np.clip(0.9 - q + difficulty + rng.normal(0, 0.08), 0, 1))
                        else:
                            v = float(np.clip(q * 0.8 - difficulty + rng.normal(0, 0.08), 0, 1))
                        localisation = metric not in ("deletion", "insertion")
                        excluded = "error: CUDA out of memory" if (method == "score_cam" and i == 3) else ""
                        rows.append(dict(
                            run="fake", dataset=dataset, model="ff_vgg19", seed=0, fold=fold, method=method,
                            metric=metric, image_id=image_id, label=label, target=classes.index(label),
                            correct=bool(rng.random() < 0.8),
                            value=np.nan if (excluded or (empty_mask and localisation)) else v,
                            degenerate=bool(method == "guided_backprop" and i == 5), excluded=excluded,
                        ))
    return pd.DataFrame(rows)


def fake_classification() -> pd.DataFrame:
    rows = []
    for dataset, (real, key, classes) in DATASETS.items():
        for fold in FOLDS:
            rows.append(dict(
                run="fake", dataset=dataset, model="ff_vgg19", seed=0, fold=fold, n_test=N_PER_FOLD,
                accuracy=0.80 + 0.02 * fold, sensitivity=0.75, specificity=0.85, auc=0.88 - 0.01 * fold,
                f1=0.78, average="binary" if len(classes) == 2 else "macro",
                positive=classes[1] if len(classes) == 2 else "", real=real, paper_key=key,
            ))
    return pd.DataFrame(rows)


def fake_curves() -> pd.DataFrame:
    rows = []
    steps = np.linspace(0, 1, 11)
    for dataset in DATASETS:
        for fold in FOLDS:
            for method, q in QUALITY.items():
                for curve in ("deletion", "insertion"):
                    for s, f in enumerate(steps):
                        v = 0.9 * np.exp(-4 * q * f) if curve == "deletion" else 0.1 + 0.8 * (1 - np.exp(-4 * q * f))
                        rows.append(dict(dataset=dataset, model="ff_vgg19", seed=0, fold=fold, method=method,
                                         curve=curve, step=s, fraction=f, value=v, n=N_PER_FOLD))
    return pd.DataFrame(rows)


def fake_sanity() -> pd.DataFrame:
    """Tables of the randomisation test built by the metric's own :func:`stage_table` from made-up
    per-image similarities (abs Spearman; the other three copy it): grad_cam changes at the head (passes),
    guided_backprop only near the input (fails), score_cam passes on the first dataset only."""
    from bench.metrics.sanity import SIMILARITIES, stage_table

    stages = ["trained", "head", "block5", "block4", "block3"]
    curves = {"grad_cam": [0.05, 0.04, 0.03, 0.02], "guided_backprop": [0.99, 0.97, 0.9, 0.3]}
    tables = []
    rng = np.random.default_rng(0)
    for j, dataset in enumerate(list(DATASETS)[:2]):
        score_cam = [0.1, 0.08, 0.05, 0.05] if j == 0 else [0.7, 0.3, 0.1, 0.05]
        for method, means in (*curves.items(), ("score_cam", score_cam)):
            sim = np.vstack([np.ones(8), np.asarray(means)[:, None] + rng.normal(0, 0.03, (4, 8))])
            t = stage_table({m: sim for m in SIMILARITIES}, stages, n_resamples=RESAMPLES, seed=0)
            tables.append(t.assign(dataset=dataset, model="ff_vgg19", seed=0, fold=0, method=method))
    return pd.concat(tables, ignore_index=True)


def fake_gallery(path: Path, classes: list[str], k: int = 4, size: int = 24, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.4, (k, 3, size, size)).astype(np.float32)
    masks = np.zeros((k, size, size), bool)
    for i in range(k):
        masks[i, 6 + i : 14 + i, 8:16] = True
        images[i][:, masks[i]] += 0.5
    yy, xx = np.mgrid[:size, :size]

    def blob(cy, cx, s):
        return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))

    maps = {f"map__{m}": np.stack([blob(10 + i, 12, 3 + 3 * q) for i in range(k)]) for m, q in QUALITY.items()}
    maps["map__centre"] = np.stack([blob(size / 2, size / 2, size / 4)] * k)
    maps["map__random"] = rng.random((k, size, size))
    maps["map__guided_backprop"] = np.abs(np.gradient(images.mean(axis=1), axis=2))
    maps["map__guided_backprop"][-1] = 0.0  # a degenerate (constant) map
    maps = {n: v.astype(np.float32) for n, v in maps.items()}
    np.savez(path, images=images, masks=masks, labels=np.arange(k) % len(classes), ids=np.array([f"g{i}" for i in range(k)]),
             class_names=np.array(classes), **maps)


def make_fake_run(out: Path, *, curves: bool = True, sanity: bool = True, gallery: bool = True,
                  classification: bool = True, errors: bool = True, run_json: bool = True,
                  metrics: list[str] | None = None) -> Path:
    """Write a fake run folder under ``out``; the optional parts can be left out, ``metrics`` narrowed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fake_results(metrics=metrics).to_parquet(out / "results.parquet", index=False)
    if classification:
        fake_classification().to_parquet(out / "classification.parquet", index=False)
    if curves:
        fake_curves().to_parquet(out / "curves.parquet", index=False)
    if sanity:
        fake_sanity().to_parquet(out / "sanity.parquet", index=False)
    if gallery:
        (out / "gallery").mkdir(exist_ok=True)
        for j, (dataset, (_, _, classes)) in enumerate(DATASETS.items()):
            fake_gallery(out / "gallery" / f"{dataset}.npz", classes, seed=j)
    if errors:
        with open(out / "errors.jsonl", "w") as f:
            for i in (3,):
                for dataset in DATASETS:
                    f.write(json.dumps(dict(stage="explain", job=f"explain/{dataset}/score_cam", dataset=dataset,
                                            image_id=f"{dataset[:4]}0_{i:03d}", error="CUDA out of memory <script>")) + "\n")
    if run_json:
        (out / "run.json").write_text(json.dumps(dict(
            suite={"name": "fake", "datasets": list(DATASETS), "methods": list(QUALITY), "metrics": METRICS},
            seeds=[0], versions={"python": "3.11.9", "torch": "2.14.1", "bench": "0.1.0"},
            hardware={"device": "cpu", "cpu": "2 cores", "memory_gb": 8}, git_revision="434e9e2",
            started="2025-01-01T00:00:00Z", wall_time_s=123.4,
            timings={"train": 60.0, "explain": 40.0, "score": 23.4},
        ), indent=1))
    return out
