"""A Fig. 1-style grid of explanation maps: one row per image; columns = the image, the image with the
reference-mask outline, then each method's map overlaid on the image.

Display only: each map is min-max scaled *for colour* (per image and method; a constant map is
drawn as zeros). The maps themselves are never normalised anywhere else. Rendering uses
matplotlib's Agg canvas directly (no pyplot state, safe in worker processes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().float().numpy()
    return np.asarray(a)


def _display(image: np.ndarray) -> np.ndarray:
    """(3, H, W) or (1, H, W) -> (H, W, 3) in [0, 1]."""
    img = image.transpose(1, 2, 0)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    lo, hi = float(img.min()), float(img.max())
    if lo < 0 or hi > 1:  # not in [0, 1]: stretch for display
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return np.clip(img, 0, 1)


def _scaled(m: np.ndarray) -> np.ndarray:
    m = np.nan_to_num(m.astype(np.float64))
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def render_gallery(
    images,
    masks,
    maps: Mapping[str, object],
    *,
    path: str | Path,
    row_labels: Sequence[str] | None = None,
    column_titles: Mapping[str, str] | None = None,
    title: str = "",
    cmap: str = "jet",
    alpha: float = 0.5,
    cell_inches: float = 1.6,
    dpi: int = 100,
) -> Path:
    """Draw the grid and save it as a PNG.

    Args:
        images: ``(B, 3, H, W)`` (or ``(B, 1, H, W)``) in [0, 1], tensor or array.
        masks: ``(B, H, W)`` bool reference masks (an all-False mask draws no outline), or ``None``.
        maps: method name -> ``(B, H, W)`` map (tensor or array), drawn in this order.
        path: output file (``.png``); parent folders are created.
        row_labels: one label per image (e.g. ``"id - class - p=0.93"``), drawn at the row's left.
        column_titles: optional display names for the methods (default: the names).
        title: figure title.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    imgs = _np(images)
    if imgs.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {imgs.shape}")
    b, _, h, w = imgs.shape
    msk = None if masks is None else _np(masks).astype(bool)
    if msk is not None and msk.shape != (b, h, w):
        raise ValueError(f"masks must be (B, H, W) = {(b, h, w)}, got {msk.shape}")
    arrays = {name: _np(m) for name, m in maps.items()}
    for name, m in arrays.items():
        if m.shape != (b, h, w):
            raise ValueError(f"map {name!r} must be (B, H, W) = {(b, h, w)}, got {m.shape}")
    if row_labels is not None and len(row_labels) != b:
        raise ValueError(f"got {len(row_labels)} row labels for {b} images")
    names = list(arrays)
    titles = ["image", "reference mask"] + [(column_titles or {}).get(n, n) for n in names]
    ncols = len(titles)

    fig = Figure(figsize=(cell_inches * ncols, cell_inches * b + (0.4 if title else 0.1)), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(b, ncols, squeeze=False))
    for i in range(b):
        img = _display(imgs[i])
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.imshow(img, interpolation="nearest")
            if j == 1 and msk is not None and msk[i].any():
                ax.contour(msk[i].astype(float), levels=[0.5], colors="lime", linewidths=1.0)
            if j >= 2:
                m = arrays[names[j - 2]][i]
                ax.imshow(_scaled(m), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
                if not np.isfinite(m).all() or float(np.nanmax(m)) == float(np.nanmin(m)):
                    ax.text(0.03, 0.03, "constant", transform=ax.transAxes, fontsize=6, color="white")
                if msk is not None and msk[i].any():
                    ax.contour(msk[i].astype(float), levels=[0.5], colors="white", linewidths=0.6)
            if i == 0:
                ax.set_title(titles[j], fontsize=8)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
