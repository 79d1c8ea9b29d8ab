"""The composite control: does a trained classifier's prediction follow the lesion or the background?

For a pair (A, B) of images of different classes, the composite takes the pixels inside the dilated
union of both lesion masks from A (the lesion donor) and every other pixel from B (the background
donor), so B's own lesion is replaced by A's tissue at that place and A's lesion is pasted into B.
If the class evidence lies only inside the masks, the composite is classified as A's class.
(Blanking the mask region instead is not a fair control: the hole's size and place can carry the
class.) A pair where neither image has a mask is skipped (the composite would be B itself).

:func:`two_lesion_composites` builds the other kind, for class sensitivity: B keeps its own lesion and A's lesion
is pasted beside it (moved by :func:`lesion_shift` as little as keeps the two apart), so the image carries one
lesion of each class, each with its own mask.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench.device import resolve_device
from bench.models.predict import predict_proba

PAIRINGS = ("random", "nearest")


def dilate_masks(masks: torch.Tensor, pixels: int) -> torch.Tensor:
    """Square (Chebyshev) dilation of bool masks (N, H, W) by ``pixels`` px."""
    if pixels <= 0:
        return masks.clone()
    k = 2 * pixels + 1
    return F.max_pool2d(masks.float()[:, None], k, stride=1, padding=pixels)[:, 0] > 0


def make_composites(imageset, a_idx, b_idx, *, dilate: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Composites (P, 3, H, W) of lesion donors ``a_idx`` into backgrounds ``b_idx``, and the regions (P, H, W)."""
    a = torch.as_tensor(a_idx, dtype=torch.long)
    b = torch.as_tensor(b_idx, dtype=torch.long)
    region = dilate_masks(imageset.masks[a] | imageset.masks[b], dilate)
    comp = torch.where(region[:, None], imageset.images[a], imageset.images[b])
    return comp, region


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (..., H, W) moved by ``(dy, dx)`` px (down, right); what moves out of the frame is lost, zeros come in."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def lesion_shift(mask_a: torch.Tensor, mask_b: torch.Tensor, *, dilate: int = 2) -> tuple[int, int] | None:
    """The smallest move ``(dy, dx)`` (px, by Euclidean length; the first in row-major order among equals) that puts
    lesion ``mask_a`` (H, W) wholly inside the frame with its ``dilate``-px dilation clear of ``mask_b``'s: the two
    lesions then lie at least ``2 * dilate + 1`` px apart. ``(0, 0)`` when they already do; None when no move
    does (or a mask is empty)."""
    from scipy.signal import fftconvolve

    a, b = mask_a.bool(), mask_b.bool()
    if not a.any() or not b.any():
        return None
    h, w = a.shape
    da, db = dilate_masks(a[None], dilate)[0].numpy(), dilate_masks(b[None], dilate)[0].numpy()
    # overlap[dy + h - 1, dx + w - 1] = number of pixels of da moved by (dy, dx) on db (a cross-correlation)
    overlap = fftconvolve(db.astype(np.float64), da[::-1, ::-1].astype(np.float64), mode="full") > 0.5
    rows, cols = np.flatnonzero(a.any(1).numpy()), np.flatnonzero(a.any(0).numpy())
    dy = np.arange(-rows[0], h - rows[-1])  # moves that keep the lesion itself in the frame
    dx = np.arange(-cols[0], w - cols[-1])
    free = ~overlap[np.ix_(dy + h - 1, dx + w - 1)]
    if not free.any():
        return None
    cost = np.where(free, dy[:, None] ** 2 + dx[None, :] ** 2, np.iinfo(np.int64).max)
    i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return int(dy[i]), int(dx[j])


def two_lesion_composites(imageset, a_idx, b_idx, *, dilate: int = 2) -> dict:
    """Composites that carry two lesions: image B with its own lesion, and lesion A pasted into it.

    For each pair, A's pixels inside A's mask dilated by ``dilate`` px (as :func:`make_composites` takes them) are
    moved by :func:`lesion_shift` (the smallest move that keeps lesion A in the frame and clear of B's dilated
    lesion; most pairs of small lesions need none, large central ones such as a leukocyte or a skin lesion are set
    side by side) and pasted over B; B's lesion and everything else is B's.

    Returns a dict: ``images`` (P, 3, H, W), ``mask_a`` (P, H, W) bool (lesion A where it was pasted), ``mask_b``
    (P, H, W) bool (B's lesion), ``shift`` (P, 2) int (the move of lesion A), ``placed`` (P,) bool: False for a
    pair no move could separate (or without two masks): its image is B and its ``mask_a`` empty.
    """
    a = torch.as_tensor(a_idx, dtype=torch.long)
    b = torch.as_tensor(b_idx, dtype=torch.long)
    images_b = imageset.images[b].clone()
    mask_b = imageset.masks[b].bool()
    images_a, masks_a = imageset.images[a], imageset.masks[a].bool()
    region_a = dilate_masks(masks_a, dilate)
    mask_a = torch.zeros_like(mask_b)
    shift = torch.zeros(len(a), 2, dtype=torch.long)
    placed = torch.zeros(len(a), dtype=torch.bool)
    for p in range(len(a)):
        move = lesion_shift(masks_a[p], mask_b[p], dilate=dilate)
        if move is None:
            continue
        dy, dx = move
        region = _shifted(region_a[p], dy, dx)
        images_b[p] = torch.where(region[None], _shifted(images_a[p], dy, dx), images_b[p])
        mask_a[p] = _shifted(masks_a[p], dy, dx)
        shift[p] = torch.tensor(move)
        placed[p] = True
    return {"images": images_b, "mask_a": mask_a, "mask_b": mask_b, "shift": shift, "placed": placed}


def nearest_donor(imageset, a: int, candidates: np.ndarray) -> int:
    """The candidate closest to image ``a`` outside the union of both masks (mean squared difference)."""
    cand = torch.as_tensor(candidates, dtype=torch.long)
    outside = ~(imageset.masks[cand] | imageset.masks[a])  # (C, H, W)
    d2 = ((imageset.images[cand] - imageset.images[a]) ** 2).sum(1)  # (C, H, W)
    score = (d2 * outside).flatten(1).sum(1) / outside.flatten(1).sum(1).clamp(min=1)
    return int(cand[int(score.argmin())])


def composite_control(
    model,
    imageset,
    *,
    dilate: int = 2,
    n_pairs: int = 200,
    seed: int = 0,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    pairing: str = "random",
) -> dict:
    """Run the composite control of ``model`` on ``imageset`` (use the test images).

    Pairs: the lesion donor's class is drawn uniformly among the classes present, the donor uniformly
    within it, the background donor uniformly from a different class (pairs with no mask at all are
    redrawn). Returns a dict with ``n_pairs``, ``follows_lesion`` (fraction of composites predicted
    as the lesion donor's class), ``follows_background`` (as the background donor's class),
    ``other``; the same three restricted to pairs whose two source images are both classified
    correctly (``*_given_correct``, ``n_pairs_correct``); ``source_accuracy`` (on the source images);
    ``by_lesion_class`` (class of the lesion donor -> n, follows_lesion, follows_background).
    ``pairing="nearest"``: the background donor is, within its drawn class, the image closest to the
    lesion donor outside both masks (mean squared pixel difference), so the pasted region brings
    little foreign anatomy (a lung border, a map's rim) that could itself look like a lesion.
    A ``ValueError`` if fewer than two classes are present or no image has a mask.
    ``device``: None = the model's device. The model is put in eval mode.
    """
    labels = imageset.labels
    classes = sorted(set(labels.tolist()))
    if len(classes) < 2:
        raise ValueError("composite_control needs images of at least two classes")
    if not bool(imageset.has_mask.any()):
        raise ValueError("composite_control needs lesion masks; this image set has none")
    dev = _model_device(model, device)
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be 'random' or 'nearest', got {pairing!r}")
    model.eval()
    a_idx, b_idx = draw_pairs(imageset, classes, n_pairs=n_pairs, seed=seed, pairing=pairing)
    comp, _ = make_composites(imageset, a_idx, b_idx, dilate=dilate)
    pred = _predict(model, comp, dev, batch_size)
    src = sorted(set(a_idx) | set(b_idx))
    src_pred = dict(zip(src, _predict(model, imageset.images[src], dev, batch_size).tolist()))
    summary = _summary(labels, classes, list(imageset.class_names), a_idx, b_idx, pred, src_pred)
    return {**summary, "dilate": dilate, "seed": seed, "pairing": pairing}


def draw_pairs(imageset, classes: list[int], *, n_pairs: int, seed: int, pairing: str) -> tuple[list[int], list[int]]:
    """Up to ``n_pairs`` (lesion donor, background donor) index pairs of different classes, at least
    one of the two with a mask (see :func:`composite_control`); at most ``50 * n_pairs`` draws.

    Raises:
        ValueError: no pair of images of different classes has a lesion mask.
    """
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(imageset.labels.numpy() == c) for c in classes}
    has = imageset.has_mask.numpy()
    a_idx, b_idx = [], []
    tries = 0
    while len(a_idx) < n_pairs and tries < 50 * n_pairs:
        tries += 1
        ca = classes[rng.integers(len(classes))]
        others = [c for c in classes if c != ca]
        cb = others[rng.integers(len(others))]
        a = rng.choice(by_class[ca])
        if pairing == "nearest":
            b = nearest_donor(imageset, int(a), by_class[cb])
        else:
            b = rng.choice(by_class[cb])
        if not (has[a] or has[b]):
            continue
        a_idx.append(int(a))
        b_idx.append(int(b))
    if not a_idx:
        raise ValueError("no pair of images of different classes has a lesion mask")
    return a_idx, b_idx


def _model_device(model, device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device; None = the device of the model's parameters (CPU if it has none)."""
    if device is None:
        p = next(model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
    return resolve_device(str(device)) if not isinstance(device, torch.device) else device


def _predict(model, images: torch.Tensor, device, batch_size: int) -> torch.Tensor:
    """The predicted class (N,) int64 of each image."""
    return torch.from_numpy(predict_proba(model, images, batch_size=batch_size, device=device).argmax(1))


def _summary(labels: torch.Tensor, classes: list[int], names: list[str], a_idx: list[int], b_idx: list[int],
             pred: torch.Tensor, src_pred: dict[int, int]) -> dict:
    """The fractions of composites that follow the lesion, the background or neither (overall, given
    both sources are classified correctly, and per lesion class), and the source accuracy."""
    la, lb = labels[a_idx], labels[b_idx]
    fl, fb = (pred == la).numpy(), (pred == lb).numpy()
    ok = np.array([src_pred[a] == int(labels[a]) and src_pred[b] == int(labels[b]) for a, b in zip(a_idx, b_idx)])

    def frac(x, sel=None):
        x = x if sel is None else x[sel]
        return float(x.mean()) if len(x) else float("nan")

    per = {}
    for c in classes:
        sel = la.numpy() == c
        per[names[c]] = {"n": int(sel.sum()), "follows_lesion": frac(fl, sel), "follows_background": frac(fb, sel)}
    return {
        "n_pairs": len(a_idx),
        "follows_lesion": frac(fl),
        "follows_background": frac(fb),
        "other": frac(~fl & ~fb),
        "n_pairs_correct": int(ok.sum()),
        "follows_lesion_given_correct": frac(fl, ok),
        "follows_background_given_correct": frac(fb, ok),
        "other_given_correct": frac(~fl & ~fb, ok),
        "source_accuracy": float(np.mean([src_pred[i] == int(labels[i]) for i in sorted(src_pred)])),
        "by_lesion_class": per,
    }


__all__ = ["PAIRINGS", "composite_control", "dilate_masks", "draw_pairs", "lesion_shift", "make_composites",
           "nearest_donor", "two_lesion_composites"]
