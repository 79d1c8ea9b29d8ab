"""Grad-CAM and its relatives against captum, against hand-computed values, and against each other."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam

from bench.attribution import explain


@pytest.mark.parametrize("layer", ["block5_conv3", "block4_pool", "block3_pool", "block2_pool"])
@pytest.mark.parametrize("target", [0, 1])
def test_grad_cam_equals_captum_layergradcam(model, layer, target):
    x = torch.rand((2, 3, 48, 48), generator=torch.Generator().manual_seed(2))
    ref = LayerGradCam(model, model.cam_layers[layer]).attribute(x, target, relu_attributions=True)
    ref = LayerAttribution.interpolate(ref, (48, 48), interpolate_mode="bilinear")[:, 0]
    ours = explain(model, x, target, "grad_cam", layer=layer)
    assert ref.abs().max() > 0  # a non-trivial comparison
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_grad_cam_default_layer_is_the_models(model, images):
    torch.testing.assert_close(
        explain(model, images, 1, "grad_cam"), explain(model, images, 1, "grad_cam", layer="block5_conv3")
    )


# Hand-computed on HandNet (conftest): A0 = [[1, 2], [0, 3]], A1 = [[1, 0], [1, 0]], h w = 4,
# gradient of logit c w.r.t. A_k = W[c, k] / 4 with W = [[1, -2], [0.5, 1]].
# Grad-CAM class 0: relu(A0 / 4 - A1 / 2) = relu([[-0.25, 0.5], [-0.5, 0.75]]).
# Grad-CAM class 1: A0 / 8 + A1 / 4 = [[0.375, 0.25], [0.25, 0.375]].
HAND = {
    ("grad_cam", 0): [[0.0, 0.5], [0.0, 0.75]],
    ("grad_cam", 1): [[0.375, 0.25], [0.25, 0.375]],
    # XGrad-CAM: weights sum(A g) / sum(A) = g when g is constant over the map -> Grad-CAM
    ("xgrad_cam", 0): [[0.0, 0.5], [0.0, 0.75]],
    # LayerCAM class 0: relu(1/4) A0 + relu(-1/2) A1 = A0 / 4
    ("layer_cam", 0): [[0.25, 0.5], [0.0, 0.75]],
    # Grad-CAM++ class 1: alpha_0 = (1/64) / (2/64 + 6/512) = 4/11, weight_0 = 4 * 4/11 * 1/8 = 2/11;
    # alpha_1 = (1/16) / (2/16 + 2/64) = 2/5, weight_1 = 4 * 2/5 * 1/4 = 2/5.
    ("grad_cam_pp", 1): [[2 / 11 + 2 / 5, 4 / 11], [2 / 5, 6 / 11]],
}


@pytest.mark.parametrize("method,target", sorted(HAND))
def test_cam_methods_match_hand_computed_values(hand_net, hand_image, method, target):
    out = explain(hand_net, hand_image, target, method)
    torch.testing.assert_close(out, torch.tensor([HAND[method, target]]), atol=1e-6, rtol=0)


def test_grad_cam_upsamples_bilinearly_after_relu(hand_net, hand_image):
    big = F.interpolate(hand_image, scale_factor=4, mode="nearest")  # (1, 3, 8, 8), same A per 4x4 block
    hand_net.conv.stride = (4, 4)  # layer map is 2x2 again, now upsampled to 8x8
    out = explain(hand_net, big, 0, "grad_cam")
    low = torch.tensor([[[0.0, 0.5], [0.0, 0.75]]])
    want = F.interpolate(low[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "fused_grad_cam"])
def test_batch_equals_images_one_by_one(model, images, method):
    targets = torch.tensor([0, 1, 1])
    batch = explain(model, images, targets, method)
    single = torch.cat([explain(model, images[i : i + 1], int(targets[i]), method) for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-6, rtol=1e-5)


def test_int_target_broadcasts_and_per_image_targets_are_used(model, images):
    both = explain(model, images, [0, 1, 0], "grad_cam")
    zero = explain(model, images, 0, "grad_cam")
    one = explain(model, images, torch.tensor([1, 1, 1]), "grad_cam")
    torch.testing.assert_close(both[0], zero[0])
    torch.testing.assert_close(both[1], one[1])
    torch.testing.assert_close(both[2], zero[2])


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp", "layer_cam", "score_cam", "saliency", "rise"])
def test_targets_matter(model, images, method):
    opts = {"n_masks": 32} if method == "rise" else {}
    a, b = explain(model, images, 0, method, **opts), explain(model, images, 1, method, **opts)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("bad", [2, -1, [0, 5, 1], torch.tensor([0, 1, 2])])
def test_target_out_of_range_raises(model, images, bad):
    with pytest.raises(ValueError, match="out of range"):
        explain(model, images, bad, "grad_cam")


@pytest.mark.parametrize("bad", [[0, 1], 0.5, [0.0, 1.0, 1.0], True])
def test_malformed_targets_raise(model, images, bad):
    with pytest.raises(ValueError):
        explain(model, images, bad, "grad_cam")


def test_unknown_layer_raises_and_lists_the_valid_ones(model, images):
    with pytest.raises(ValueError, match="block5_conv3") as err:
        explain(model, images, 0, "grad_cam", layer="fc7")
    assert "fc7" in str(err.value) and "block3_pool" in str(err.value)


def test_fused_grad_cam_on_single_tap_model_equals_grad_cam(make_ff, images):
    single = make_ff(seed=3, taps=("block5_conv3",)).eval()
    assert single.taps == ("block5_conv3",)
    torch.testing.assert_close(explain(single, images, 1, "fused_grad_cam"), explain(single, images, 1, "grad_cam"))


def test_fused_grad_cam_is_the_sum_of_grad_cam_on_each_tap(model, images):
    fused = explain(model, images, 1, "fused_grad_cam")
    parts = sum(explain(model, images, 1, "grad_cam", layer=t) for t in model.taps)
    torch.testing.assert_close(fused, parts, atol=1e-6, rtol=1e-5)


def test_fused_grad_cam_without_taps_uses_the_layer(hand_net, hand_image):
    torch.testing.assert_close(
        explain(hand_net, hand_image, 0, "fused_grad_cam"), explain(hand_net, hand_image, 0, "grad_cam")
    )


def test_grad_cam_works_with_a_frozen_model(make_ff, images):
    m = make_ff(seed=4).eval()
    ref = explain(m, images, 1, "grad_cam", layer="block4_pool")
    for p in m.parameters():
        p.requires_grad_(False)
    torch.testing.assert_close(explain(m, images, 1, "grad_cam", layer="block4_pool"), ref)
    assert all(not p.requires_grad for p in m.parameters())


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp", "layer_cam", "score_cam", "eigen_cam"])
def test_inplace_relu_after_the_layer_does_not_corrupt_the_kept_activation(hand_net, method):
    x = torch.randn((2, 3, 6, 6), generator=torch.Generator().manual_seed(5))
    ref = explain(hand_net, x, 1, method, layer="conv")  # pre-ReLU map: has negative entries
    hand_net.act.inplace = True
    torch.testing.assert_close(explain(hand_net, x, 1, method, layer="conv"), ref)
