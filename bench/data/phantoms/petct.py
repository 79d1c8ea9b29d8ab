"""PET/CT phantom: the CT chest slice fused with a PET "hot" overlay.

A solitary pulmonary nodule whose CT look is drawn from the same distribution for both classes;
the class is carried by the nodule's FDG uptake only (Benign u ~ U(0.05, 0.55), Malignant
u ~ U(0.45, 1.0)), which is painted strictly inside the nodule. Outside it, PET shows blood pool and
a myocardial uptake whose strength varies from image to image independently of the class (a hot spot
that is not the lesion), plus body background, noise and a global PET scale.
"""

from __future__ import annotations

import numpy as np

from bench.data.phantoms.common import Sample, gauss_spots, grid, paint, smooth_field, streams, to_uint8
from bench.data.phantoms.ct import chest_ct, finish_ct, nodule


def hot(x: np.ndarray) -> np.ndarray:
    """The 'hot' colour map: black -> red -> yellow -> white; (H, W) in [0, 1] -> (H, W, 3)."""
    x = np.clip(x, 0, 1)
    return np.stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], -1)


def pet_ct(rng: np.random.Generator, label: str, *, lesion: bool = True) -> Sample:
    """``lesion=False``: the same image without its nodule, in CT and PET (the mask is the one it would have)."""
    bg, les, fin = streams(rng)
    img, lung, geo = chest_ct(bg)
    yy, xx = grid()
    # PET background: body, lungs, myocardium (a class-independent hot spot)
    d = np.sqrt(((xx - geo["cx"]) / geo["a"]) ** 2 + ((yy - geo["cy"]) / geo["b"]) ** 2)
    body = np.clip((1 - d) * geo["b"] / 2, 0, 1)
    pet = body * (0.08 + 0.02 * smooth_field(bg, 6)) * (1 - 0.6 * lung)
    hy, hx = geo["cy"] - geo["b"] * 0.15, geo["cx"] + bg.uniform(-3, 3)
    pet = pet + gauss_spots(np.array([hy]), np.array([hx]), np.array([bg.uniform(5, 8)]),
                            np.array([bg.uniform(0.05, 0.85)]))
    pet = pet * bg.uniform(0.85, 1.15)
    # the nodule: CT look from one distribution for both classes, uptake by class
    m = les.uniform(0.0, 0.8)
    alpha, value, (cy, cx, r0) = nodule(les, lung, m, r_range=(8.0, 13.0))
    u = les.uniform(0.05, 0.55) if label == "Benign" else les.uniform(0.45, 1.0)
    dist = np.hypot(yy - cy, xx - cx)
    peak = u * (0.65 + 0.35 * np.exp(-0.5 * (dist / max(r0 * 0.6, 1)) ** 2))
    shown = alpha if lesion else np.zeros_like(alpha)  # zero opacity: the same arithmetic, nothing painted
    ct = finish_ct(paint(img, shown, value), fin)
    pet = paint(pet, shown, peak)
    pet = pet + fin.normal(0, 0.02, pet.shape).astype(np.float32) * (body > 0)
    w = 0.5
    rgb = (1 - w) * np.clip(ct, 0, 1)[..., None] + w * hot(pet)
    return Sample(to_uint8(rgb), alpha > 0, {"u": u, "m": m})
