"""The composite control on a real FF-VGG19 trained by bench.train.fit on a smoke-sized phantom."""

import pytest

from bench.config import load_run_config
from bench.data import load_dataset

train = pytest.importorskip("bench.train")
composite_control = train.composite_control


@pytest.mark.slow
def test_trained_model_follows_the_lesion(root):
    """Train on the PET/CT phantom (whose classes differ only in the nodule's uptake), then paste
    lesions into backgrounds of the other class: the prediction follows the lesion."""
    cfg = load_run_config(
        "smoke",
        data={"dataset": "synthetic-pet_ct", "root": str(root), "image_size": 32,
              "phantom_min_per_class": 40, "phantom_max_per_class": 40},
        train={"epochs": 40, "batch_size": 8, "patience": 0, "threads": 1, "seed": 0},
    )
    result = train.fit(cfg, progress=False)
    ds = load_dataset("synthetic-pet_ct", root=str(root), image_size=32)
    ctl = composite_control(result.model, ds, n_pairs=200, seed=0)
    assert ctl["source_accuracy"] >= 0.75, ctl
    assert ctl["n_pairs_correct"] >= 100, ctl
    assert ctl["follows_lesion_given_correct"] >= 0.75, ctl
    assert ctl["follows_background_given_correct"] <= 0.25, ctl
    assert ctl["follows_lesion"] > 2 * ctl["follows_background"], ctl


@pytest.mark.slow
def test_cli_control_reads_a_checkpoint_and_reports_both_pairings(root, tmp_path, capsys):
    """`bench control CHECKPOINT` rebuilds the model and its test split from the checkpoint alone."""
    from bench.cli import main

    cfg = load_run_config(
        "smoke",
        data={"dataset": "synthetic-pet_ct", "root": str(root), "image_size": 32,
              "phantom_min_per_class": 20, "phantom_max_per_class": 20},
        train={"epochs": 1, "batch_size": 8, "threads": 1, "seed": 0},
    )
    res = train.fit(cfg, out_dir=tmp_path, progress=False)
    assert main(["control", str(tmp_path / "checkpoint.pt"), "--pairs", "30"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    n_test = len(res.test_ids)
    assert lines[0].startswith(f"synthetic-pet_ct: {n_test} test images")
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines[3:]}
    assert set(rows) == {"random", "nearest"}
    for cells in rows.values():
        acc, lesion, background, other = (float(c) for c in cells[:4])
        assert acc == pytest.approx(res.metrics["accuracy"], abs=1e-3)  # the same test images
        assert lesion + background + other == pytest.approx(1.0, abs=2e-3)
