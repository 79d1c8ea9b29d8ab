"""Training-time augmentation: random flips and small rotations, the mask following the image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor | None, generator: torch.Generator, *, max_degrees: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random horizontal flips and rotations of up to ``max_degrees``, the mask following the image.

    ``images`` (B, C, H, W) float; ``masks`` (B, H, W) bool or None. Images are resampled bilinearly,
    masks with nearest; pixels rotated in from outside are 0 (black, and outside the mask).
    """
    b = images.shape[0]
    flip = torch.rand(b, generator=generator) < 0.5
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(max_degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx = torch.where(flip, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if masks is None:
        return out, None
    m = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out, m[:, 0] > 0.5


__all__ = ["augment_batch"]
