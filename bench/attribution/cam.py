"""CAM family: maps built from one layer's activations ``A`` (B, K, h, w).

Each function returns the *signed* layer-resolution map ``(B, h, w)``; the ReLU and the bilinear
upsampling are applied by :mod:`bench.attribution.postprocess`. ``g`` below is the gradient of the
target class's logit (pre-softmax, as in the Grad-CAM paper) with respect to ``A``.

=================  =============================================================  ===============
method             map before ReLU                                                passes per image
=================  =============================================================  ===============
grad_cam           sum_k mean_ij(g_k) A_k                                         1 fwd + 1 bwd
grad_cam_pp        sum_k (sum_ij alpha_kij relu(g_kij)) A_k, alpha of eq. 19      1 fwd + 1 bwd
xgrad_cam          sum_k (sum_ij A_kij g_kij / sum_ij A_kij) A_k                  1 fwd + 1 bwd
layer_cam          sum_k relu(g_k) * A_k  (element-wise)                          1 fwd + 1 bwd
score_cam          sum_k p_c(x * norm(up(A_k))) A_k                               1 + K' fwd
eigen_cam          A projected on its first right-singular vector (class-agnostic) 1 fwd
fused_grad_cam     grad_cam on each of ``model.taps``; parts summed after ReLU    1 fwd + 1 bwd
=================  =============================================================  ===============

The backward pass of the gradient-based CAMs runs only from the logits down to the explained layer
(the layer's output is made a leaf), so it costs less than a full backward pass to the input.
On the CPU the images are passed to the model in channels-last memory order (:func:`_fast_layout`):
oneDNN's convolutions then skip a layout conversion per layer (measured 1.2-1.5x faster forward and
backward passes of FF-VGG19 on a 2-core CPU), and eval-mode BatchNorms that follow a conv are folded
into it for the duration of the call (:func:`bench.models.fast.fast_model`, which also holds the conv
weights channels-last); values change only by float rounding.

Under ``torch.autocast`` (README, "Running on a GPU") the passes run in bfloat16/float16, and the
activations and gradients are widened to float32 before the maps are built from them (Grad-CAM++'s g^3
underflows in float16; the weighted channel sum is taken in float32, not as an autocast matmul).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.attribution.base import (
    DEFAULT_BATCH,
    activations,
    activations_and_grads,
    chunks,
    register_method,
)
from bench.models.fast import fast_model, to_channels_last


def _fast_layout(images: torch.Tensor) -> torch.Tensor:
    """``images`` in channels-last memory order on the CPU (same values, a copy; unchanged elsewhere)."""
    if images.device.type == "cpu" and images.ndim == 4:
        return to_channels_last(images)
    return images


def _one_pass(options: dict, channels: int) -> dict:
    return {"forward": 1, "backward": 1}


def _weighted_sum(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """``weights`` (B, K) and ``acts`` (B, K, h, w) -> ``sum_k weights_k acts_k`` (B, h, w)."""
    if acts.device.type in ("cuda", "cpu") and torch.is_autocast_enabled(acts.device.type):
        # autocast would run the einsum as a half-precision matmul: sum in the inputs' float32 instead
        return (weights[:, :, None, None] * acts).sum(dim=1)
    return torch.einsum("bk,bkhw->bhw", weights, acts)


def _f32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors widened to float32 if narrower (under autocast); float32 and float64 unchanged."""
    return tuple(t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors)


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den != 0``, else 0."""
    zero = den == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, torch.ones_like(den), den))


def grad_cam_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM before ReLU: channel weights = spatial mean of the gradient."""
    return _weighted_sum(grads.mean(dim=(2, 3)), acts)


@register_method("grad_cam", family="cam", uses_layer=True, cost=_one_pass)
def grad_cam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) on ``layer``: (B, h, w) before ReLU."""
    with fast_model(model):
        _, (a,), (g,) = activations_and_grads(model, _fast_layout(images), targets, [layer])
    a, g = _f32(a, g)
    return grad_cam_map(a, g)


@register_method("grad_cam_pp", family="cam", uses_layer=True, cost=_one_pass)
def grad_cam_pp(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential of the logit, so the second
    and third derivatives are powers of the first): alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), taken as
    0 where the denominator is 0; channel weight = sum_ij alpha_ij relu(g_ij)."""
    with fast_model(model):
        _, (a,), (g,) = activations_and_grads(model, _fast_layout(images), targets, [layer])
    a, g = _f32(a, g)
    g2 = g * g
    alpha = _safe_div(g2, 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g)
    weights = (alpha * F.relu(g)).sum(dim=(2, 3))
    return _weighted_sum(weights, a)


@register_method("xgrad_cam", family="cam", uses_layer=True, cost=_one_pass)
def xgrad_cam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str) -> torch.Tensor:
    """XGrad-CAM (Fu et al. 2020): channel weight = sum_ij A_ij g_ij / sum_ij A_ij (0 for a channel
    whose activations sum to 0)."""
    with fast_model(model):
        _, (a,), (g,) = activations_and_grads(model, _fast_layout(images), targets, [layer])
    a, g = _f32(a, g)
    weights = _safe_div((a * g).sum(dim=(2, 3)), a.sum(dim=(2, 3)))
    return _weighted_sum(weights, a)


@register_method("layer_cam", family="cam", uses_layer=True, cost=_one_pass)
def layer_cam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str) -> torch.Tensor:
    """LayerCAM (Jiang et al. 2021): sum_k relu(g_k) * A_k, element-wise weights."""
    with fast_model(model):
        _, (a,), (g,) = activations_and_grads(model, _fast_layout(images), targets, [layer])
    a, g = _f32(a, g)
    return (F.relu(g) * a).sum(dim=1)


@register_method(
    "fused_grad_cam", family="cam", uses_layer=True, cost=_one_pass
)
def fused_grad_cam(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str
) -> list[torch.Tensor]:
    """Grad-CAM on every layer in ``model.taps`` (FF-VGG19: block5_conv3, block4_pool, block3_pool),
    all from ONE forward and ONE backward pass; returns one (B, h_t, w_t) map per tap.

    Combination rule (applied in postprocess): ReLU each tap's map, upsample it bilinearly to the
    input size, and sum the taps with equal weight. Each tap's gradient is the *total* derivative of
    the logit (through the direct GAP path and through the deeper blocks), i.e. exactly Grad-CAM on
    that layer. A model without ``taps`` uses ``layer`` alone, which makes this equal to grad_cam;
    ``layer`` is ignored when the model has taps.
    """
    taps = tuple(getattr(model, "taps", ()) or ()) or (layer,)
    with fast_model(model):
        _, acts, grads = activations_and_grads(model, _fast_layout(images), targets, list(taps))
    return [grad_cam_map(*_f32(a, g)) for a, g in zip(acts, grads)]


def _score_cam_cost(options: dict, channels: int) -> dict:
    return {"forward": 1 + channels, "backward": 0}


@register_method(
    "score_cam", family="cam", uses_layer=True, cost=_score_cam_cost, options={"batch_size": DEFAULT_BATCH}
)
def score_cam(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str, batch_size: int
) -> torch.Tensor:
    """Score-CAM (Wang et al. 2020), as their official code: channel weight = softmax probability of
    the target class for the input multiplied by that channel's map, upsampled (bilinear) and min-max
    normalised to [0, 1]; map = sum_k weight_k A_k.

    All (image, channel) pairs are evaluated as one flat list in forward passes of ``batch_size``
    images, without gradients. A channel whose activation is constant over the image (e.g. all zero
    after a ReLU) has no defined normalised mask; it is skipped and gets weight 0. Its term in the
    sum would be ``weight * constant`` — zero for the common all-zero case — so skipping changes the
    map only for constant non-zero channels, where the mask is meaningless anyway.

    Work that cannot change a weight is not repeated: bilinear upsampling commutes with the affine
    min-max normalisation, so a channel's mask depends only on its *layer-resolution* map min-max
    normalised; channels of one image whose normalised maps are identical (common in sparse, trained
    ReLU layers, e.g. two channels active at the same single position) share one forward pass.
    Each mask is computed as norm(up(norm(A_k))) = norm(up(A_k)) (equal up to float rounding).
    Cost: 1 + K' forward passes per image, K' = distinct non-constant channel maps (<= K).
    """
    with fast_model(model):
        return _score_cam(model, _fast_layout(images), targets, layer, batch_size)


def _score_cam(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor, layer: str, batch_size: int
) -> torch.Tensor:
    h, w = x.shape[-2:]
    _, a = activations(model, x, layer)
    (a,) = _f32(a)
    flat = a.flatten(2)
    lo, hi = flat.amin(dim=2), flat.amax(dim=2)  # (B, K)
    bi, ki = torch.nonzero(hi > lo, as_tuple=True)  # the (image, channel) pairs with a defined mask
    weights = torch.zeros(a.shape[:2], dtype=a.dtype, device=a.device)
    if bi.numel() == 0:
        return _weighted_sum(weights, a)
    norm = (flat[bi, ki] - lo[bi, ki, None]) / (hi[bi, ki] - lo[bi, ki])[:, None]  # (P, h*w) in [0, 1]
    # one row per distinct (image, normalised map); the image index leads so images never share
    keyed = torch.cat([bi[:, None].to(norm.dtype), norm], dim=1)
    uniq, inverse = torch.unique(keyed, dim=0, return_inverse=True)
    ub = uniq[:, 0].long()
    umaps = uniq[:, 1:].reshape(-1, 1, *a.shape[2:])
    scores = torch.empty(uniq.shape[0], dtype=weights.dtype, device=a.device)
    with torch.no_grad():
        for sl in chunks(int(uniq.shape[0]), batch_size):
            ib = ub[sl]
            m = F.interpolate(umaps[sl], size=(h, w), mode="bilinear", align_corners=False)
            m_lo = m.amin(dim=(2, 3), keepdim=True)
            m_hi = m.amax(dim=(2, 3), keepdim=True)
            m = (m - m_lo) / (m_hi - m_lo).clamp_min(torch.finfo(m.dtype).tiny)
            probs = torch.softmax(model(_fast_layout(x[ib] * m)), dim=1)
            scores[sl] = probs.gather(1, targets[ib][:, None])[:, 0].to(weights.dtype)
    weights[bi, ki] = scores[inverse]
    return _weighted_sum(weights, a)


def _fwd_only(options: dict, channels: int) -> dict:
    return {"forward": 1, "backward": 0}


@register_method("eigen_cam", family="cam", uses_layer=True, cost=_fwd_only)
def eigen_cam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str) -> torch.Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020): the activations as a (h*w, K) matrix per image, projected on
    their first right-singular vector. As in the paper the matrix is not mean-centred (pytorch-grad-cam
    centres it). The singular vector's sign is arbitrary; it is chosen so that the map correlates
    positively with the channel sum of the activations. Class-agnostic: ``targets`` are not used."""
    with fast_model(model):
        _, a = activations(model, _fast_layout(images), layer)
    (a,) = _f32(a)
    b, k, h, w = a.shape
    m = a.flatten(2).transpose(1, 2).double()  # (B, hw, K); float64 for a stable SVD
    _, _, vh = torch.linalg.svd(m, full_matrices=False)
    proj = (m @ vh[:, 0, :, None])[..., 0]  # (B, hw)
    sign = torch.sign((proj * m.sum(dim=2)).sum(dim=1, keepdim=True))
    proj = proj * torch.where(sign == 0, torch.ones_like(sign), sign)
    return proj.reshape(b, h, w).to(a.dtype)
