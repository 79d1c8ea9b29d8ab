"""Blood-smear phantom (``cells``): one leukocyte near the centre among red cells.

The reference mask is the whole leukocyte (cytoplasm + nucleus). Its position (centre +- 6 px) and
radius (U(22, 28) px) are drawn the same way for every class; the class is carried by the nucleus
(shape, lobes, chromatin, nucleoli) and the cytoplasm (colour, granules, vacuoles). Each image mixes
its class's colours towards a look-alike class by a random fraction (up to 0.55), and some cells
borrow a feature of the look-alike (a two-lobed neutrophil, a lymphocyte with a nucleolus, an
eosinophil with faint granules), so a few cells are ambiguous. Stain colour, brightness, red cells,
blur and noise vary independently of the class.
"""

from __future__ import annotations

import numpy as np

from bench.data.phantoms.common import SIZE, Sample, gauss_spots, grid, paint, smooth_field, star_alpha, streams, to_uint8

# cytoplasm colour, nucleus colour, look-alike class
PROTOS = {
    "Eosinophil": ((0.93, 0.62, 0.50), (0.42, 0.24, 0.55), "Neutrophil"),
    "Typical Lymphocyte": ((0.70, 0.78, 0.93), (0.30, 0.18, 0.48), "Myeloblast"),
    "Monocyte": ((0.74, 0.74, 0.86), (0.55, 0.42, 0.68), "Myeloblast"),
    "Myeloblast": ((0.56, 0.63, 0.90), (0.52, 0.42, 0.72), "Typical Lymphocyte"),
    "Neutrophil": ((0.88, 0.78, 0.86), (0.40, 0.22, 0.52), "Eosinophil"),
}


def smear(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background with red cells, float32 (H, W, 3); stain tint (3,)."""
    tint = rng.uniform(0.93, 1.05, 3).astype(np.float32)
    bg = np.array([0.93, 0.88, 0.90], np.float32)
    img = np.broadcast_to(bg * tint, (SIZE, SIZE, 3)).copy()
    img *= (1 + 0.03 * smooth_field(rng, 4))[..., None]
    rbc = np.array([0.86, 0.52, 0.58], np.float32) * rng.uniform(0.95, 1.05, 3) * tint
    cells_a = np.zeros((SIZE, SIZE), np.float32)
    pallor = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(int(rng.integers(8, 20))):
        cy, cx, r = rng.uniform(-5, SIZE + 5), rng.uniform(-5, SIZE + 5), rng.uniform(9, 12)
        a = star_alpha(cy, cx, r, harmonics=rng.uniform(0, 0.04, 2), phases=rng.uniform(0, 6.3, 2), edge=1.5)
        cells_a = np.maximum(cells_a, a)
        pallor = np.maximum(pallor, star_alpha(cy, cx, r * rng.uniform(0.35, 0.5), edge=3.0))
    img = paint(img, cells_a, rbc)
    img = img + 0.12 * (pallor * cells_a)[..., None]
    return img, tint


def _lobes(cy, cx, centres, radii, edge=1.2):
    a = np.zeros((SIZE, SIZE), np.float32)
    for (dy, dx), r in zip(centres, radii):
        a = np.maximum(a, star_alpha(cy + dy, cx + dx, r, edge=edge))
    return a


def _nucleus(rng: np.random.Generator, label: str, cy: float, cx: float, R: float, borrow: bool):
    """Nucleus opacity (H, W) for the class (``borrow`` = take the look-alike's trait)."""
    th = rng.uniform(0, 2 * np.pi)
    e = np.array([np.sin(th), np.cos(th)])
    n = np.array([np.cos(th), -np.sin(th)])
    if label == "Eosinophil" or (label == "Neutrophil" and borrow):  # two lobes
        d = R * rng.uniform(0.3, 0.4)
        cs = [tuple(d * e), tuple(-d * e)]
        a = _lobes(cy, cx, cs, [R * rng.uniform(0.3, 0.36)] * 2)
        return np.maximum(a, _lobes(cy, cx, [(0, 0)], [R * 0.12]))
    if label == "Neutrophil":  # 3-5 small lobes on a C-shaped chain
        k = int(rng.integers(3, 6))
        ang = np.linspace(-1.2, 1.2, k) + th
        rad = R * 0.42
        cs = [(rad * np.sin(a), rad * np.cos(a)) for a in ang]
        a = _lobes(cy, cx, cs, R * rng.uniform(0.18, 0.24, k))
        # thin strands between lobes
        ys = np.concatenate([np.linspace(cs[i][0], cs[i + 1][0], 6) for i in range(k - 1)]) + cy
        xs = np.concatenate([np.linspace(cs[i][1], cs[i + 1][1], 6) for i in range(k - 1)]) + cx
        return np.maximum(a, np.clip(gauss_spots(ys, xs, np.full(len(ys), 1.2), np.full(len(ys), 1.5)), 0, 1))
    if label == "Monocyte":  # kidney-shaped: an ellipse with a bite
        a = star_alpha(cy, cx, R * 0.62, aspect=1.25, angle=th, edge=1.5)
        bite = star_alpha(cy + R * 0.55 * n[0], cx + R * 0.55 * n[1], R * 0.35, edge=1.5)
        return np.clip(a - bite, 0, 1)
    if label == "Typical Lymphocyte":
        off = R * 0.1 * e
        return star_alpha(cy + off[0], cx + off[1], R * rng.uniform(0.74, 0.84), edge=1.2,
                          harmonics=rng.uniform(0, 0.04, 2), phases=rng.uniform(0, 6.3, 2))
    if label == "Myeloblast":
        return star_alpha(cy, cx, R * rng.uniform(0.66, 0.76), edge=1.5,
                          harmonics=rng.uniform(0, 0.05, 2), phases=rng.uniform(0, 6.3, 2))
    raise ValueError(f"cells phantom: unknown class {label!r}")


def cells(rng: np.random.Generator, label: str, *, lesion: bool = True) -> Sample:
    """``lesion=False``: the same smear without its leukocyte (the mask is still the one it would have)."""
    bg, rng, fin = streams(rng)  # the leukocyte is drawn from the lesion stream (named rng below)
    img, tint = smear(bg)
    cyto_c, nuc_c, other = PROTOS[label]
    lam = rng.uniform(0, 0.55)
    cyto_c = (1 - lam) * np.array(cyto_c) + lam * np.array(PROTOS[other][0])
    nuc_c = (1 - lam) * np.array(nuc_c) + lam * np.array(PROTOS[other][1])
    borrow = rng.random() < 0.15
    cy, cx = 64 + rng.uniform(-6, 6), 64 + rng.uniform(-6, 6)
    R = rng.uniform(22, 28)
    cell = star_alpha(cy, cx, R, harmonics=rng.uniform(0, 0.05, 3), phases=rng.uniform(0, 6.3, 3), edge=2.0)
    cyto = colour(cyto_c * tint, 1 + 0.04 * smooth_field(rng, 10))
    yy, xx = grid()
    # cytoplasm features
    if label in ("Eosinophil", "Neutrophil"):
        coarse = label == "Eosinophil" and not borrow
        n = 70 if coarse else 40
        ys, xs = cy + rng.uniform(-R, R, n), cx + rng.uniform(-R, R, n)
        g = gauss_spots(ys, xs, np.full(n, 1.3 if coarse else 0.8), np.full(n, 1.0))
        gc = np.array((0.95, 0.45, 0.25) if coarse else (0.8, 0.6, 0.75), np.float32) * tint
        strength = rng.uniform(0.5, 0.9) if coarse else rng.uniform(0.3, 0.6)
        cyto = paint(cyto, np.clip(g, 0, 1) * strength, gc)
    if label == "Monocyte":
        n = int(rng.integers(3, 9))
        ang, rad = rng.uniform(0, 2 * np.pi, n), rng.uniform(0.5, 0.9, n) * R
        v = gauss_spots(cy + rad * np.sin(ang), cx + rad * np.cos(ang), rng.uniform(1.0, 1.8, n), np.full(n, 1.0))
        cyto = paint(cyto, np.clip(v, 0, 1) * 0.8, np.array((0.97, 0.96, 0.98), np.float32))
    nucleus = _nucleus(rng, label, cy, cx, R, borrow) * cell
    chrom = 1 + (0.12 if label in ("Myeloblast", "Monocyte") else 0.2) * smooth_field(rng, 24)
    nuc = colour(nuc_c * tint, chrom)
    nucleoli = label == "Myeloblast" and not borrow or label == "Typical Lymphocyte" and borrow
    if nucleoli:
        k = int(rng.integers(1, 4))
        ang, rad = rng.uniform(0, 2 * np.pi, k), rng.uniform(0, 0.35, k) * R
        nl = gauss_spots(cy + rad * np.sin(ang), cx + rad * np.cos(ang), rng.uniform(1.5, 2.5, k), np.full(k, 1.0))
        nuc = paint(nuc, np.clip(nl, 0, 1) * 0.6, np.array((0.72, 0.66, 0.88), np.float32) * tint)
    img = paint(img, cell if lesion else np.zeros_like(cell), paint(cyto, nucleus, nuc))  # zero opacity: nothing
    img = img * fin.uniform(0.92, 1.06) + fin.normal(0, fin.uniform(0.005, 0.02), img.shape).astype(np.float32)
    return Sample(to_uint8(img), cell > 0, {"lambda": lam, "borrow": borrow})


def colour(rgb, field_: np.ndarray) -> np.ndarray:
    return field_[..., None] * np.asarray(rgb, np.float32)
