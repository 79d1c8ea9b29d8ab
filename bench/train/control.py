"""The composite control: does a trained classifier's prediction follow the lesion or the background?

For a pair (A, B) of images of different classes, the composite takes the pixels inside the dilated
union of both lesion masks from A (the lesion donor) and every other pixel from B (the background
donor), so B's own lesion is replaced by A's tissue at that place and A's lesion is pasted into B.
If the class evidence lies only inside the masks, the composite is classified as A's class.
(Blanking the mask region instead is not a fair control: the hole's size and place can carry the
class.) A pair where neither image has a mask is skipped (the composite would be B itself).
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


__all__ = ["PAIRINGS", "composite_control", "dilate_masks", "draw_pairs", "make_composites", "nearest_donor"]
