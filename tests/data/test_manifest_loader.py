import numpy as np
import pytest
import torch

from bench.data import ManifestError, load_dataset, validate_dataset
from bench.data.manifest import write_manifest


def test_load_contract_shapes_and_values(toy):
    ds = load_dataset("toy", root=toy, image_size=32)
    assert ds.images.shape == (4, 3, 32, 32) and ds.images.dtype == torch.float32
    assert float(ds.images.min()) >= 0 and float(ds.images.max()) <= 1
    assert torch.equal(ds.images[:, 0], ds.images[:, 1])  # grey replicated to three channels
    assert ds.labels.tolist() == [0, 0, 1, 1] and ds.labels.dtype == torch.int64
    assert ds.masks.shape == (4, 32, 32) and ds.masks.dtype == torch.bool
    assert ds.has_mask.tolist() == [False, False, True, True]
    assert not ds.masks[:2].any()
    assert ds.masks[2].sum() == 64  # 5 x 5 of 20 px -> 8 x 8 of 32 px with nearest
    assert ds.ids == ["img0", "img1", "img2", "img3"]
    assert ds.groups == ["p0", "p0", "p1", "p1"] and ds.splits == [""] * 4
    assert ds.class_names == ("Normal", "Lesion") and ds.card.key == "toy"
    assert ds.confounder_masks is None and ds.has_confounder is None
    sub = ds.subset([3, 0])
    assert sub.ids == ["img3", "img0"] and sub.labels.tolist() == [1, 0] and len(sub) == 2
    assert torch.equal(sub.masks[0], ds.masks[3])
    assert ds.subset(torch.tensor([True, False, False, True])).ids == ["img0", "img3"]


def test_split_filter(toy):
    man = toy / "toy" / "manifest.csv"
    man.write_text(man.read_text().replace(",p0,\n", ",p0,train\n").replace(",p1,\n", ",p1,test\n"))
    assert load_dataset("toy", root=toy, image_size=8, split="test").ids == ["img2", "img3"]
    assert len(load_dataset("toy", root=toy, image_size=8, split="val")) == 0


def test_split_requested_without_splits_is_an_error(toy):
    with pytest.raises(ValueError, match="assigns no splits"):
        load_dataset("toy", root=toy, image_size=8, split="train")


def test_every_problem_is_reported_at_once(toy, save):
    d, m = toy / "toy", toy.parent / "reference_masks" / "toy"
    save(np.full((20, 20), 9, np.uint8), d / "b.png")
    save(np.full((20, 20), 9, np.uint8), d / "c.png")
    save(np.full((20, 20), 9, np.uint8), d / "d.png")
    (d / "broken.png").write_bytes(b"not a png")
    save(np.zeros((10, 10), np.uint8) + np.eye(10, dtype=np.uint8) * 255, m / "small.png")
    grey = np.zeros((20, 20), np.uint8)
    grey[2:5, 2:5] = 128
    save(grey, m / "grey.png")
    save(np.zeros((20, 20), np.uint8), m / "empty.png")
    ones = np.zeros((20, 20), np.uint8)
    ones[1, 1] = 1
    save(ones, m / "ones.png")  # {0, 1} is fine
    rows = [
        {"image": "img0.png", "label": "Normal", "mask": "", "group": "", "split": ""},
        {"image": "missing.png", "label": "Normal", "mask": "", "group": "", "split": ""},
        {"image": "broken.png", "label": "Normal", "mask": "", "group": "", "split": ""},
        {"image": "img1.png", "label": "Cancer", "mask": "", "group": "", "split": "later"},
        {"image": "img2.png", "label": "Lesion", "mask": "small.png", "group": "", "split": ""},
        {"image": "img3.png", "label": "Lesion", "mask": "grey.png", "group": "", "split": ""},
        {"image": "img0.jpg", "label": "Normal", "mask": "", "group": "", "split": ""},
        {"image": "b.png", "label": "Lesion", "mask": "empty.png", "group": "", "split": ""},
        {"image": "c.png", "label": "Lesion", "mask": "nomask.png", "group": "", "split": ""},
        {"image": "d.png", "label": "Lesion", "mask": "ones.png", "group": "", "split": ""},
    ]
    write_manifest(d / "manifest.csv", rows)
    problems = validate_dataset("toy", root=toy)
    text = "\n".join(map(str, problems))
    man = str(d / "manifest.csv")
    expected = [
        (3, "missing image"),
        (4, "unreadable image"),
        (5, "label 'Cancer' is not a class"),
        (5, "split 'later'"),
        (6, "is 10x10 but its image is 20x20"),
        (7, "is not binary: values {0, 128}"),
        (8, "duplicate id 'img0' (first on line 2)"),
        (8, "missing image"),
        (9, "all 0"),
        (10, "missing mask"),
    ]
    for line, what in expected:
        assert any(p.line == line and what in p.message and p.file == man for p in problems), (line, what, text)
    assert len(problems) == len(expected), text
    with pytest.raises(ManifestError) as exc:
        load_dataset("toy", root=toy, image_size=8)
    assert len(exc.value.problems) == len(expected)
    assert "10 problem(s)" in str(exc.value)
    # the size mismatch alone is accepted with resize_masks
    assert not any("10x10" in p.message for p in validate_dataset("toy", root=toy, resize_masks=True))


def test_missing_columns_and_manifest(root):
    (root / "toy.toml").write_text('key = "toy"\ntitle = "T"\nmodality = "x"\nclasses = ["a", "b"]\ncounts = [1, 1]\npositive = "a"\n')
    problems = validate_dataset("toy", root=root)
    assert len(problems) == 1 and "no manifest.csv" in problems[0].message
    (root / "toy").mkdir()
    (root / "toy" / "manifest.csv").write_text("image,label\nx.png,a\n")
    problems = validate_dataset("toy", root=root)
    assert len(problems) == 1 and problems[0].line == 1
    assert "missing column(s) mask, group, split" in problems[0].message


def test_colour_16bit_and_rgb_masks(root, save):
    (root / "toy.toml").write_text('key = "toy"\ntitle = "T"\nmodality = "x"\nclasses = ["a", "b"]\ncounts = [1, 1]\npositive = "a"\n')
    d, m = root / "toy", root.parent / "reference_masks" / "toy"
    rgb = np.zeros((12, 12, 3), np.uint8)
    rgb[..., 0] = 255
    save(rgb, d / "rgb.png")
    save((np.arange(144, dtype=np.uint16).reshape(12, 12) * 400), d / "deep.png")
    mk = np.zeros((12, 12, 3), np.uint8)
    mk[3:6, 3:6] = 255
    save(mk, m / "rgbmask.png")
    mk2 = mk.copy()
    mk2[3, 3, 1] = 0
    save(mk2, m / "colourmask.png")
    write_manifest(d / "manifest.csv", [
        {"image": "rgb.png", "label": "a", "mask": "rgbmask.png", "group": "", "split": ""},
        {"image": "deep.png", "label": "b", "mask": "", "group": "", "split": ""},
    ])
    ds = load_dataset("toy", root=root, image_size=12)
    assert torch.allclose(ds.images[0, 0], torch.ones(12, 12)) and float(ds.images[0, 1].max()) == 0
    assert float(ds.images[1].max()) > 0.5 and ds.masks[0].sum() == 9
    write_manifest(d / "manifest.csv", [{"image": "rgb.png", "label": "a", "mask": "colourmask.png", "group": "", "split": ""}])
    (p,) = validate_dataset("toy", root=root)
    assert "colour image with different channels" in p.message
