"""ROAD (bench.metrics.road): the imputer on hand-checked cases, the metric on a model whose answer is known,
and agreement with pytorch-grad-cam's ROAD (the authors' imputer) on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics import METRICS, noisy_linear_impute, road
from bench.metrics.road import NEIGHBOUR_WEIGHTS, grid_order


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------------------
# the imputer


def test_one_removed_pixel_is_the_weighted_mean_of_its_neighbours():
    img = np.arange(25, dtype=float).reshape(1, 5, 5) ** 1.5  # not linear: the mean is not the centre value
    removed = np.zeros((5, 5), dtype=bool)
    removed[2, 2] = True
    out = noisy_linear_impute(img, removed, noise=0.0)
    expected = sum(w * img[0, 2 + dr, 2 + dc] for dr, dc, w in NEIGHBOUR_WEIGHTS)  # the weights sum to 1
    assert out[0, 2, 2] == pytest.approx(expected, abs=1e-12)
    keep = ~removed
    np.testing.assert_array_equal(out[0][keep], img[0][keep])


def test_corner_pixel_averages_the_neighbours_inside_the_image():
    img = np.random.default_rng(0).random((2, 4, 4))
    removed = np.zeros((4, 4), dtype=bool)
    removed[0, 0] = True
    out = noisy_linear_impute(img, removed, noise=0.0)
    # inside: (0, 1) and (1, 0) with 1/6, (1, 1) with 1/12; mean over those: weights / (5/12)
    expected = (img[:, 0, 1] / 6 + img[:, 1, 0] / 6 + img[:, 1, 1] / 12) / (5 / 12)
    np.testing.assert_allclose(out[:, 0, 0], expected, atol=1e-12)


def test_two_adjacent_removed_pixels_are_solved_jointly():
    """Two removed neighbours: each is the mean of the other one and its kept neighbours (a 2 x 2 system)."""
    rng = np.random.default_rng(1)
    img = rng.random((1, 4, 5))
    removed = np.zeros((4, 5), dtype=bool)
    removed[1, 1] = removed[1, 2] = True
    out = noisy_linear_impute(img, removed, noise=0.0)[0]
    for r, c in ((1, 1), (1, 2)):
        mean = sum(w * out[r + dr, c + dc] for dr, dc, w in NEIGHBOUR_WEIGHTS)
        assert out[r, c] == pytest.approx(mean, abs=1e-12)


def test_constant_image_stays_constant():
    img = np.full((3, 12, 12), 0.37)
    removed = np.random.default_rng(0).random((12, 12)) < 0.7
    np.testing.assert_allclose(noisy_linear_impute(img, removed, noise=0.0), img, atol=1e-12)


def test_linear_ramp_is_reproduced_where_all_neighbours_are_inside():
    """A function linear in row and column has the neighbour-mean property (symmetric weights), so removing
    any set of interior pixels and imputing them gives the ramp back exactly."""
    H, W = 16, 20
    r, c = np.mgrid[0:H, 0:W]
    img = np.stack([0.03 * r + 0.01 * c + 0.1, -0.02 * r + 0.05 * c])
    removed = np.zeros((H, W), dtype=bool)
    removed[3:13, 4:17] = True  # a block away from the border
    removed[1, 1] = removed[14, 18] = True
    np.testing.assert_allclose(noisy_linear_impute(img, removed, noise=0.0), img, atol=1e-10)


def test_noise_is_added_to_imputed_pixels_only_and_is_seeded():
    img = np.full((1, 30, 30), 0.5)
    removed = np.zeros((30, 30), dtype=bool)
    removed[5:25, 5:25] = True
    a = noisy_linear_impute(img, removed, noise=0.05, rng=np.random.default_rng(3))
    b = noisy_linear_impute(img, removed, noise=0.05, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0][~removed], img[0][~removed])
    dev = a[0][removed] - 0.5
    assert dev.std() == pytest.approx(0.05, rel=0.1)
    assert abs(dev.mean()) < 0.01


def test_imputer_errors():
    with pytest.raises(ValueError, match="nothing to impute from"):
        noisy_linear_impute(np.zeros((1, 3, 3)), np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        noisy_linear_impute(np.zeros((3, 3)), np.ones((3, 3), dtype=bool))
    img = np.random.default_rng(0).random((1, 3, 3))
    np.testing.assert_array_equal(noisy_linear_impute(img, np.zeros((3, 3), dtype=bool)), img)


def test_grid_order_is_a_permutation():
    for H, W in ((1, 1), (5, 3), (64, 64), (17, 40)):
        order = grid_order(H, W)
        assert sorted(order.tolist()) == list(range(H * W))


# ------------------------------------------------------------------------------------------------
# the metric


class RegionBrightness(nn.Module):
    """Logits (k * (mean brightness inside ``region`` - 0.5), 0): the class-0 probability depends on that
    region only, and falls as its pixels darken."""

    def __init__(self, region: torch.Tensor, k: float = 12.0) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.scale = nn.Parameter(torch.tensor(k), requires_grad=False)

    def forward(self, x):
        inside = (x.mean(1) * self.region).sum((1, 2)) / self.region.sum()
        z = self.scale * (inside - 0.5)
        return torch.stack([z, torch.zeros_like(z)], dim=1)


@pytest.fixture
def region_case():
    H = W = 32
    region = torch.zeros(H, W, dtype=torch.bool)
    region[8:18, 6:16] = True
    g = torch.Generator().manual_seed(0)
    images = 0.15 * torch.rand(3, 3, H, W, generator=g)
    images[:, :, region] += 0.8
    model = RegionBrightness(region)
    ramp = torch.linspace(0, 1e-3, H * W).view(H, W)  # distinct values: no ties in the ranking
    on_region = region.float() + ramp
    elsewhere = (~region).float() + ramp
    return model, images, region, on_region, elsewhere


def test_map_of_the_region_drops_fastest_under_morf_and_holds_under_lerf(region_case):
    model, images, _, on_region, elsewhere = region_case
    B = images.shape[0]
    good = road(model, images, on_region.expand(B, -1, -1), 0, steps=10, noise=0.01)
    bad = road(model, images, elsewhere.expand(B, -1, -1), 0, steps=10, noise=0.01)
    assert np.all(good["road_morf"] < bad["road_morf"] - 0.3)
    assert np.all(good["road_lerf"] > bad["road_lerf"] + 0.3)
    # the region is 100 of 1024 pixels: at 10 % removed most relevant first it is gone
    assert np.all(good["road_morf_curve"][:, 1] < 0.2)
    assert np.all(bad["road_morf_curve"][:, 1] > 0.9)
    # point 0 is the unperturbed image, the same for both maps and both orders
    np.testing.assert_allclose(good["road_morf_curve"][:, 0], bad["road_lerf_curve"][:, 0])
    assert good["fraction"].tolist() == pytest.approx([k / 10 for k in range(10)])
    np.testing.assert_allclose(good["road_morf"], good["road_morf_curve"][:, 1:].mean(1))


def test_degenerate_map_scores_the_worst_and_is_flagged(region_case):
    model, images, _, on_region, _ = region_case
    maps = torch.stack([on_region, torch.zeros_like(on_region), on_region.clone().fill_(np.nan)])
    out = road(model, images, maps, 0, steps=4)
    assert out["degenerate"].tolist() == [False, True, True]
    assert out["road_morf"][1:].tolist() == [1.0, 1.0]
    assert out["road_lerf"][1:].tolist() == [0.0, 0.0]
    assert np.isnan(out["road_morf_curve"][1:]).all() and np.isfinite(out["road_morf_curve"][0]).all()


def test_batch_size_chunking_and_position_do_not_change_the_values(region_case):
    model, images, _, on_region, elsewhere = region_case
    maps = torch.stack([on_region, elsewhere, on_region.T.contiguous()])
    a = road(model, images, maps, 0, steps=5, noise=0.05, seed=7, batch_size=1)
    b = road(model, images, maps, 0, steps=5, noise=0.05, seed=7, batch_size=64)
    for k in ("road_morf", "road_lerf", "road_morf_curve", "road_lerf_curve"):
        np.testing.assert_allclose(a[k], b[k], atol=1e-6)
    c = road(model, images, maps, 0, steps=5, noise=0.05, seed=8)
    assert not np.allclose(a["road_morf_curve"], c["road_morf_curve"])  # the seed is used
    # an image's noise follows the image, not its position in the call: scored alone, the last one agrees
    d = road(model, images[2:], maps[2:], 0, steps=5, noise=0.05, seed=7)
    np.testing.assert_allclose(d["road_morf_curve"], a["road_morf_curve"][2:], atol=1e-6)


def test_images_with_the_same_map_share_the_factorisations(region_case, monkeypatch):
    import importlib

    R = importlib.import_module("bench.metrics.road")  # the module (bench.metrics.road is also the function)

    model, images, _, on_region, elsewhere = region_case
    calls = []
    real = R._factor
    monkeypatch.setattr(R, "_factor", lambda *a: calls.append(1) or real(*a))
    same = road(model, images, on_region.expand(3, -1, -1), 0, steps=4, noise=0.0)
    assert len(calls) == 6  # 3 fractions x 2 orders, once for all three images
    calls.clear()
    mixed = road(model, images, torch.stack([on_region, on_region, elsewhere]), 0, steps=4, noise=0.0)
    assert len(calls) == 12
    np.testing.assert_allclose(same["road_morf_curve"][:2], mixed["road_morf_curve"][:2], atol=1e-7)


def test_argument_errors(region_case):
    model, images, _, on_region, _ = region_case
    maps = on_region.expand(3, -1, -1)
    with pytest.raises(ValueError, match="steps >= 2"):
        road(model, images, maps, 0, steps=1)
    with pytest.raises(ValueError, match="noise"):
        road(model, images, maps, 0, noise=-0.1)
    with pytest.raises(ValueError, match="saliency must be"):
        road(model, images, maps[:2], 0)


def test_registered_with_directions():
    assert METRICS.meta("road_morf")["direction"] == "lower"
    assert METRICS.meta("road_lerf")["direction"] == "higher"
    assert METRICS.meta("road_morf")["computed_by"] == METRICS.meta("road_lerf")["computed_by"] == "road"


# ------------------------------------------------------------------------------------------------
# pytorch-grad-cam's ROAD on the same inputs


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pytorch-grad-cam's np.float32 on tensors
def test_equals_pytorch_grad_cam_road_with_the_noise_off():
    """Same images, maps, model and fractions (10 %, ..., 90 %), noise 0 in both. Tolerance 1e-5 on each
    probability: both solve the same sparse system in float64 (imputed pixels agree to ~1e-12); what is left
    is float32 rounding of the model, which we run channels-last with its BatchNorm folded into the conv.
    With 20 x 20 = 400 pixels, a multiple of 100, pytorch-grad-cam's percentile threshold removes exactly
    our ``round(k * 400 / 10)`` pixels when the map has no ties."""
    pytest.importorskip("pytorch_grad_cam", reason="pytorch-grad-cam (pip install grad-cam) is not installed")
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric, RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():
        model.fc.weight.mul_(10)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 20, 20, generator=g)
    maps = F.interpolate(torch.randn(3, 1, 5, 5, generator=g, dtype=torch.float64), size=(20, 20),
                         mode="bilinear")[:, 0] + 1e-6 * torch.rand(3, 20, 20, generator=g, dtype=torch.float64)
    targets = [0, 1, 2]
    ours = road(model, x, maps, torch.tensor(targets), steps=10, noise=0.0)
    tg = [ClassifierOutputSoftmaxTarget(t) for t in targets]
    for name, remover in (("morf", RemoveMostRelevantFirst), ("lerf", RemoveLeastRelevantFirst)):
        theirs = np.stack([
            PerturbationConfidenceMetric(remover(p, NoisyLinearImputer(noise=0.0)))(
                x, maps.numpy(), tg, model, return_diff=False)
            for p in range(90, 0, -10)], axis=1)  # percentile p removes (100 - p) %
        np.testing.assert_allclose(ours[f"road_{name}_curve"][:, 1:], theirs, atol=1e-5, rtol=0)
        np.testing.assert_allclose(ours[f"road_{name}"], theirs.mean(axis=1), atol=1e-5, rtol=0)
