"""bench datasets / validate / prepare, and the composite control on hand-built models."""

import numpy as np
import torch
from torch import nn

from bench.cli import main
from bench.data import load_dataset
from bench.data.manifest import write_manifest
from bench.train.control import composite_control, dilate_masks, make_composites


def test_cli_datasets_lists_the_seven(root, capsys):
    assert main(["datasets", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    for key in ("pet_ct", "lidc_idri", "cov_x", "cov_ct", "cells", "mpip", "ham10000", "mnist"):
        assert key in out


def test_cli_prepare_then_validate(root, capsys):
    args = ["prepare", "synthetic-mpip", "--root", str(root), "--scale", "0.01", "--min-per-class", "3",
            "--max-per-class", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "CAD: 3" in out and "Normal: 3" in out
    assert main(["validate", "synthetic-mpip", "--root", str(root)]) == 0
    assert "OK (6 images, 3 masks)" in capsys.readouterr().out
    assert main(["datasets", "--root", str(root)]) == 0
    assert "6 images, 3 masks" in capsys.readouterr().out


def test_cli_validate_lists_every_problem(toy, capsys):
    man = toy / "toy" / "manifest.csv"
    man.write_text(man.read_text().replace("img1.png,Normal", "gone.png,Normal").replace("img3.png,Lesion", "img3.png,Tumour"))
    assert main(["validate", "toy", "--root", str(toy)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2
    assert out[0].endswith("manifest.csv:3: missing image " + str(toy / "toy" / "gone.png"))
    assert "manifest.csv:5: label 'Tumour' is not a class" in out[1]
    assert main(["validate", "nope", "--root", str(toy)]) == 1  # a user error: one line, no traceback


class BrightSpot(nn.Module):
    """Class 1 ("Lesion") iff some pixel is brighter than 0.9: it looks at the lesion only."""

    def forward(self, x):
        s = (x.amax(dim=(1, 2, 3)) > 0.9).float()
        return torch.stack([1 - s, s], 1)


class Corner(nn.Module):
    """Class 1 iff the top-left pixel is brighter than 0.3: it looks at the background only."""

    def forward(self, x):
        s = (x[:, 0, 0, 0] > 0.3).float()
        return torch.stack([1 - s, s], 1)


def _toy_set(root, save):
    (root / "toy.toml").write_text('key = "toy"\ntitle = "T"\nmodality = "x"\nclasses = ["Normal", "Lesion"]\n'
                                   'counts = [1, 1]\npositive = "Lesion"\n')
    rows = []
    for i in range(8):
        lesion = i % 2 == 1
        img = np.full((16, 16), 120 if lesion else 20, np.uint8)  # the background differs by class too
        mask = ""
        if lesion:
            y = 2 + i
            img[y:y + 3, 6:9] = 250
            mk = np.zeros((16, 16), np.uint8)
            mk[y:y + 3, 6:9] = 255
            save(mk, root.parent / "reference_masks" / "toy" / f"i{i}.png")
            mask = f"i{i}.png"
        save(img, root / "toy" / f"i{i}.png")
        rows.append({"image": f"i{i}.png", "label": "Lesion" if lesion else "Normal", "mask": mask, "group": "", "split": ""})
    write_manifest(root / "toy" / "manifest.csv", rows)
    return load_dataset("toy", root=root, image_size=16)


def test_composite_control_separates_lesion_from_background_models(root, save):
    ds = _toy_set(root, save)
    lesion = composite_control(BrightSpot(), ds, n_pairs=40, seed=1)
    assert lesion["n_pairs"] == 40 and lesion["follows_lesion"] == 1.0 and lesion["follows_background"] == 0.0
    assert lesion["source_accuracy"] == 1.0 and lesion["n_pairs_correct"] == 40
    assert set(lesion["by_lesion_class"]) == {"Normal", "Lesion"}
    background = composite_control(Corner(), ds, n_pairs=40, seed=1)
    assert background["follows_background"] == 1.0 and background["follows_lesion"] == 0.0
    assert background["other"] == 0.0
    nearest = composite_control(BrightSpot(), ds, n_pairs=20, seed=1, pairing="nearest")
    assert nearest["follows_lesion"] == 1.0 and nearest["pairing"] == "nearest"


def test_composites_take_the_dilated_union_from_the_lesion_donor(root, save):
    ds = _toy_set(root, save)
    comp, region = make_composites(ds, [1], [3], dilate=1)
    union = dilate_masks(ds.masks[[1]] | ds.masks[[3]], 1)[0]
    assert torch.equal(region[0], union) and union.sum() > (ds.masks[1] | ds.masks[3]).sum()
    assert torch.equal(comp[0][:, union], ds.images[1][:, union])
    assert torch.equal(comp[0][:, ~union], ds.images[3][:, ~union])
