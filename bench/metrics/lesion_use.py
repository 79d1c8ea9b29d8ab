"""Model-verified ground truth: does the model's prediction depend on the lesion?

A map that misses the lesion is only wrong if the model used the lesion. :func:`lesion_drop` measures that per
image, as FunnyBirds (Hesse et al., ICCV 2023) and BAM (Yang & Kim 2019) take their ground truth from what the
model does when a part is removed: the drop of the target class's probability when the lesion is removed,

    lesion_drop = p(target | image) - p(target | image without its lesion)

in [-1, 1]; near 0 the model does not use the lesion for this class (a map that looks elsewhere may be right),
large the prediction depends on it. The images without their lesion come from
:func:`bench.data.lesion_free.remove_lesions` (phantoms: the same image redrawn without its lesion; real data:
inpainted inside the dilated mask, an estimate). An image counts as *verified* (its prediction depends on the
lesion) when ``lesion_drop >= threshold`` (:data:`VERIFIED_DROP`, a suite's ``report.verified_drop``).
"""

from __future__ import annotations

import numpy as np
import torch

from bench.models.predict import predict_proba

VERIFIED_DROP = 0.25  # default threshold: removing the lesion takes at least this much of the target's probability


def lesion_drop(model, images: torch.Tensor, removed: torch.Tensor, targets, *, batch_size: int = 128,
                device=None) -> dict[str, np.ndarray]:
    """The drop of the target class's probability when the lesion is removed, per image.

    Args:
        model: a classifier (put in eval mode); ``device``: None = its parameters' device.
        images: (B, 3, H, W) the images; ``removed``: (B, 3, H, W) the same images without their lesion.
        targets: (B,) class indices.

    Returns:
        ``{"p_image": (B,), "p_removed": (B,), "lesion_drop": (B,)}`` float64: softmax probabilities of the target
        on each image and on its lesion-free copy, and their difference (in [-1, 1]; higher = the prediction
        depends more on the lesion). Non-finite probabilities give NaN.

    Raises:
        ValueError: shapes that do not match, or a target out of range.
    """
    targets = np.asarray(torch.as_tensor(targets).cpu().numpy(), dtype=np.int64).reshape(-1)
    if tuple(images.shape) != tuple(removed.shape) or images.ndim != 4 or len(targets) != images.shape[0]:
        raise ValueError(f"lesion_drop: images {tuple(images.shape)}, removed {tuple(removed.shape)} and targets "
                         f"({len(targets)},) must be (B, 3, H, W), (B, 3, H, W) and (B,)")
    if len(targets) == 0:
        empty = np.zeros(0)
        return {"p_image": empty, "p_removed": empty.copy(), "lesion_drop": empty.copy()}
    both = predict_proba(model, torch.cat([torch.as_tensor(images), torch.as_tensor(removed)]),
                         batch_size=batch_size, device=device)
    n_classes = both.shape[1]
    if targets.min() < 0 or targets.max() >= n_classes:
        raise ValueError(f"lesion_drop: targets must be class indices in [0, {n_classes}), got {targets.tolist()}")
    rows = np.arange(len(targets))
    p_image, p_removed = both[: len(targets)][rows, targets], both[len(targets):][rows, targets]
    drop = np.where(np.isfinite(p_image) & np.isfinite(p_removed), p_image - p_removed, np.nan)
    return {"p_image": p_image, "p_removed": p_removed, "lesion_drop": drop}


def lesion_used(drop, threshold: float = VERIFIED_DROP) -> np.ndarray:
    """``drop >= threshold`` as bool (B,) (NaN drops: False): the images whose prediction depends on the lesion."""
    d = np.asarray(drop, dtype=np.float64)
    return np.isfinite(d) & (d >= float(threshold))


__all__ = ["VERIFIED_DROP", "lesion_drop", "lesion_used"]
