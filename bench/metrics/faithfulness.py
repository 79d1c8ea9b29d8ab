"""Faithfulness: does removing (inserting) the pixels a map ranks highest change the model's output?

Deletion and insertion curves of RISE (Petsiuk et al., BMVC 2018), batched across images and steps.
Source of the defaults: ../shared/REFERENCE.md section 3 (zeros substrate for deletion, Gaussian blur
with kernel 11 and sigma 5 as the insertion start, trapezoid AUC over the fraction of pixels).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics._maps import degenerate_maps
from bench.models.fast import fast_model, to_channels_last

__all__ = [
    "deletion_insertion", "deletion_auc", "insertion_auc", "gaussian_blur", "pixels_per_step", "pixel_ranks",
    "model_device", "checked_inputs",
]


def gaussian_blur(images: torch.Tensor, kernel: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Blur ``(B, C, H, W)`` images with a normalised ``kernel x kernel`` Gaussian of std ``sigma``.

    The kernel is the outer product of ``g(x) = exp(-x^2 / (2 sigma^2))``, ``x = -(k-1)/2 .. (k-1)/2``,
    normalised to sum 1, applied separably per channel with reflect padding (as torchvision's
    ``gaussian_blur``; replicate padding where an image is too small to reflect). RISE pads with
    zeros instead, which darkens the borders of the start image.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"blur_kernel must be a positive odd integer, got {kernel}")
    if not sigma > 0:
        raise ValueError(f"blur_sigma must be > 0, got {sigma}")
    if kernel == 1:
        return images.clone()
    x = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2
    g = torch.exp(-(x**2) / (2 * float(sigma) ** 2))
    g = (g / g.sum()).to(images.dtype).to(images.device)
    B, C, H, W = images.shape
    pad = kernel // 2
    mode = "reflect" if min(H, W) > pad else "replicate"
    y = F.pad(images.reshape(B * C, 1, H, W), (pad, pad, pad, pad), mode=mode)
    y = F.conv2d(y, g.view(1, 1, 1, kernel))
    y = F.conv2d(y, g.view(1, 1, kernel, 1))
    return y.reshape(B, C, H, W)


def pixels_per_step(n_pixels: int, steps: int) -> list[int]:
    """``[round(k * n_pixels / steps) for k in 0..steps]`` in exact arithmetic (Python's round: half to even)."""
    return [round(Fraction(k * n_pixels, steps)) for k in range(steps + 1)]


def model_device(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in model.parameters():
        return t.device, t.dtype
    for t in model.buffers():
        return t.device, (t.dtype if t.is_floating_point() else torch.float32)
    return torch.device("cpu"), torch.float32


def checked_inputs(images, saliency, targets, steps, batch_size, substrate) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate :func:`deletion_insertion`'s arguments (``ValueError`` naming the culprit).

    Returns the saliency as a detached ``(B, h, w)`` tensor (on its own device, its own dtype) and the
    targets as a ``(B,)`` long tensor on the CPU (one int is expanded to every image).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    B, _, H, W = images.shape
    sal = saliency if isinstance(saliency, torch.Tensor) else torch.as_tensor(np.asarray(saliency))
    sal = sal.detach()
    if sal.ndim != 3 or sal.shape[0] != B or sal.shape[1] > H or sal.shape[2] > W or min(sal.shape[1:]) == 0:
        raise ValueError(
            f"saliency must be (B, h, w) with the images' B and h <= H, w <= W; "
            f"got saliency shape {tuple(sal.shape)}, images shape {tuple(images.shape)}"
        )
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {int(steps)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tg = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if tg.numel() == 1:
        tg = tg.expand(B)
    if tg.numel() != B:
        raise ValueError(f"targets must be one int or (B,) = ({B},) class indices, got shape {tuple(tg.shape)}")
    if isinstance(substrate, str) and substrate not in ("zeros", "blur"):
        raise ValueError(f"substrate must be 'zeros', 'blur', a number or a tensor, got {substrate!r}")
    return sal, tg


def pixel_ranks(s: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Each pixel's rank by saliency, 0 = most salient: ``s`` ``(n, h, w)`` float maps -> ``(n, 1, H, W)`` int32.

    The maps are upsampled bilinearly (align_corners=False) to ``(H, W)`` if needed; ties are ranked
    in row-major order (stable sort) and NaN ranks last.
    """
    n = s.shape[0]
    if tuple(s.shape[1:]) != (H, W):
        s = F.interpolate(s[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
    s = torch.nan_to_num(s.reshape(n, H * W), nan=-torch.inf)
    order = torch.sort(s, dim=1, descending=True, stable=True).indices
    rank = torch.empty(order.shape, dtype=torch.int32, device=s.device)
    rank.scatter_(1, order, torch.arange(H * W, dtype=torch.int32, device=s.device).expand(n, -1))
    return rank.view(n, 1, H, W)


def _curve_endpoints(
    x: torch.Tensor, substrate, images_slice: slice, n_images: int, blur_kernel: int, blur_sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the changed pixels become and what the other pixels are, per image and curve.

    ``x``: ``(n, C, H, W)`` images (images ``images_slice`` of the ``n_images`` given). Returns
    ``(changed, kept)``, each ``(2n, C, H, W)`` in the order (image, curve), curve 0 = deletion
    (changed -> substrate, kept = image) and 1 = insertion (changed -> image, kept = blurred image);
    on the CPU in channels-last memory order, the layout the model is run in, so that the perturbed
    batches are built in it directly.
    """
    C, H, W = x.shape[1:]
    blurred = gaussian_blur(x, blur_kernel, blur_sigma)
    if isinstance(substrate, str):
        sub = torch.zeros_like(x) if substrate == "zeros" else blurred
    else:
        sub = torch.as_tensor(substrate, dtype=x.dtype, device=x.device)
        if sub.ndim == 4 and sub.shape[0] == n_images:  # one substrate per image
            sub = sub[images_slice]
        sub = sub.expand_as(x)
    changed = torch.stack([sub, x], dim=1).reshape(-1, C, H, W)
    kept = torch.stack([x, blurred], dim=1).reshape(-1, C, H, W)
    if x.device.type == "cpu":
        changed, kept = to_channels_last(changed), to_channels_last(kept)
    return changed, kept


def _shared_points(steps: int, substrate, device: torch.device) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """Points whose input equals another point's input are not recomputed.

    An image has ``2 * (steps + 1)`` points, position ``curve * (steps + 1) + step``. Returns the
    ``(copy, source)`` position pairs and the positions to compute, ``(n_computed,)`` int64.
    Insertion's last = the image = deletion's first; with ``substrate="blur"`` also insertion's
    first = all blurred = deletion's last.
    """
    S1 = steps + 1
    twins = [(S1 + steps, 0)]
    if isinstance(substrate, str) and substrate == "blur":
        twins.append((S1, steps))  # insertion's first = all blurred = deletion's last
    per_image = torch.tensor([i for i in range(2 * S1) if i not in {c for c, _ in twins}], device=device)
    return twins, per_image


def _score_group(
    model: nn.Module,
    changed: torch.Tensor,
    kept: torch.Tensor,
    rank: torch.Tensor,
    n_k: torch.Tensor,
    targets: torch.Tensor,
    probs: torch.Tensor,
    points: tuple[list[tuple[int, int]], torch.Tensor],
    batch_size: int,
    layout: torch.memory_format,
) -> None:
    """Fill ``probs`` ``(n, 2, S1)`` float64, the target's softmax probability at every point of a group
    of ``n`` images: ``changed``/``kept`` ``(2n, C, H, W)`` and ``rank`` ``(n, 1, H, W)`` as
    :func:`_curve_endpoints` and :func:`pixel_ranks` give them, ``n_k`` ``(S1,)`` pixels changed per
    step, ``targets`` ``(n,)``, ``points`` as :func:`_shared_points` gives them.

    The group's points are evaluated as one flat list in whole batches of ``batch_size``, so batches mix
    images, curves and steps and are always full (but the last); ``layout`` is the memory format the
    model is given its inputs in.
    """
    twins, per_image = points
    n, _, S1 = probs.shape
    flat = probs.view(-1)
    todo = (torch.arange(n, device=probs.device)[:, None] * (2 * S1) + per_image).reshape(-1)
    for lo in range(0, todo.numel(), batch_size):
        j = todo[lo : lo + batch_size]
        src, k = j // S1, j % S1  # src = 2 * image + curve, within the group
        img = src // 2
        inp = torch.where(rank[img] < n_k[k].view(-1, 1, 1, 1), changed[src], kept[src])
        p = torch.softmax(model(inp.contiguous(memory_format=layout)).float(), dim=1)
        flat[j] = p.gather(1, targets[img].view(-1, 1))[:, 0].double()
    both = probs.view(n, 2 * S1)
    for copy, source in twins:
        both[:, copy] = both[:, source]


# the worst value of each area (``range`` (0, 1); deletion: lower is better, insertion: higher is better)
WORST = {"deletion": 1.0, "insertion": 0.0}


def _curves_and_areas(probs: torch.Tensor, steps: int, degenerate: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`deletion_insertion`'s result from ``probs`` ``(B, 2, steps + 1)`` (NaN for degenerate maps) and the
    ``degenerate`` flags: the curves as float64 numpy arrays, and their trapezoid areas over ``k / steps`` in
    [0, 1], the worst value (:data:`WORST`) for degenerate maps."""
    B, _, S1 = probs.shape
    curves = np.ascontiguousarray(probs.permute(1, 0, 2).cpu().numpy())  # (2, B, S1)
    auc = (curves[..., :-1] + curves[..., 1:]).sum(axis=-1) / (2 * steps)
    auc[0, degenerate] = WORST["deletion"]
    auc[1, degenerate] = WORST["insertion"]
    return {
        "deletion": auc[0],
        "insertion": auc[1],
        "deletion_curve": curves[0],
        "insertion_curve": curves[1],
        "fraction": np.arange(S1) / steps,
        "degenerate": np.asarray(degenerate, dtype=bool).reshape(B),
    }


@torch.no_grad()
def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    saliency,
    targets,
    *,
    steps: int = 32,
    substrate: str | float | torch.Tensor = "zeros",
    blur_sigma: float = 5.0,
    blur_kernel: int = 11,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Deletion and insertion curves and their areas (RISE).

    Definition: the pixels are ranked by saliency (the map upsampled bilinearly, align_corners=False,
    to the image size), most salient first, ties in row-major order (a stable sort; NaN ranks last).
    At step ``k = 0..steps`` the first ``n_k = round(k * H * W / steps)`` pixels (see
    :func:`pixels_per_step`) are changed in all channels. Deletion replaces them in the image with
    the substrate; insertion starts from the Gaussian-blurred image (:func:`gaussian_blur`,
    ``blur_kernel``, ``blur_sigma``) and restores them from the image. The score at each step is the
    softmax probability of the target class; the area under each curve uses the trapezoid rule over
    ``k / steps`` in [0, 1].

    Direction: deletion lower is better (the probability should collapse fast), insertion higher is
    better. Both in [0, 1].

    Degenerate maps (constant, all zero included, or holding any NaN or infinity; see
    ``bench.metrics.degenerate_maps``, judged on the map as given) rank no pixel above another: they score
    the worst values, deletion 1.0 and insertion 0.0, are flagged in ``degenerate``, and their curves are
    not computed (NaN), so a mean curve over the finite rows leaves them out.

    Args:
        model: classifier returning logits ``(N, num_classes)``; run in eval mode under
            ``torch.no_grad`` on its own device; its training flag is restored afterwards and its
            weights are as before (on the CPU, during the call, they are held channels-last and eval-mode
            BatchNorms following a conv are folded into it; see ``bench.models.fast.fast_model``).
        images: ``(B, C, H, W)`` float, in the model's input space (the zeros substrate is zero there).
        saliency: ``(B, h, w)`` array or tensor with ``h <= H``, ``w <= W``.
        targets: int (one class for all) or ``(B,)`` class indices.
        steps: number of steps (>= 1); the curves have ``steps + 1`` points.
        substrate: ``"zeros"``, ``"blur"`` (the blurred image), a number (constant value) or a tensor
            broadcastable to ``(B, C, H, W)``.
        batch_size: perturbed images per forward pass; batches mix images, curves and steps, and
            images are prepared batch_size at a time (memory stays bounded for any B).

    Returns:
        dict of float64 numpy arrays: ``deletion``, ``insertion`` (B,); ``deletion_curve``,
        ``insertion_curve`` (B, steps + 1); ``fraction`` (steps + 1,) = ``k / steps``; and
        ``degenerate`` (B,) bool: constant or non-finite maps (areas 1.0 and 0.0, curves NaN).

    Cost: ``2 * steps + 1`` forward passes per image with a non-degenerate map (``2 * steps`` with
    ``substrate="blur"``; none for a degenerate map): the unperturbed image (deletion's first and
    insertion's last point) is scored once, and so is the all-blurred image when it is both deletion's
    last and insertion's first point. On the CPU the
    perturbed images go to the model in channels-last memory order, with BatchNorms folded into the
    convs (faster passes; values change only by float rounding).
    """
    sal, tg = checked_inputs(images, saliency, targets, steps, batch_size, substrate)
    B, _, H, W = images.shape
    steps, bs = int(steps), int(batch_size)
    device, dtype = model_device(model)
    degenerate = degenerate_maps(sal.cpu()) if B else np.zeros(0, dtype=bool)
    keep = np.flatnonzero(~degenerate)  # the maps that rank the pixels: only their curves are computed
    args = (model, images, sal, tg, keep, steps, substrate, blur_sigma, blur_kernel, bs, device, dtype)
    if keep.size == B:
        probs = _probabilities(*args)
    else:
        probs = torch.full((B, 2, steps + 1), torch.nan, dtype=torch.float64, device=device)
        if keep.size:
            probs[torch.as_tensor(keep, device=device)] = _probabilities(*args)
    return _curves_and_areas(probs, steps, degenerate)


def _probabilities(model, images, sal, tg, keep: np.ndarray, steps: int, substrate, blur_sigma: float,
                   blur_kernel: int, bs: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The target's probability at every point of both curves, ``(K, 2, steps + 1)`` float64, for the images
    ``keep`` (K indices) of :func:`deletion_insertion`'s checked inputs."""
    B, _, H, W = images.shape
    x_all, s_all, tg = images.detach(), sal, tg
    if keep.size < B:  # leave the degenerate maps' images out (a per-image substrate with them)
        rows = torch.as_tensor(keep)
        x_all, s_all, tg = x_all[rows.to(x_all.device)], s_all[rows.to(s_all.device)], tg[rows]
        if not isinstance(substrate, (str, int, float)):
            sub = torch.as_tensor(substrate)
            if sub.ndim == 4 and sub.shape[0] == B:
                substrate = sub[rows.to(sub.device)]
    K = x_all.shape[0]
    tg = tg.to(device)
    s_all = s_all.to(dtype=torch.float64 if s_all.dtype == torch.float64 else torch.float32)
    n_k = torch.tensor(pixels_per_step(H * W, steps), device=device)
    probs = torch.empty(K, 2, steps + 1, dtype=torch.float64, device=device)
    layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    points = _shared_points(steps, substrate, device)
    was_training = model.training
    model.eval()
    try:  # images in groups of batch_size (memory stays bounded): their ranks, endpoints, then every point
        with fast_model(model):
            for g_lo in range(0, K, bs):
                g = slice(g_lo, min(K, g_lo + bs))
                x = x_all[g].to(device=device, dtype=dtype)
                rank = pixel_ranks(s_all[g].to(device), H, W)
                changed, kept = _curve_endpoints(x, substrate, g, K, blur_kernel, blur_sigma)
                _score_group(model, changed, kept, rank, n_k, tg[g], probs[g], points, bs, layout)
    finally:
        model.train(was_training)
    return probs


def deletion_auc(model, images, saliency, targets, **options) -> np.ndarray:
    """Deletion AUC (B,), lower is better; see :func:`deletion_insertion` (computes both curves)."""
    return deletion_insertion(model, images, saliency, targets, **options)["deletion"]


def insertion_auc(model, images, saliency, targets, **options) -> np.ndarray:
    """Insertion AUC (B,), higher is better; see :func:`deletion_insertion` (computes both curves)."""
    return deletion_insertion(model, images, saliency, targets, **options)["insertion"]
