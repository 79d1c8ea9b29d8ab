"""Class probabilities of a model on a stack of images: the one predict helper of every stage."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def predict_proba(model: nn.Module, images: torch.Tensor, *, batch_size: int = 128, device=None) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` float64 of ``images`` ``(N, 3, H, W)``; model left in eval mode.

    The softmax is taken in the model's dtype (float32) and then widened to float64. ``device``:
    None = the device of the model's first parameter; batches of ``batch_size`` are moved there. ``images``
    may also be an image set's images read on demand (anything with ``batch(rows, device)``, e.g.
    :class:`bench.data.arrays.ImageArray`): each batch is then read and made float on ``device``.
    """
    device = device or next(model.parameters()).device
    model.eval()
    read = getattr(images, "batch", None)

    def batch(i: int) -> torch.Tensor:
        rows = slice(i, i + batch_size)
        return read(rows, device) if callable(read) else images[rows].to(device)

    out = [F.softmax(model(batch(i)), dim=1).double().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_classes))


__all__ = ["predict_proba"]
