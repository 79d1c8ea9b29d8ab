"""Shortcut suite, data side: the dataset key grammar, the two test splits, and cue masks that align with the cue."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.config import load_run_config
from bench.data import canonical_key, is_prepared, load_dataset, prepare
from bench.data.cards import load_card, split_confounder, split_key
from bench.data.paths import dataset_dir, masks_dir
from bench.data.phantoms import CUES, PHANTOMS, draw
from bench.data.phantoms.cues import add_cue
from bench.data.splits import splits_from_column
from bench.train import resolve_split


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    monkeypatch.delenv("BENCH_MASK_ROOT", raising=False)
    r = tmp_path / "datasets"
    r.mkdir()
    return r


def test_key_grammar():
    assert split_confounder("synthetic-lidc_idri+tag@0.8") == ("synthetic-lidc_idri", "tag", 0.8)
    assert split_confounder("synthetic-ham10000+ink@Melanoma@1") == ("synthetic-ham10000", "ink@Melanoma", 1.0)
    assert split_confounder("synthetic-lidc_idri") == ("synthetic-lidc_idri", "", None)
    assert split_confounder("lidc_idri") == ("lidc_idri", "", None)
    assert split_key("synthetic-cov_x+ruler@0") == (True, "cov_x")
    assert canonical_key("synthetic-mnist+ink@Melanoma@0.50") == "synthetic-ham10000+ink@Melanoma@0.5"
    assert canonical_key("synthetic-lidc_idri+tag@1.0") == "synthetic-lidc_idri+tag@1"
    assert load_card("synthetic-lidc_idri+tag@1").key == "lidc_idri"
    for bad in ("synthetic-lidc_idri+tag", "synthetic-lidc_idri+tag@1.5", "synthetic-lidc_idri+@0.5",
                "synthetic-lidc_idri+tag@x"):
        with pytest.raises(ValueError, match="confounder suffix"):
            split_confounder(bad)


def test_each_p_is_its_own_dataset(root):
    small = dict(root=str(root), scale=1.0, min_per_class=10, max_per_class=10)
    a = prepare("synthetic-pet_ct+tag@0", **small)
    b = prepare("synthetic-pet_ct+tag@1.0", **small)
    assert a.name == "synthetic-pet_ct+tag@0" and b.name == "synthetic-pet_ct+tag@1" and a != b
    assert (a / "manifest.csv").is_file() and (b / "manifest.csv").is_file()
    opts = dict(scale=1.0, min_per_class=10, max_per_class=10)
    assert is_prepared("synthetic-pet_ct+tag@0", root=str(root), **opts)
    assert is_prepared("synthetic-pet_ct+tag@1", root=str(root), confounder="tag", confounder_p=1.0, **opts)
    assert not is_prepared("synthetic-pet_ct", root=str(root))  # the plain phantom is untouched
    with pytest.raises(ValueError, match="disagree"):
        prepare("synthetic-pet_ct+tag@1", confounder="ink", confounder_p=1.0, **small)
    ds0, ds1 = (load_dataset(f"synthetic-pet_ct+tag@{p}", root=str(root), image_size=32) for p in (0, 1))
    corr0 = np.asarray(ds0.splits) != "decorrelated"
    assert not ds0.has_confounder[corr0].any() and ds1.has_confounder.any()


def test_two_test_splits(root):
    key = "synthetic-lidc_idri+tag@0.5"
    prepare(key, root=str(root), scale=1.0, min_per_class=40, max_per_class=40)
    ds = load_dataset(key, root=str(root), image_size=64)
    split = np.asarray(ds.splits)
    labels, cue = ds.labels.numpy(), ds.has_confounder.numpy()
    mal = labels == load_card("lidc_idri").class_index("Malignant")
    correlated = split != "decorrelated"
    assert not cue[correlated & ~mal].any() and 0 < cue[correlated & mal].mean() < 1  # p = 0.5, that class only
    test_ids = [i for i, s in zip(ds.ids, split) if s == "test"]
    dec = {i: n for n, (i, s) in enumerate(zip(ds.ids, split)) if s == "decorrelated"}
    assert sorted(dec) == sorted([f"{t}-nocue" for t in test_ids] + [f"{t}-cue" for t in test_ids])
    for c in (0, 1):  # in the decorrelated split the cue is independent of the class: exactly half carry it
        in_c = [n for n in dec.values() if labels[n] == c]
        assert cue[in_c].mean() == 0.5
    index = {i: n for n, i in enumerate(ds.ids)}
    for t in test_ids:  # the pairs: same image and lesion, differing only inside the cue's mask
        a, b = index[f"{t}-nocue"], index[f"{t}-cue"]
        assert labels[a] == labels[b] == labels[index[t]] and (ds.masks[a] == ds.masks[b]).all()
        if not cue[index[t]]:
            assert (ds.images[a] == ds.images[index[t]]).all()
    # the trainer never sees the decorrelated split, from the manifest or when it splits itself
    for folds in (1, 3):
        cfg = load_run_config("smoke", data={"dataset": key, "folds": folds})
        s = resolve_split(ds, cfg, 0)
        used = np.concatenate([s.train, s.val, s.test])
        assert not np.isin(used, list(dec.values())).any() and len(used) == correlated.sum()
    assert splits_from_column(["train", "decorrelated", "test", "val"]).test.tolist() == [2]
    assert load_dataset(key, root=str(root), image_size=32, split="decorrelated").splits == ["decorrelated"] * len(dec)


def test_cue_masks_align_on_disk(root):
    """At full resolution, a cue copy differs from its cue-free twin exactly inside the cue's mask."""
    key = "synthetic-mpip+ruler@1"
    prepare(key, root=str(root), scale=1.0, min_per_class=10, max_per_class=10)
    ddir, mdir = dataset_dir(key, str(root)), masks_dir(key, str(root))
    pairs = [p.name[: -len("-cue.png")] for p in ddir.glob("*-cue.png")]
    assert pairs
    for sid in pairs:
        a = np.asarray(Image.open(ddir / f"{sid}-nocue.png")).astype(int)
        b = np.asarray(Image.open(ddir / f"{sid}-cue.png")).astype(int)
        cmask = np.asarray(Image.open(mdir / "confounder" / f"{sid}-cue.png")) > 0
        changed = (a != b).any(axis=-1) if a.ndim == 3 else a != b
        assert not (changed & ~cmask).any()  # nothing outside the mask
        assert changed[cmask].mean() > 0.97  # and (nearly) every pixel inside it
        lesion = mdir / f"{sid}.png"
        if lesion.is_file():
            assert not (cmask & (np.asarray(Image.open(lesion)) > 0)).any()  # the cue stays off the lesion


@pytest.mark.parametrize("cue", CUES)
def test_cue_mask_is_where_the_cue_is_drawn(cue):
    """Every phantom x cue: the pixels a cue changes lie inside its mask and fill nearly all of it."""
    for key in PHANTOMS.names():
        card = load_card(key)
        s = draw(key, card.positive or card.classes[0], seed=3, index=1)
        img, cmask = add_cue(s.image, s.mask, cue, np.random.default_rng(0))
        changed = (img != s.image).any(axis=-1) if img.ndim == 3 else img != s.image
        assert cmask.any() and not (changed & ~cmask).any(), key
        assert changed[cmask].mean() > 0.9, (key, cue, changed[cmask].mean())
