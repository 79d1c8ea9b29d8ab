"""Baselines: maps that ignore the model. A leaderboard without them cannot tell a method that finds
lesions from one that is merely centred (``centre``) or follows image contrast (``edge``).
Each returns (B, H, W) at the input's resolution; none runs the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.attribution.base import cpu_generator, fraction, register_method


def _free(options: dict, channels: int) -> dict:
    return {"forward": 0, "backward": 0}


@register_method("random", family="baseline", uses_layer=False, cost=_free, stochastic=True, options={"seed": 0})
def random(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str | None, seed: int
) -> torch.Tensor:
    """Uniform noise in [0, 1), one independent map per image, from a private generator seeded by
    ``seed`` (drawn for the whole batch at once, so image i's map depends on its position)."""
    b, _, h, w = images.shape
    return torch.rand((b, h, w), generator=cpu_generator(seed)).to(images.device)


@register_method("centre", family="baseline", uses_layer=False, cost=_free, options={"sigma": 0.25})
def centre(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str | None, sigma: float
) -> torch.Tensor:
    """A centred Gaussian, exp(-((y - cy)^2 / 2 sy^2 + (x - cx)^2 / 2 sx^2)), with sy, sx = ``sigma`` x
    the image height, width (pixel centres at (i + 0.5)). The same map for every image."""
    fraction("sigma", sigma)
    b, _, h, w = images.shape
    y = (torch.arange(h, device=images.device, dtype=torch.float32) + 0.5) / h - 0.5
    x = (torch.arange(w, device=images.device, dtype=torch.float32) + 0.5) / w - 0.5
    g = torch.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return g.expand(b, h, w)


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


@register_method("edge", family="baseline", uses_layer=False, cost=_free)
def edge(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str | None) -> torch.Tensor:
    """Sobel gradient magnitude of the grey image (channel mean), with replicated borders."""
    grey = images.float().mean(dim=1, keepdim=True)
    kx = _SOBEL_X.to(grey.device)
    kernels = torch.stack([kx, kx.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    g = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    return torch.sqrt(g[:, 0] ** 2 + g[:, 1] ** 2)
