"""Dermoscopy phantom (``ham10000``): one pigmented lesion on skin, with hair and a dermoscope field.

The lesion's centre (+- 10 px) and radius (U(20, 32) px) are drawn the same way for every class;
the class is carried by the lesion's colours and pattern: actinic keratosis = pink-red base with
white scale and a red pseudo-network; basal cell carcinoma = pearly pink with red arborising vessels
and blue-grey ovoid nests; benign keratosis = light-brown waxy lesion with white milia-like cysts and
dark comedo-like openings; melanoma = asymmetric, irregular border, patches of dark brown, black,
blue-grey and red; melanocytic nevus = round, even brown with a regular pigment network. Each image
moves its colours towards a look-alike class by a random fraction (up to 0.5) and its pattern
strength varies, so some lesions are ambiguous. Skin tone, illumination, the dark dermoscope
corners, hair (also across the lesion) and gel bubbles vary independently of the class.
"""

from __future__ import annotations

import numpy as np

from bench.data.phantoms.common import SIZE, Sample, gauss_spots, grid, paint, smooth_field, star_alpha, streams, to_uint8

# base colour, look-alike class, border irregularity
PROTOS = {
    "Actinic Keratoses": ((0.86, 0.52, 0.50), "Basal cell carcinoma", 0.10),
    "Basal cell carcinoma": ((0.88, 0.70, 0.70), "Actinic Keratoses", 0.10),
    "Benign keratosis": ((0.70, 0.50, 0.34), "Melanocytic nevi", 0.08),
    "Melanoma": ((0.45, 0.28, 0.18), "Melanocytic nevi", 0.22),
    "Melanocytic nevi": ((0.55, 0.36, 0.24), "Melanoma", 0.04),
}


def skin(rng: np.random.Generator) -> np.ndarray:
    yy, xx = grid()
    tone = rng.uniform(0, 1)
    base = (1 - tone) * np.array([0.94, 0.78, 0.68]) + tone * np.array([0.70, 0.50, 0.38])
    img = (1 + 0.05 * smooth_field(rng, 4) + 0.02 * smooth_field(rng, 40))[..., None] * base.astype(np.float32)
    # dermoscope field: dark corners when the circle is smaller than the frame
    rv = rng.uniform(62, 100)
    d = np.hypot(yy - 64 - rng.uniform(-4, 4), xx - 64 - rng.uniform(-4, 4))
    field_ = np.clip((rv - d) / 6, 0, 1)
    return img * (0.06 + 0.94 * field_)[..., None]


def _lines(rng, n, cy, cx, r, steps, width, spread=0.3):
    """Random-walk lines starting near (cy, cx); opacity (H, W) in [0, 1]."""
    ys, xs = [], []
    for _ in range(n):
        y, x = cy + rng.uniform(-r, r) * 0.6, cx + rng.uniform(-r, r) * 0.6
        ang = rng.uniform(0, 2 * np.pi)
        for _ in range(steps):
            ang += rng.normal(0, spread)
            y, x = y + np.sin(ang), x + np.cos(ang)
            ys.append(y)
            xs.append(x)
    if not ys:
        return np.zeros((SIZE, SIZE), np.float32)
    return np.clip(gauss_spots(np.array(ys), np.array(xs), np.full(len(ys), width), np.full(len(ys), 0.8)), 0, 1)


def _dots(rng, n, cy, cx, r, sigma):
    ang, rad = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(0, 1, n)) * r * 0.85
    return np.clip(gauss_spots(cy + rad * np.sin(ang), cx + rad * np.cos(ang), np.full(n, sigma), np.full(n, 1.2)), 0, 1)


def _lesion(rng, label, cy, cx, r, strength):
    """Colour image of the lesion (H, W, 3), before it is confined to its mask."""
    yy, xx = grid()
    base, other, _ = PROTOS[label]
    lam = rng.uniform(0, 0.5)
    col = (1 - lam) * np.array(base) + lam * np.array(PROTOS[other][0])
    les = (1 + 0.06 * smooth_field(rng, 10))[..., None] * col.astype(np.float32)
    dist = np.hypot(yy - cy, xx - cx) / r
    if label == "Actinic Keratoses":
        net = np.abs(np.sin(0.9 * xx + 3 * smooth_field(rng, 5))) * np.abs(np.sin(0.9 * yy))
        les = paint(les, (net < 0.15) * 0.5 * strength, np.array((0.78, 0.25, 0.25), np.float32))
        les = paint(les, _dots(rng, int(25 * strength) + 5, cy, cx, r, 1.3) * 0.8, np.array((0.97, 0.94, 0.9), np.float32))
    elif label == "Basal cell carcinoma":
        les = paint(les, _lines(rng, int(rng.integers(2, 5)), cy, cx, r, int(r), 0.6, 0.35) * strength,
                    np.array((0.75, 0.12, 0.18), np.float32))
        les = paint(les, _dots(rng, int(rng.integers(2, 6)), cy, cx, r, 2.8) * 0.9 * strength,
                    np.array((0.42, 0.48, 0.6), np.float32))
    elif label == "Benign keratosis":
        les = paint(les, _dots(rng, int(rng.integers(4, 11)), cy, cx, r, 1.2) * strength, np.array((0.97, 0.95, 0.88), np.float32))
        les = paint(les, _dots(rng, int(rng.integers(4, 11)), cy, cx, r, 1.2) * strength, np.array((0.25, 0.16, 0.1), np.float32))
    elif label == "Melanoma":
        for c in ((0.28, 0.16, 0.1), (0.1, 0.07, 0.06), (0.45, 0.5, 0.64), (0.76, 0.34, 0.34)):
            blob = np.clip((smooth_field(rng, 7) - 0.6) * 2, 0, 1) * strength
            les = paint(les, blob, np.array(c, np.float32))
    elif label == "Melanocytic nevi":
        p = rng.uniform(4.5, 6)
        net = np.maximum(np.cos(2 * np.pi * xx / p), np.cos(2 * np.pi * yy / p))
        les = paint(les, np.clip(net - 0.7, 0, 1) / 0.3 * 0.6 * strength, np.array((0.3, 0.18, 0.1), np.float32))
        les = les * (1 - 0.15 * np.clip(1 - dist, 0, 1))[..., None]  # darker centre, symmetric
    else:
        raise ValueError(f"ham10000 phantom: unknown class {label!r}")
    return les


def ham10000(rng: np.random.Generator, label: str, *, lesion: bool = True) -> Sample:
    """``lesion=False``: the same skin without its lesion (the mask is still the one it would have)."""
    bg, les, fin = streams(rng)
    img = skin(bg)
    cy, cx = 64 + les.uniform(-10, 10), 64 + les.uniform(-10, 10)
    r = les.uniform(20, 32)
    irregular = PROTOS[label][2] * les.uniform(0.5, 1.5)
    alpha = star_alpha(cy, cx, r, harmonics=irregular * les.uniform(0.3, 1, 4) / np.arange(1, 5) ** 0.5,
                       phases=les.uniform(0, 2 * np.pi, 4), aspect=les.uniform(0.75, 1.0),
                       angle=les.uniform(0, np.pi), edge=4.0)
    strength = les.uniform(0.35, 1.0)
    opacity = alpha * les.uniform(0.8, 0.95) * (1.0 if lesion else 0.0)  # zero opacity: nothing painted
    img = paint(img, opacity, _lesion(les, label, cy, cx, r, strength))
    # hair: the same for every class, over skin and lesion alike
    nh = int(fin.integers(0, 7))
    if nh:
        hair = _lines(fin, nh, 64, 64, 120, 140, 0.45, 0.05)
        img = paint(img, hair * 0.9, np.array((0.12, 0.08, 0.06), np.float32))
    img = img + fin.normal(0, 0.012, img.shape).astype(np.float32)
    return Sample(to_uint8(img), alpha > 0, {"strength": strength})
