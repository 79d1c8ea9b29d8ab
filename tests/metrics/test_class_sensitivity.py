"""Class sensitivity (two lesions, two asks) and the lesion drop (model-verified ground truth): known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bench.metrics import class_sensitivity, lesion_drop, lesion_used


def _two_lesions(size: int = 8):
    ma = np.zeros((size, size), bool)
    mb = np.zeros((size, size), bool)
    ma[1:3, 1:3] = True  # 4 px
    mb[5:7, 4:8] = True  # 8 px
    return ma, mb


def test_a_map_equal_to_the_asked_lesion_scores_one_and_the_other_lesion_minus_one():
    ma, mb = _two_lesions()
    assert class_sensitivity(ma.astype(float), mb.astype(float), ma, mb) == pytest.approx(1.0)
    assert class_sensitivity(mb.astype(float), ma.astype(float), ma, mb) == pytest.approx(-1.0)


def test_the_same_map_whatever_the_class_scores_exactly_zero():
    ma, mb = _two_lesions()
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 8, 8))  # any map, even one that prefers a lesion, as long as both asks get it
    maps[0] = 3.0 * ma + 1.0 * mb
    v = class_sensitivity(maps, maps.copy(), np.stack([ma] * 5), np.stack([mb] * 5))
    np.testing.assert_array_equal(v, np.zeros(5))


def test_hand_computed_values_and_the_parts():
    ma, mb = _two_lesions()
    sa = np.zeros((8, 8))
    sa[1, 1], sa[5, 5], sa[0, 7], sa[7, 0] = 3.0, 1.0, -5.0, 0.0  # 3 on A, 1 on B; negative values do not count
    sb = np.zeros((8, 8))
    sb[5, 6], sb[0, 0] = 2.0, 2.0  # 2 on B, 2 outside both
    v, parts = class_sensitivity(sa, sb, ma, mb, return_parts=True)
    assert parts["asked_a"] == pytest.approx(3 / 4 - 1 / 4)
    assert parts["asked_b"] == pytest.approx(2 / 4 - 0.0)
    assert v == pytest.approx((0.5 + 0.5) / 2) and np.ndim(v) == 0 and not parts["degenerate"]


def test_degenerate_maps_count_zero_and_are_flagged_empty_masks_nan():
    ma, mb = _two_lesions()
    const = np.full((8, 8), 0.5)
    v, parts = class_sensitivity(np.stack([const, ma * 1.0]), np.stack([mb * 1.0, -np.ones((8, 8))]),
                                 np.stack([ma, ma]), np.stack([mb, mb]), return_parts=True)
    # pair 0: the map for A is constant (0), the map for B is B's mask (1): (0 + 1) / 2
    # pair 1: the map for B has no positive value (0): (1 + 0) / 2
    np.testing.assert_allclose(v, [0.5, 0.5])
    assert parts["degenerate"].tolist() == [True, True]
    empty = np.zeros((8, 8), bool)
    assert np.isnan(class_sensitivity(ma * 1.0, mb * 1.0, empty, mb))


def test_bad_inputs_are_clear_errors():
    ma, mb = _two_lesions()
    with pytest.raises(ValueError, match="overlap in pair 0"):
        class_sensitivity(ma * 1.0, mb * 1.0, ma, ma)
    with pytest.raises(ValueError, match="same batch size"):
        class_sensitivity(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)), ma, mb)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(B, H, W\)"):
        class_sensitivity(np.zeros(8), np.zeros(8), ma, mb)


class _Reader(nn.Module):
    """Two classes; the logit of class 1 is ``gain`` times the mean brightness of a fixed region."""

    def __init__(self, region: torch.Tensor, gain: float):
        super().__init__()
        self.register_buffer("region", region.float())
        self.gain = nn.Parameter(torch.tensor(float(gain)))
        self.num_classes = 2

    def forward(self, x):
        inside = (x.mean(1) * self.region).flatten(1).sum(1) / self.region.sum()
        return torch.stack([torch.zeros_like(inside), self.gain * (inside - 0.5)], 1)


def _lesioned(n: int = 6, size: int = 16):
    images = torch.full((n, 3, size, size), 0.2)
    removed = images.clone()
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[:, 4:8, 4:8] = True
    images[:, :, 4:8, 4:8] = 1.0  # the lesion: bright
    return images, removed, masks


def test_a_model_that_ignores_the_lesion_gives_no_verified_images():
    images, removed, masks = _lesioned()
    elsewhere = torch.zeros(16, 16, dtype=torch.bool)
    elsewhere[10:14, 10:14] = True  # the model reads a region the lesion never touches
    out = lesion_drop(_Reader(elsewhere, 20.0), images, removed, torch.ones(6, dtype=torch.long))
    np.testing.assert_array_equal(out["lesion_drop"], np.zeros(6))
    assert not lesion_used(out["lesion_drop"]).any()


def test_a_model_that_reads_the_lesion_loses_its_class_without_it():
    images, removed, masks = _lesioned()
    model = _Reader(masks[0], 20.0)
    out = lesion_drop(model, images, removed, torch.ones(6, dtype=torch.long))
    p1 = 1 / (1 + np.exp(-20 * 0.5))  # softmax of (0, 20 (1 - 0.5)) on the image
    p0 = 1 / (1 + np.exp(-20 * (0.2 - 0.5)))  # and without the lesion
    np.testing.assert_allclose(out["p_image"], p1, rtol=1e-6)
    np.testing.assert_allclose(out["lesion_drop"], p1 - p0, rtol=1e-5)
    assert lesion_used(out["lesion_drop"], 0.25).all()
    # for the other class the lesion is evidence against: a negative drop, never verified
    other = lesion_drop(model, images, removed, torch.zeros(6, dtype=torch.long))
    assert (other["lesion_drop"] < 0).all() and not lesion_used(other["lesion_drop"]).any()
    assert lesion_used([np.nan, 0.3, 0.2], 0.25).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="class indices"):
        lesion_drop(model, images, removed, torch.full((6,), 2))
    with pytest.raises(ValueError, match="must be"):
        lesion_drop(model, images, removed[:2], torch.ones(6, dtype=torch.long))
