"""Deletion / insertion against a direct, unbatched reference implementation written here."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics import deletion_insertion
from bench.metrics.faithfulness import gaussian_blur, pixels_per_step


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models: one thread is faster, and far faster when other jobs share the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TinyNet(nn.Module):
    """Conv -> BN -> ReLU -> Dropout -> GAP -> Linear: BN and dropout make eval mode matter."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        return self.fc(self.drop(F.relu(self.bn(self.conv(x)))).mean(dim=(2, 3)))


@pytest.fixture
def net():
    torch.manual_seed(0)
    model = TinyNet()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.fc.weight.mul_(8)
    return model


def reference_blur(img: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """2-D convolution with the outer-product Gaussian, reflect padding: one (C, H, W) image."""
    x = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    k2 = torch.outer(g, g)
    k2 = (k2 / k2.sum()).float()
    C = img.shape[0]
    pad = kernel // 2
    y = F.pad(img[None], (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(y, k2.expand(C, 1, kernel, kernel), groups=C)[0]


def reference(model, images, saliency, targets, steps, substrate="zeros", sigma=5.0, kernel=11):
    """One image, one step, one forward pass at a time, straight from the definition."""
    model.eval()
    B, C, H, W = images.shape
    sal = torch.as_tensor(saliency, dtype=torch.float32)
    if tuple(sal.shape[1:]) != (H, W):
        sal = F.interpolate(sal[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
    res = {"deletion": [], "insertion": [], "deletion_curve": [], "insertion_curve": []}
    for i in range(B):
        s = sal[i].flatten().tolist()
        order = sorted(range(H * W), key=lambda p: (-s[p], p))  # most salient first, ties row-major
        image = images[i]
        blurred = reference_blur(image, kernel, sigma)
        sub = {"zeros": torch.zeros_like(image), "blur": blurred}[substrate]
        for curve, start, source in (("deletion", image, sub), ("insertion", blurred, image)):
            probs = []
            for k in range(steps + 1):
                n = round(Fraction(k * H * W, steps))
                x = start.clone().reshape(C, -1)
                idx = torch.tensor(order[:n], dtype=torch.long)
                x[:, idx] = source.reshape(C, -1)[:, idx]
                with torch.no_grad():
                    p = torch.softmax(model(x.reshape(1, C, H, W)), dim=1)[0, int(targets[i])]
                probs.append(float(p))
            res[f"{curve}_curve"].append(probs)
            res[curve].append(np.trapezoid(probs, dx=1 / steps))
    return {k: np.array(v) for k, v in res.items()}


@pytest.mark.parametrize("substrate", ["zeros", "blur"])
@pytest.mark.parametrize("low_res", [False, True])
def test_matches_unbatched_reference(net, substrate, low_res):
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 12, 10, generator=g)
    sal = torch.rand(3, 4, 5, generator=g) if low_res else torch.rand(3, 12, 10, generator=g)
    sal[1] = torch.round(sal[1] * 2)  # many ties: stable row-major order decides
    targets = torch.tensor([0, 2, 1])
    steps = 7  # 120 pixels / 7 steps: not a whole number, so the rounding is exercised
    got = deletion_insertion(net, images, sal, targets, steps=steps, substrate=substrate, batch_size=5)
    ref = reference(net, images, sal, targets, steps, substrate)
    for key in ("deletion", "insertion", "deletion_curve", "insertion_curve"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-5, atol=1e-6, err_msg=key)
        assert got[key].dtype == np.float64
    np.testing.assert_allclose(got["fraction"], np.arange(steps + 1) / steps)
    # endpoints: deletion starts from the image, insertion ends at it
    np.testing.assert_allclose(got["deletion_curve"][:, 0], got["insertion_curve"][:, -1], rtol=1e-5)


def test_batch_size_does_not_change_results(net):
    g = torch.Generator().manual_seed(2)
    images, sal = torch.rand(4, 3, 8, 8, generator=g), torch.rand(4, 8, 8, generator=g)
    a = deletion_insertion(net, images, sal, 1, steps=5, batch_size=1)
    b = deletion_insertion(net, images, sal, 1, steps=5, batch_size=1000)
    for key in ("deletion", "insertion", "deletion_curve", "insertion_curve"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-7)


def test_model_state_and_inputs_untouched(net):
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images, sal = torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8)
    im0, s0 = images.clone(), sal.clone()
    deletion_insertion(net, images, sal, [0, 1], steps=4)
    assert net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # BN running stats not updated: eval mode was used
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(images, im0) and torch.equal(sal, s0)


def test_pixels_per_step_and_round_half_even():
    assert pixels_per_step(100, 4) == [0, 25, 50, 75, 100]
    assert pixels_per_step(10, 4) == [0, 2, 5, 8, 10]  # 2.5 -> 2, 7.5 -> 8 (half to even)
    assert pixels_per_step(7, 3) == [round(Fraction(k * 7, 3)) for k in range(4)]


def test_gaussian_blur_matches_2d_reference_and_keeps_constants():
    img = torch.rand(2, 3, 16, 13)
    out = gaussian_blur(img, 11, 5.0)
    for i in range(2):
        torch.testing.assert_close(out[i], reference_blur(img[i], 11, 5.0), rtol=1e-5, atol=1e-6)
    const = torch.full((1, 3, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(const, 11, 5.0), const)
    small = torch.rand(1, 1, 4, 4)  # too small to reflect 5 pixels: replicate padding
    assert gaussian_blur(small, 11, 5.0).shape == small.shape


@pytest.mark.parametrize("bad", ["zeros", "constant", "one nan pixel", "one inf pixel", "all nan"])
def test_degenerate_maps_score_the_worst_values_and_have_no_curves(net, bad):
    images = torch.rand(3, 3, 6, 6)
    sal = torch.rand(3, 6, 6)
    if bad == "zeros":
        sal[1] = 0.0
    elif bad == "constant":
        sal[1] = 0.4
    elif bad == "one nan pixel":
        sal[1, 2, 3] = float("nan")
    elif bad == "one inf pixel":
        sal[1, 0, 0] = float("inf")
    else:
        sal[1] = float("nan")
    out = deletion_insertion(net, images, sal, 0, steps=3, batch_size=2)
    assert out["degenerate"].tolist() == [False, True, False]
    assert out["deletion"][1] == 1.0 and out["insertion"][1] == 0.0  # the worst values (range (0, 1))
    assert np.isnan(out["deletion_curve"][1]).all() and np.isnan(out["insertion_curve"][1]).all()
    ok = deletion_insertion(net, images[[0, 2]], sal[[0, 2]], 0, steps=3)  # the others as without it
    for key in ("deletion", "insertion", "deletion_curve", "insertion_curve"):
        np.testing.assert_allclose(out[key][[0, 2]], ok[key], rtol=1e-6)
    sub = torch.rand(3, 3, 6, 6)  # a per-image substrate follows its image
    a = deletion_insertion(net, images, sal, 0, steps=3, substrate=sub, batch_size=1)
    b = deletion_insertion(net, images[[0, 2]], sal[[0, 2]], 0, steps=3, substrate=sub[[0, 2]])
    np.testing.assert_allclose(a["deletion"][[0, 2]], b["deletion"], rtol=1e-6)
    every = deletion_insertion(net, images, torch.zeros(3, 6, 6), 0, steps=3)  # nothing left to compute
    assert every["deletion"].tolist() == [1.0] * 3 and every["insertion"].tolist() == [0.0] * 3


def test_constant_substrate_and_errors(net):
    images, sal = torch.rand(2, 3, 6, 6), torch.rand(2, 6, 6)
    a = deletion_insertion(net, images, sal, 0, steps=2, substrate=0.0)
    b = deletion_insertion(net, images, sal, 0, steps=2, substrate="zeros")
    np.testing.assert_allclose(a["deletion"], b["deletion"], rtol=1e-6)
    per_image = torch.rand(2, 3, 6, 6)  # one substrate per image, across groups of batch_size images
    c = deletion_insertion(net, images, sal, 0, steps=2, substrate=per_image, batch_size=1)
    d = [deletion_insertion(net, images[i : i + 1], sal[i : i + 1], 0, steps=2, substrate=per_image[i])
         for i in range(2)]
    np.testing.assert_allclose(c["deletion"], [d[0]["deletion"][0], d[1]["deletion"][0]], rtol=1e-6)
    with pytest.raises(ValueError, match="substrate"):
        deletion_insertion(net, images, sal, 0, substrate="noise")
    with pytest.raises(ValueError, match=r"\(2, 7, 6\).*\(2, 3, 6, 6\)"):
        deletion_insertion(net, images, torch.rand(2, 7, 6), 0)
    with pytest.raises(ValueError, match="saliency"):
        deletion_insertion(net, images, torch.rand(3, 6, 6), 0)
    with pytest.raises(ValueError, match="targets"):
        deletion_insertion(net, images, sal, [0, 1, 2])
    with pytest.raises(ValueError, match="steps"):
        deletion_insertion(net, images, sal, 0, steps=0)
