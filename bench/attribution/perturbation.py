"""Perturbation family: the model is only run forwards (under ``torch.no_grad``), on perturbed copies
of the images, batched; the explained output is the target class's softmax probability.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from captum.attr import Occlusion
from torch import nn

from bench.attribution.base import DEFAULT_BATCH, chunks, cpu_generator, fraction, positive_int, register_method


def _window_px(size: int, frac: float) -> int:
    return max(1, int(round(frac * size)))


def _occlusion_cost(options: dict, channels: int) -> dict:
    # size-independent because window and stride are fractions of the side
    n = math.ceil(round((1 - options["window"]) / options["stride"], 6)) + 1
    return {"forward": 1 + n * n, "backward": 0}


@register_method(
    "occlusion",
    family="perturbation",
    uses_layer=False,
    cost=_occlusion_cost,
    options={"window": 0.125, "stride": 0.0625, "batch_size": DEFAULT_BATCH},
)
def occlusion(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    layer: str | None,
    window: float,
    stride: float,
    batch_size: int,
) -> torch.Tensor:
    """Occlusion (Zeiler & Fergus 2014) with captum: a black square slides over the image; each pixel
    gets the mean drop of the target probability over the windows covering it.

    ``window`` and ``stride`` are fractions of the image side (default 1/8 and 1/16: an 8 px window
    moved by 4 px at 64 px, 28 px by 14 px at 224 px), so the number of windows (15 x 15 = 225 at the
    defaults) does not change with resolution. ``batch_size`` bounds the images per forward pass.
    """
    fraction("window", window)
    fraction("stride", stride)
    positive_int("batch_size", batch_size)
    b, c, h, w = images.shape
    win = (_window_px(h, window), _window_px(w, window))
    step = (min(_window_px(h, stride), win[0]), min(_window_px(w, stride), win[1]))

    def prob(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(model(x), dim=1)

    return Occlusion(prob).attribute(
        images,
        sliding_window_shapes=(c, *win),
        strides=(c, *step),
        baselines=0.0,
        target=targets,
        perturbations_per_eval=max(1, batch_size // b),
    )


def _rise_cost(options: dict, channels: int) -> dict:
    return {"forward": options["n_masks"], "backward": 0}


def rise_masks(
    n: int, size: tuple[int, int], *, grid: int, p: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """RISE's random masks, as (grids, shifts, cell): ``grids`` (n, 1, grid, grid) binary with
    P(1) = ``p``, ``shifts`` (n, 2) random offsets in [0, cell). :func:`render_masks` turns a slice of
    them into (m, H, W) soft masks (upsampled bilinearly to (grid+1) cells, then cropped)."""
    h, w = size
    cell = (math.ceil(h / grid), math.ceil(w / grid))
    grids = (torch.rand((n, 1, grid, grid), generator=generator) < p).float()
    shifts = torch.stack(
        [
            torch.randint(0, cell[0], (n,), generator=generator),
            torch.randint(0, cell[1], (n,), generator=generator),
        ],
        dim=1,
    )
    return grids, shifts, cell


def render_masks(
    grids: torch.Tensor, shifts: torch.Tensor, cell: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """(m, 1, s, s) grids + (m, 2) shifts -> (m, H, W) masks in [0, 1]."""
    m, _, s, _ = grids.shape
    h, w = size
    up = F.interpolate(grids, size=((s + 1) * cell[0], (s + 1) * cell[1]), mode="bilinear", align_corners=False)
    rows = shifts[:, :1] + torch.arange(h, device=grids.device)  # (m, H)
    cols = shifts[:, 1:] + torch.arange(w, device=grids.device)  # (m, W)
    idx = torch.arange(m, device=grids.device)[:, None, None]
    return up[:, 0][idx, rows[:, :, None], cols[:, None, :]].clamp_(0, 1)  # clamp float rounding


@register_method(
    "rise",
    family="perturbation",
    uses_layer=False,
    cost=_rise_cost,
    stochastic=True,
    options={"n_masks": 1000, "grid": 8, "p": 0.5, "seed": 0, "batch_size": DEFAULT_BATCH},
)
def rise(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    layer: str | None,
    n_masks: int,
    grid: int,
    p: float,
    seed: int,
    batch_size: int,
) -> torch.Tensor:
    """RISE (Petsiuk et al. 2018): map = sum_i P_c(x * M_i) M_i / (n_masks * p), with ``n_masks`` random
    masks (a ``grid`` x ``grid`` binary grid, P(1) = ``p``, upsampled bilinearly and randomly shifted).

    The masks come from a private generator seeded by ``seed`` and are the same for every image (so a
    batch gives what its images give one by one). Images x masks are evaluated in forward passes of
    about ``batch_size`` images, without gradients. Returns (B, H, W).
    """
    positive_int("n_masks", n_masks)
    positive_int("grid", grid)
    fraction("p", p)
    positive_int("batch_size", batch_size)
    b, c, h, w = images.shape
    grids, shifts, cell = rise_masks(n_masks, (h, w), grid=grid, p=p, generator=cpu_generator(seed))
    grids, shifts = grids.to(images.device), shifts.to(images.device)
    sal = torch.zeros((b, h, w), dtype=torch.float32, device=images.device)
    per_pass = max(1, batch_size // b)
    with torch.no_grad():
        for sl in chunks(n_masks, per_pass):
            masks = render_masks(grids[sl], shifts[sl], cell, (h, w)).to(images.dtype)  # (m, H, W)
            m = masks.shape[0]
            x = (images[:, None] * masks[None, :, None]).reshape(b * m, c, h, w)
            probs = torch.softmax(model(x), dim=1).reshape(b, m, -1)
            pc = probs.gather(2, targets[:, None, None].expand(b, m, 1))[..., 0]  # (B, m)
            sal += torch.einsum("bm,mhw->bhw", pc.float(), masks.float())
    return sal / (n_masks * p)
