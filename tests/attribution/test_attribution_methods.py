"""Method-specific checks: each method against an independent computation or a known property."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.attribution import explain, method_cost, postprocess
from bench.attribution.base import activations
from bench.attribution.perturbation import render_masks, rise_masks


def homogeneous(model: nn.Module) -> nn.Module:
    """Zero every bias and BatchNorm shift: the network becomes positively homogeneous (f(a x) = a f(x))."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.bias.zero_()
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.zero_()
                m.bias.zero_()
    return model


def test_deeplift_and_integrated_gradients_equal_input_x_gradient_on_a_homogeneous_ff_vgg19(make_ff, images):
    # With a zero baseline and no biases, DeepLIFT's rescale multipliers and the path integral both
    # reduce to the gradient: a check that captum's hooks work through our ReLU, MaxPool, BN, Dropout.
    m = homogeneous(make_ff(seed=5)).eval()
    ixg = explain(m, images, 1, "input_x_gradient")
    torch.testing.assert_close(explain(m, images, 1, "deeplift"), ixg, atol=1e-6 * float(ixg.max()), rtol=1e-4)
    torch.testing.assert_close(
        explain(m, images, 1, "integrated_gradients", n_steps=3), ixg, atol=1e-6 * float(ixg.max()), rtol=1e-4
    )


def test_saliency_is_the_abs_sum_of_the_input_gradient(model, images):
    x = images.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, 1].sum(), x)
    torch.testing.assert_close(explain(model, images, 1, "saliency"), g.abs().sum(dim=1))


def test_guided_grad_cam_is_guided_backprop_times_grad_cam(model, images):
    # abs-sum over channels of gb * gc equals gc * abs-sum of gb because Grad-CAM is >= 0
    gb = explain(model, images, 1, "guided_backprop")
    gc = explain(model, images, 1, "grad_cam")
    torch.testing.assert_close(explain(model, images, 1, "guided_grad_cam"), gb * gc, atol=1e-7, rtol=1e-5)


def test_smoothgrad_with_zero_noise_is_saliency(model, images):
    torch.testing.assert_close(
        explain(model, images, 1, "smoothgrad", noise_level=0.0, n_samples=3), explain(model, images, 1, "saliency")
    )


def reference_score_cam(model, images, target, layer):
    """Score-CAM written out with loops, image by image and channel by channel."""
    _, a = activations(model.eval(), images, layer)
    out = []
    for i in range(images.shape[0]):
        cam = torch.zeros(a.shape[-2:])
        for k in range(a.shape[1]):
            if a[i, k].max() == a[i, k].min():
                continue
            m = F.interpolate(a[i, k][None, None], size=images.shape[-2:], mode="bilinear", align_corners=False)
            m = (m - m.min()) / (m.max() - m.min())
            with torch.no_grad():
                p = torch.softmax(model(images[i : i + 1] * m), dim=1)[0, target]
            cam += p * a[i, k]
        out.append(cam)
    raw = torch.stack(out)
    return F.interpolate(raw.clamp_min(0)[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def test_score_cam_matches_a_loop_reference_at_any_batch_size(model, images):
    x = images[:2]
    want = reference_score_cam(model, x, 1, "block3_pool")  # 32 channels at width 0.125
    assert want.abs().max() > 0
    for batch_size in (5, 256):
        got = explain(model, x, 1, "score_cam", layer="block3_pool", batch_size=batch_size)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_score_cam_skips_constant_channels(hand_net):
    # G - B <= 0 everywhere: channel 1 is all zero after the ReLU, so only channel 0 is evaluated
    x = torch.tensor([[[[1.0, 2.0], [0.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]])
    calls = []
    hand_net.register_forward_pre_hook(lambda mod, inp: calls.append(inp[0].shape[0]))
    out = explain(hand_net, x, 0, "score_cam")
    assert calls == [1, 1]  # the activation pass, then one masked image
    mask = (x[:, :1] - 0.0) / 3.0  # channel 0 = R, normalised to [0, 1]
    p = torch.softmax(hand_net(x * mask), dim=1)[0, 0]
    torch.testing.assert_close(out, p * x[:, 0])


def test_eigen_cam_of_rank_one_activations_is_their_common_pattern(hand_net):
    s = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.5, 1.5]])
    x = torch.stack([s, 2 * s, torch.zeros_like(s)])[None]  # A0 = s, A1 = relu(G - B) = 2 s
    out = explain(hand_net, x, 0, "eigen_cam")
    torch.testing.assert_close(out, (5**0.5) * s[None], atol=1e-5, rtol=1e-5)  # sign fixed positive
    torch.testing.assert_close(explain(hand_net, x, 1, "eigen_cam"), out)  # class-agnostic


class RegionNet(nn.Module):
    """Class 1's logit is 8 x (the mean of the image inside rows/cols 8..15) - 4: evidence lives there."""

    num_classes = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, :, 8:16, 8:16].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(v), 8 * v - 4], dim=1)


@pytest.mark.parametrize("method,opts", [("occlusion", {}), ("rise", {"n_masks": 400})])
def test_perturbation_maps_peak_on_the_evidence(method, opts):
    x = torch.ones((2, 3, 32, 32))
    out = explain(RegionNet(), x, 1, method, **opts)
    inside = torch.zeros((32, 32), dtype=torch.bool)
    inside[8:16, 8:16] = True
    gap = out[:, inside].mean(dim=1) - out[:, ~inside].mean(dim=1)
    assert (gap > 3 * out[:, ~inside].std(dim=1)).all()  # RISE maps carry an offset; compare contrasts
    if method == "occlusion":  # windows away from the region change nothing
        assert out[:, 24:, 24:].abs().max() < 1e-6


def test_occlusion_window_scales_with_the_image():
    assert method_cost("occlusion") == {"forward": 1 + 15 * 15, "backward": 0}
    assert method_cost("occlusion", window=0.25, stride=0.125) == {"forward": 1 + 7 * 7, "backward": 0}
    net = RegionNet()
    calls = []
    net.register_forward_pre_hook(lambda mod, inp: calls.append(inp[0].shape[0]))
    for size in (32, 64):
        calls.clear()
        explain(net, torch.ones((1, 3, size, size)), 1, "occlusion", batch_size=1)
        assert len(calls) == 1 + 15 * 15  # same number of windows at both sizes


def test_rise_masks_are_soft_binary_grids_shifted_within_a_cell():
    grids, shifts, cell = rise_masks(200, (32, 32), grid=4, p=0.5, generator=torch.Generator().manual_seed(0))
    assert cell == (8, 8) and grids.shape == (200, 1, 4, 4) and set(grids.unique().tolist()) <= {0.0, 1.0}
    assert shifts.min() >= 0 and shifts.max() < 8
    masks = render_masks(grids, shifts, cell, (32, 32))
    assert masks.shape == (200, 32, 32) and masks.min() >= 0 and masks.max() <= 1
    assert abs(float(masks.mean()) - 0.5) < 0.05


def test_centre_edge_and_random_baselines():
    x = torch.zeros((2, 3, 32, 32))
    x[:, :, :, 16:] = 1.0  # vertical step between columns 15 and 16
    model = RegionNet()
    centre = explain(model, x, 0, "centre")
    assert torch.equal(centre[0], centre[1])
    torch.testing.assert_close(centre[0], centre[0].flip(0).flip(1))
    assert centre[0, 15:17, 15:17].min() > 0.99 and centre[0, 0, 0] < 0.05
    edge = explain(model, x, 0, "edge")
    assert edge[:, :, 15:17].min() > 0 and edge[:, :, :15].abs().max() == 0 and edge[:, :, 17:].abs().max() == 0
    rnd = explain(model, x, 0, "random")
    assert not torch.equal(rnd[0], rnd[1]) and 0 <= rnd.min() and rnd.max() < 1


def test_baselines_ignore_the_target_and_raise_on_a_bad_option(model, images):
    torch.testing.assert_close(explain(model, images, 0, "edge"), explain(model, images, 1, "edge"))
    with pytest.raises(ValueError, match="sigma"):
        explain(model, images, 0, "centre", sigma=0)
    with pytest.raises(ValueError, match="seed"):
        explain(model, images, 0, "random", seed="a")
    with pytest.raises(ValueError, match="n_masks"):
        explain(model, images, 0, "rise", n_masks=0)


def test_method_cost_follows_options():
    assert method_cost("rise", n_masks=10) == {"forward": 10, "backward": 0}
    assert method_cost("score_cam", channels=64) == {"forward": 65, "backward": 0}
    assert method_cost("integrated_gradients", n_steps=20) == {"forward": 20, "backward": 20}
    assert method_cost("grad_cam") == {"forward": 1, "backward": 1}


def test_postprocess_steps():
    a = torch.tensor([[[[-1.0, 2.0]], [[3.0, -4.0]]]])  # (1, 2, 1, 2)
    torch.testing.assert_close(postprocess.reduce_channels(a, "abs_sum"), torch.tensor([[[4.0, 6.0]]]))
    torch.testing.assert_close(postprocess.reduce_channels(a, "mean"), torch.tensor([[[1.0, -1.0]]]))
    m = torch.rand(2, 4, 4)
    assert postprocess.upsample(m, (4, 4)) is m
    # ReLU before upsampling; parts are summed
    parts = [torch.tensor([[[-1.0, 1.0], [1.0, -1.0]]]), torch.ones(1, 4, 4)]
    out = postprocess.finish("fused_grad_cam", parts, (4, 4))
    want = F.interpolate(parts[0].clamp_min(0)[:, None], size=(4, 4), mode="bilinear", align_corners=False)[:, 0] + 1
    torch.testing.assert_close(out, want)
    with pytest.raises(KeyError):
        postprocess.finish("nope", m, (4, 4))


def test_maps_are_not_normalised(model, images):
    out = explain(model, images, 1, "saliency")
    assert out.max() < 0.5  # raw gradients of an untrained tiny net are small; min-max would give 1
