"""Shortcut suite: the cue works as designed. A classifier trained on lesion-free images whose only class
evidence is the cue (p = 1) is right on the correlated test split and at chance on the decorrelated one."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.config import load_run_config
from bench.data import load_dataset
from bench.data.manifest import write_manifest
from bench.data.paths import dataset_dir, masks_dir
from bench.data.phantoms import draw
from bench.data.phantoms.common import image_rng
from bench.data.phantoms.cues import add_cue
from bench.sweep.shortcuts import _accuracy, _flip_rate
from bench.train import fit, predict_proba

KEY = "synthetic-cov_ct+tag@1"


def write_lesion_free(root, n_per_class: int = 90) -> None:
    """Every image is a lesion-free ``Normal`` slice; half are labelled COVID-19 and carry the cue (p = 1)
    in train / val / test; the decorrelated split holds each test image without and with the cue."""
    ddir, mdir = dataset_dir(KEY, root), masks_dir(KEY, root)
    (mdir / "confounder").mkdir(parents=True)
    ddir.mkdir(parents=True)
    rows = []

    def save(img, sid, label, split, cue_rng=None):
        row = {"image": f"{sid}.png", "label": label, "mask": "", "group": sid, "split": split,
               "mask_source": "", "confounder": "0", "confounder_mask": ""}
        if cue_rng is not None:
            img, cmask = add_cue(img, None, "tag", cue_rng)
            Image.fromarray(cmask.astype(np.uint8) * 255).save(mdir / "confounder" / f"{sid}.png")
            row.update(confounder="1", confounder_mask=f"confounder/{sid}.png")
        Image.fromarray(img).save(ddir / f"{sid}.png")
        rows.append(row)

    for j in range(2 * n_per_class):
        label = ("COVID-19", "Normal")[j % 2]
        k = j // 2
        split = "test" if k < 0.2 * n_per_class else "val" if k < 0.35 * n_per_class else "train"
        base = draw("cov_ct", "Normal", seed=0, index=j).image  # no lesion, whatever the label
        sid = f"img{j:04d}"
        save(base, sid, label, split, image_rng(0, "cue", j) if label == "COVID-19" else None)
        if split == "test":
            save(base, f"{sid}-nocue", label, "decorrelated")
            save(base, f"{sid}-cue", label, "decorrelated", image_rng(1, "cue", j))
    write_manifest(ddir / "manifest.csv", rows)


@pytest.mark.slow
def test_cue_alone_is_learned_and_fails_when_decorrelated(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_MASK_ROOT", raising=False)
    root = str(tmp_path / "datasets")
    write_lesion_free(root)
    data = load_dataset(KEY, root=root, image_size=32)
    assert not data.has_mask.any()
    cfg = load_run_config("smoke", data={"dataset": KEY, "root": root, "image_size": 32},  # pinned, as the suite
                          model={"width": 0.125, "head_units": 64, "batch_norm": True, "bn_momentum": 0.1},
                          train={"epochs": 30, "batch_size": 16, "patience": 0, "lr": 1e-3, "threads": 1})
    res = fit(cfg, data=data, progress=False)
    split = np.asarray(data.splits)
    acc_corr, _ = _accuracy(res.test_labels, res.test_probs)
    dec = np.flatnonzero(split == "decorrelated")
    probs = predict_proba(res.model, data.images[dec])
    acc_dec, balanced_dec = _accuracy(data.labels[dec].numpy(), probs)
    flips = _flip_rate([data.ids[i] for i in dec], probs)
    print(f"lesion-free, cue at p=1: accuracy correlated {acc_corr:.3f}, decorrelated {acc_dec:.3f}, flips {flips:.2f}")
    assert acc_corr >= 0.9  # the cue alone suffices on the correlated split
    assert abs(acc_dec - 0.5) <= 0.12 and abs(balanced_dec - 0.5) <= 0.12  # chance once it is decorrelated
    assert flips >= 0.8  # adding or removing the cue flips the prediction
