"""Fixtures for the data tests: an isolated data root (no environment overrides) and tiny datasets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.data.manifest import write_manifest


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A fresh data root ``<tmp>/datasets`` (masks root ``<tmp>/reference_masks``)."""
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    monkeypatch.delenv("BENCH_MASK_ROOT", raising=False)
    r = tmp_path / "datasets"
    r.mkdir()
    return r


TOY_CARD = """
key = "toy"
title = "Toy"
modality = "test"
classes = ["Normal", "Lesion"]
counts = [2, 2]
positive = "Lesion"
"""


def save(arr, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr)).save(path)


@pytest.fixture(name="save")
def save_fixture():
    """``save(array, path)``: write an image file (parents created)."""
    return save


@pytest.fixture
def toy(root):
    """A valid 4-image dataset 'toy' (2 Normal without masks, 2 Lesion with 0/255 masks), 20 x 20 px grey."""
    (root / "toy.toml").write_text(TOY_CARD)
    d, m = root / "toy", root.parent / "reference_masks" / "toy"
    rows = []
    for i in range(4):
        img = np.full((20, 20), 40 * i, np.uint8)
        label = "Lesion" if i >= 2 else "Normal"
        mask = ""
        if label == "Lesion":
            img[5:10, 5:10] = 250
            mk = np.zeros((20, 20), np.uint8)
            mk[5:10, 5:10] = 255
            save(mk, m / f"img{i}.png")
            mask = f"img{i}.png"
        save(img, d / f"img{i}.png")
        rows.append({"image": f"img{i}.png", "label": label, "mask": mask, "group": f"p{i // 2}", "split": ""})
    write_manifest(d / "manifest.csv", rows)
    return root
