"""The gallery renderer, and ``bench explain`` / ``bench figure`` from a checkpoint and a dataset."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.attribution import explain
from bench.data.selection import pick_per_class

PNG = b"\x89PNG\r\n\x1a\n"


def test_gallery_figure_of_explained_maps(tmp_path, images):
    from bench.report.gallery import gallery_figure

    masks = np.zeros((3, 32, 32), dtype=bool)
    masks[0, 8:16, 8:20] = True  # image 1 and 2: no lesion, no outline
    maps = {"a": torch.rand(3, 32, 32).numpy(), "b": np.zeros((3, 32, 32), dtype=np.float32)}  # constant is fine
    data = {"images": images.numpy(), "masks": masks, "labels": np.array([0, 1, 0]), "ids": ["x", "y", "z"],
            "class_names": ["c0", "c1"], "maps": maps}
    fig = gallery_figure(data, title="t", max_rows=3)
    fig.savefig(tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG
    from PIL import Image

    assert Image.open(tmp_path / "g.png").size[0] > 0
    tiles = fig.axes[0].images[0].get_array()
    assert tiles.shape == (3 * (96 + 4), 3 * (96 + 4), 3)  # 3 rows x 3 columns (image, a, b): 96 px tiles, 4 px gaps


def test_pick_per_class_prefers_images_with_masks():
    """As ``bench figure`` calls it: candidates mask-first within each class, ``per_class`` of each,
    returned round-robin over the classes."""
    labels = np.array([0, 1, 0, 1, 1, 0])
    has_mask = np.array([False, False, False, True, True, False])
    mask_first = np.argsort(~has_mask, kind="stable")
    assert pick_per_class(labels, mask_first, per_class=2) == [0, 3, 2, 4]
    assert pick_per_class(labels, mask_first, per_class=1) == [0, 3]
    assert pick_per_class(labels, total=3) == [0, 1, 2]  # the gallery's rows: dataset order, round-robin
    assert pick_per_class(labels, mask_first, per_class=0) == []


# ------------------------------------------------------------------------------------------------
# CLI, against bench.train's checkpoint and a stand-in for bench.data.load_dataset


@pytest.fixture
def checkpoint(tmp_path, make_ff):
    import bench.train as train
    from bench.config import DataConfig, ModelConfig, RunConfig

    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    mcfg = ModelConfig(width=0.125, head_units=32, **({"bn_momentum": 0.1} if "bn_momentum" in model_fields else {}))
    cfg = RunConfig(data=DataConfig(dataset="tiny", image_size=32), model=mcfg)
    model = train.build_model(cfg, 2)
    model.load_state_dict(make_ff(seed=11).state_dict())
    result = SimpleNamespace(model=model.eval(), config=cfg, class_names=["normal", "lesion"], metrics={})
    return train.save_checkpoint(tmp_path / "model.pt", result), model


@dataclasses.dataclass
class FakeSet:
    """The part of bench.data.ImageSet the CLI uses."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    has_mask: torch.Tensor
    ids: list
    groups: list
    splits: list
    class_names: tuple = ("normal", "lesion")

    def subset(self, idx):
        idx = [int(i) for i in idx]
        return FakeSet(self.images[idx], self.labels[idx], self.masks[idx], self.has_mask[idx],
                       [self.ids[i] for i in idx], [self.groups[i] for i in idx], [self.splits[i] for i in idx])


TEST_ROWS = [1, 2, 4, 7, 8, 9]  # the manifest's test split in the stand-in dataset


@pytest.fixture
def fake_data(monkeypatch, tiny_set):
    import bench.data

    calls = []
    n = 10
    splits = ["test" if i in TEST_ROWS else "train" for i in range(n)]
    full = FakeSet(tiny_set.images[:n], tiny_set.labels[:n], tiny_set.masks[:n],
                   tiny_set.masks[:n].flatten(1).any(dim=1), tiny_set.ids[:n], tiny_set.groups[:n], splits)

    def load_dataset(key, *, root="", image_size=64, split=None):
        calls.append((key, root, image_size, split))
        return full if split is None else full.subset([i for i in range(n) if splits[i] == split])

    monkeypatch.setattr(bench.data, "load_dataset", load_dataset)
    return calls


def test_bench_explain_writes_maps_per_method(tmp_path, checkpoint, fake_data, tiny_set):
    from bench.cli import main

    ckpt, model = checkpoint
    out = tmp_path / "maps"
    rc = main(["explain", "--checkpoint", str(ckpt), "--methods", "grad_cam,rise,edge", "--out", str(out),
               "--option", "rise.n_masks=16", "--batch-size", "4", "--device", "cpu"])
    assert rc == 0
    assert fake_data == [("tiny", "", 32, None)]  # the whole set, then the training run's test split
    meta = json.loads((out / "explain.json").read_text())
    assert meta["ids"] == [tiny_set.ids[i] for i in TEST_ROWS]
    assert meta["targets"] == tiny_set.labels[TEST_ROWS].tolist()
    assert meta["methods"]["rise"]["options"]["n_masks"] == 16
    assert meta["methods"]["rise"]["cost"] == {"forward": 16, "backward": 0}
    for m in ("grad_cam", "rise", "edge"):
        maps = np.load(out / f"{m}.npy")
        assert maps.shape == (6, 32, 32) and maps.dtype == np.float32
    want = explain(model, tiny_set.images[TEST_ROWS], tiny_set.labels[TEST_ROWS], "grad_cam").numpy()
    np.testing.assert_allclose(np.load(out / "grad_cam.npy"), want, atol=1e-6)


def test_bench_explain_reports_bad_input_as_one_line(tmp_path, checkpoint, fake_data, capsys):
    from bench.cli import main

    ckpt, _ = checkpoint
    assert main(["explain", "--checkpoint", str(ckpt), "--methods", "gradcam", "--out", str(tmp_path)]) == 1
    assert "unknown attribution method 'gradcam'" in capsys.readouterr().err
    assert main(["explain", "--checkpoint", str(ckpt), "--target", "7", "--out", str(tmp_path)]) == 1
    assert "out of range" in capsys.readouterr().err


def test_bench_figure_renders_a_gallery(tmp_path, checkpoint, fake_data):
    from bench.cli import main

    ckpt, _ = checkpoint
    out = tmp_path / "fig.png"
    rc = main(["figure", "--checkpoint", str(ckpt), "--methods", "grad_cam,fused_grad_cam,centre",
               "--per-class", "2", "--out", str(out), "--device", "cpu"])
    assert rc == 0 and out.read_bytes()[:8] == PNG
