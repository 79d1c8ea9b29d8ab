"""The composite control on a real FF-VGG19 trained by bench.train.fit on a smoke-sized phantom."""

import pytest

from bench.config import load_run_config
from bench.data import composite_control, load_dataset

train = pytest.importorskip("bench.train")


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
