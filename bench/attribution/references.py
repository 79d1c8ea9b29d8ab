"""Reference maps: what a perfect map scores, at full resolution and at a layer's grid.

They are not explanations (they read the lesion mask, not the model) but the ceiling every metric is
read against: ``oracle`` is the mask itself, the best any map can do; ``oracle_grid`` is the mask
average-pooled to the spatial size of the explained layer and brought back to the input size through
the same post-processing as the CAM maps (:func:`bench.attribution.postprocess.upsample`, bilinear), the
best any map computed at that layer can do. On a 4 x 4 grid a lesion of 2 % of the image cannot be
pointed at by any CAM method, and ``oracle_grid`` shows it. The sweep scores them like methods and the
leaderboards mark them as references (never ranked).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.attribution.base import activations, resolve_layer
from bench.attribution.postprocess import upsample

REFERENCES = {
    "oracle": "the lesion mask itself: the best any map can score",
    "oracle_grid": "the mask average-pooled to the explained layer's grid, upsampled as CAM maps are: "
                   "the best any map at that layer's resolution can score",
}
# ``oracle_grid@<layer>``: the grid oracle at another layer than the explained one (e.g. the paper's
# block5_conv3 beside a suite that explains at block3_pool)


def split_reference(name: str) -> tuple[str, str | None]:
    """``"oracle_grid@block5_conv3"`` -> ``("oracle_grid", "block5_conv3")``; ``"oracle"`` -> ``("oracle", None)``."""
    base, _, layer = name.partition("@")
    return base, (layer or None)


def is_reference(name: str) -> bool:
    """Whether ``name`` is a reference map (``oracle``, ``oracle_grid`` or ``oracle_grid@<layer>``)."""
    base, layer = split_reference(name)
    return base in REFERENCES and (layer is None or base == "oracle_grid")


def oracle(masks: torch.Tensor) -> torch.Tensor:
    """``masks`` (B, H, W) bool -> (B, H, W) float32: 1 inside the lesion, 0 outside (all 0: no lesion,
    a constant map that the metrics count as degenerate)."""
    return _checked(masks).float()


def grid_oracle(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``masks`` (B, H, W) bool -> (B, H, W) float32: each cell of a ``grid`` = (h, w) partition holds the
    lesion's share of that cell (``adaptive_avg_pool2d``, exact averages when H, W are multiples of h, w),
    upsampled bilinearly (``align_corners=False``) to (H, W) as every CAM map is."""
    masks = _checked(masks)
    h, w = int(grid[0]), int(grid[1])
    if h < 1 or w < 1:
        raise ValueError(f"grid must be two positive sizes, got {grid}")
    pooled = F.adaptive_avg_pool2d(masks.float()[:, None], (h, w))[:, 0]
    return upsample(pooled, masks.shape[-2:]).contiguous()


def layer_grid(model: nn.Module, images: torch.Tensor, layer: str | None = None) -> tuple[int, int]:
    """The spatial size ``(h, w)`` of ``layer``'s output (default ``model.default_cam_layer``) for inputs
    shaped like ``images`` (B, C, H, W); one forward pass of the first image, no gradients."""
    name = resolve_layer(model, layer, True)
    was_training = model.training
    model.eval()
    try:
        _, act = activations(model, images[:1], name)
    finally:
        model.train(was_training)
    return int(act.shape[-2]), int(act.shape[-1])


def reference_maps(name: str, masks: torch.Tensor, *, model: nn.Module | None = None,
                   images: torch.Tensor | None = None, layer: str | None = None) -> torch.Tensor:
    """The reference ``name`` for ``masks`` (B, H, W): ``oracle`` needs nothing else; ``oracle_grid`` needs the
    ``model`` and ``images`` whose ``layer`` grid it takes (``oracle_grid@L``: layer L whatever ``layer`` says).
    Returns (B, H, W) float32 on the masks' device."""
    if not is_reference(name):
        raise ValueError(f"unknown reference {name!r}; valid: {', '.join(REFERENCES)}, oracle_grid@<layer>")
    base, own_layer = split_reference(name)
    if base == "oracle":
        return oracle(masks)
    if model is None or images is None:
        raise ValueError(f"{name} needs the model and the images, to find the layer's grid")
    return grid_oracle(masks, layer_grid(model, images, own_layer or layer))


def _checked(masks: torch.Tensor) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        raise ValueError(f"masks must be a (B, H, W) tensor, got {getattr(masks, 'shape', type(masks))}")
    return masks.bool()


__all__ = ["REFERENCES", "grid_oracle", "is_reference", "layer_grid", "oracle", "reference_maps", "split_reference"]
