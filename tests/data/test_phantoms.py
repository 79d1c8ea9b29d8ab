"""The phantoms: shapes, determinism, proportions, and THE property (evidence only inside the mask)."""

import itertools

import numpy as np
import pytest

from bench.data import load_card, load_dataset, prepare, validate_dataset
from bench.data.phantoms import PHANTOMS, class_sizes, draw, generate
from bench.data.phantoms.common import SIZE, image_rng

KEYS = PHANTOMS.names()
NORMAL = {"cov_x": "Normal", "cov_ct": "Normal", "mpip": "Normal"}


def test_all_seven_have_a_phantom():
    assert KEYS == sorted(["pet_ct", "lidc_idri", "cov_x", "cov_ct", "cells", "mpip", "ham10000"])


@pytest.mark.parametrize("key", KEYS)
def test_identical_outside_the_lesion(key):
    """Same seed and index, different classes: every pixel outside the union of the two lesion masks is
    bit-identical. Background, anatomy, noise and artefacts are thus independent of the class, and the
    class can only change pixels inside a reference mask; normal classes have no mask."""
    card = load_card(key)
    for index in range(2):
        s = {c: PHANTOMS.get(key)(image_rng(5, key, index), c) for c in card.classes}
        for c, smp in s.items():
            assert smp.image.dtype == np.uint8 and smp.image.shape[:2] == (SIZE, SIZE)
            if c == NORMAL.get(key):
                assert smp.mask is None
            else:
                assert smp.mask is not None and smp.mask.dtype == bool and smp.mask.any()
        for a, b in itertools.combinations(card.classes, 2):
            outside = np.ones((SIZE, SIZE), bool)
            for m in (s[a].mask, s[b].mask):
                if m is not None:
                    outside &= ~m
            assert np.array_equal(s[a].image[outside], s[b].image[outside]), (key, a, b)
            assert not np.array_equal(s[a].image, s[b].image)


@pytest.mark.parametrize("key", ["lidc_idri", "cov_x", "cells", "ham10000"])
def test_lesion_place_and_size_do_not_follow_the_class(key):
    """Mask area and centroid: every lesion class's mean is near the overall mean."""
    card = load_card(key)
    stats = {}
    for c in card.classes:
        if c == NORMAL.get(key):
            continue
        areas, cys, cxs = [], [], []
        for i in range(24):
            m = draw(key, c, seed=11, index=i).mask
            ys, xs = np.nonzero(m)
            areas.append(m.sum())
            cys.append(ys.mean())
            cxs.append(xs.mean())
        stats[c] = (np.mean(areas), np.mean(cys), np.mean(cxs))
    area = np.mean([v[0] for v in stats.values()])
    for c, (a, cy, cx) in stats.items():
        assert abs(a / area - 1) < 0.35, (c, a, area)
        assert abs(cy - np.mean([v[1] for v in stats.values()])) < 10, c
        assert abs(cx - np.mean([v[2] for v in stats.values()])) < 10, c


def test_deterministic():
    a, b = draw("cells", "Monocyte", seed=3, index=7), draw("cells", "Monocyte", seed=3, index=7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, draw("cells", "Monocyte", seed=4, index=7).image)


def test_class_sizes():
    assert class_sizes([61, 111], scale=0.2, min_per_class=60, max_per_class=200) == [60, 60]
    assert class_sizes([293, 1341], scale=0.2, min_per_class=60, max_per_class=200) == [60, 200]
    assert class_sizes([620, 616], scale=0.2, min_per_class=60, max_per_class=200) == [124, 123]
    # the floor on the total raises every class evenly, past max_per_class; classes already above it stay
    assert class_sizes([620, 616], scale=0.2, min_per_class=150, max_per_class=150, min_images=500) == [250, 250]
    assert class_sizes([620, 616], scale=0.2, min_per_class=150, max_per_class=150, min_images=301) == [151, 151]
    assert class_sizes([424, 3937, 1789], scale=0.2, min_per_class=60, max_per_class=500,
                       min_images=500) == [167, 500, 358]
    with pytest.raises(ValueError, match="min_images"):
        class_sizes([1], scale=1, min_per_class=1, max_per_class=1, min_images=-1)
    with pytest.raises(ValueError):
        class_sizes([1], scale=0, min_per_class=1, max_per_class=1)
    with pytest.raises(ValueError):
        class_sizes([1], scale=1, min_per_class=5, max_per_class=4)


def test_generate_writes_the_real_format(root):
    path = prepare("synthetic-cov_x", root=root, scale=0.002, min_per_class=2, max_per_class=3)
    assert path == root / "synthetic-cov_x"
    assert validate_dataset("synthetic-cov_x", root=root) == []
    ds = load_dataset("synthetic-cov_x", root=root, image_size=32)
    card = load_card("cov_x")
    assert ds.class_names == card.classes
    assert ds.class_counts() == dict(zip(card.classes, [2, 2, 2, 2, 2, 2, 3]))
    normal = ds.labels == card.classes.index("Normal")
    assert not ds.has_mask[normal].any() and ds.has_mask[~normal].all()
    assert all(ds.masks[i].any() for i in np.flatnonzero(~normal.numpy()))
    assert ds.splits == [""] * len(ds)  # the trainer splits
    assert all(i.startswith("cov_x-") for i in ds.ids)


def test_min_images_is_an_option_of_the_prepared_phantom(root):
    from bench.data import is_prepared

    prepare("synthetic-pet_ct", root=root, scale=0.01, min_per_class=2, max_per_class=2, min_images=7)
    assert load_dataset("synthetic-pet_ct", root=root, image_size=32).class_counts() == {"Benign": 4, "Malignant": 4}
    assert is_prepared("synthetic-pet_ct", root, scale=0.01, min_per_class=2, max_per_class=2, min_images=7)
    assert not is_prepared("synthetic-pet_ct", root, scale=0.01, min_per_class=2, max_per_class=2)  # regenerated


def test_confounder_hook(root):
    card = load_card("pet_ct")
    out = generate("pet_ct", card.classes, card.counts, out_dir=root / "synthetic-pet_ct",
                   masks_out=root.parent / "reference_masks" / "synthetic-pet_ct", scale=1.0,
                   min_per_class=20, max_per_class=20, confounder="tag", confounder_p=1.0, positive=card.positive)
    assert out["confounder_class"] == "Malignant"
    ds = load_dataset("synthetic-pet_ct", root=root, image_size=64)
    assert ds.has_confounder is not None and ds.confounder_masks.shape == ds.masks.shape
    split = np.array(ds.splits)
    mal = (ds.labels == 1).numpy()
    cue = ds.has_confounder.numpy()
    correlated = split != "decorrelated"  # train, val and the (correlated) test split
    assert cue[correlated & mal].all() and not cue[correlated & ~mal].any()  # p = 1 on the chosen class only
    assert set(split) == {"train", "val", "test", "decorrelated"}
    assert (ds.confounder_masks.flatten(1).any(1).numpy() == cue).all()
    assert not (ds.confounder_masks & ds.masks).any()  # the cue lies outside the lesion
    with pytest.raises(ValueError, match="unknown confounder"):
        generate("pet_ct", card.classes, card.counts, out_dir=root / "x", masks_out=root / "y", confounder="sticker")
