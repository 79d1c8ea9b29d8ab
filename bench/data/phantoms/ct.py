"""CT phantoms: an axial chest slice (body, fat, lungs with vessels, heart, aorta, spine, table).

``lidc_idri``: one solitary nodule in a lung; Benign vs Malignant differ only in the nodule
(density, calcification, texture, lobulation and spiculation), never in its position or core size.
``cov_ct``: COVID-19 slices carry 2-4 peripheral ground-glass patches; Normal slices carry none.
Both classes share the same anatomy, noise, window and a gravity-dependent posterior density
(a look-alike of faint ground glass that lies outside any lesion and does not depend on the class).
"""

from __future__ import annotations

import numpy as np

from bench.data.phantoms.common import (
    SIZE,
    Sample,
    streams,
    erode,
    gauss_spots,
    grid,
    paint,
    random_point_in,
    random_points_in,
    smooth_field,
    star_alpha,
    to_uint8,
)


def chest_ct(rng: np.random.Generator, *, vessels: tuple[int, int] = (18, 36)) -> tuple[np.ndarray, np.ndarray, dict]:
    """Background slice, float32 (H, W) in about [0, 1]; lung mask bool (H, W); geometry dict."""
    yy, xx = grid()
    cy, cx = 64 + rng.uniform(-4, 4), 64 + rng.uniform(-4, 4)
    a, b = rng.uniform(50, 58), rng.uniform(36, 44)  # body semi-axes (x, y)
    d = np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2)
    body = np.clip((1 - d) * b / 1.2, 0, 1)
    fat = rng.uniform(3, 7)
    inner = np.clip((1 - d) * b / 1.2 - fat / 1.2, 0, 1)
    img = 0.03 + body * (0.42 - 0.03) + inner * (0.56 - 0.42)
    img = img + 0.015 * smooth_field(rng, 10) * body
    # table under the patient
    ty = cy + b + rng.uniform(4, 8)
    img += 0.3 * np.clip(1.5 - np.abs(yy - ty), 0, 1)

    lungs = np.zeros_like(img)
    for side in (-1, 1):
        lx = cx + side * a * rng.uniform(0.42, 0.48)
        ly = cy - b * 0.06 + rng.uniform(-2, 2)
        h = rng.uniform(0.0, 0.10, 3)
        la = star_alpha(ly, lx, b * rng.uniform(0.74, 0.84), aspect=rng.uniform(0.58, 0.7),
                        angle=np.pi / 2 + side * rng.uniform(0.0, 0.25), harmonics=h,
                        phases=rng.uniform(0, 2 * np.pi, 3), edge=1.5)
        lungs = np.maximum(lungs, la)
    lung_value = 0.08 + 0.02 * smooth_field(rng, 8)
    img = paint(img, lungs, lung_value)
    heart = star_alpha(cy - b * 0.15 + rng.uniform(-2, 2), cx + rng.uniform(-5, 5), b * rng.uniform(0.27, 0.34),
                       aspect=rng.uniform(1.1, 1.4), angle=rng.uniform(-0.4, 0.4), edge=1.5)
    img = paint(img, heart, 0.6 + 0.02 * smooth_field(rng, 6))
    aorta = star_alpha(cy + b * 0.35, cx + rng.uniform(4, 10), rng.uniform(4, 6), edge=1.2)
    img = paint(img, aorta, 0.62)
    sy, sr = cy + b * rng.uniform(0.55, 0.65), rng.uniform(6, 8)
    spine = star_alpha(sy, cx, sr, aspect=1.15, edge=1.2)
    img = paint(img, spine, 0.92)
    img = paint(img, star_alpha(sy, cx, sr * 0.6, edge=1.2), 0.74)
    lung = (lungs > 0.5) & (heart < 0.5) & (aorta < 0.5) & (spine < 0.5)
    # vessels: small bright spots inside the lungs
    n = int(rng.integers(*vessels))
    ys, xs = random_points_in(lung, rng, n)
    if len(ys):
        spots = gauss_spots(ys, xs, rng.uniform(0.6, 1.5, len(ys)), rng.uniform(0.2, 0.45, len(ys)))
        img = img + spots * lungs * (1 - heart)
    # gravity-dependent (posterior) density: present in every class, a look-alike of faint ground glass
    dep = rng.uniform(0.0, 0.06) if rng.random() < 0.6 else 0.0
    img = img + dep * np.clip((yy - (cy + b * 0.1)) / 18, 0, 1) * lungs * (1 - heart)
    return img.astype(np.float32), lung, {"cy": cy, "cx": cx, "a": a, "b": b}


def finish_ct(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Window (gain/offset), quantum noise and a little blur: the same for every class."""
    gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.04, 0.04)
    img = (img - 0.4) * gain + 0.4 + offset
    img = img + rng.normal(0, rng.uniform(0.008, 0.03), img.shape).astype(np.float32)
    return img


def nodule(rng: np.random.Generator, lung: np.ndarray, m: float, *, r_range=(8.0, 13.0)):
    """A nodule whose look is set by m in [0, 1] (0 = benign-looking, 1 = malignant-looking).

    Returns (alpha, value field). Position and core size are drawn independently of ``m``;
    spiculated nodules get a slightly smaller core so the mask area does not follow ``m``.
    """
    r0 = rng.uniform(*r_range)
    where = erode(lung, r0 * 1.2)
    p = random_point_in(where if where.any() else lung, rng)
    cy, cx = p if p is not None else (64.0, 40.0)
    k = 4
    harm = (0.03 + 0.14 * m) * rng.uniform(0.3, 1.0, k) / np.arange(1, k + 1) ** 0.5
    nsp = int(round((m - 0.3) / 0.7 * 9)) if m > 0.3 else 0
    spikes = None
    if nsp > 0:
        spikes = (rng.uniform(-np.pi, np.pi, nsp), rng.uniform(0.3, 0.8, nsp) * m, rng.uniform(0.05, 0.09))
    core = r0 * (1 - 0.15 * m)
    alpha = star_alpha(cy, cx, core, harmonics=harm, phases=rng.uniform(0, 2 * np.pi, k),
                       spikes=spikes, aspect=rng.uniform(0.85, 1.0), angle=rng.uniform(0, np.pi), edge=1.5)
    value = 0.92 - 0.45 * m + (0.02 + 0.12 * m) * smooth_field(rng, 16)
    if m < 0.3 and rng.random() < 0.7:  # benign calcification: central or popcorn
        nc = int(rng.integers(1, 4))
        ang = rng.uniform(0, 2 * np.pi, nc)
        rad = rng.uniform(0, 0.35, nc) * core
        calc = gauss_spots(cy + rad * np.sin(ang), cx + rad * np.cos(ang),
                           rng.uniform(0.25, 0.4, nc) * core, np.full(nc, 0.5))
        value = value + calc
    return alpha, value, (cy, cx, r0)


def lidc_idri(rng: np.random.Generator, label: str, *, lesion: bool = True) -> Sample:
    """Benign: m ~ U(0, 0.55); Malignant: m ~ U(0.45, 1). The overlap caps accuracy near 90%.

    ``lesion=False``: the same image without its nodule (the mask is still the one it would have)."""
    bg, les, fin = streams(rng)
    img, lung, geo = chest_ct(bg)
    m = les.uniform(0.0, 0.55) if label == "Benign" else les.uniform(0.45, 1.0)
    alpha, value, (cy, cx, r0) = nodule(les, lung, m)
    img = paint(img, alpha if lesion else np.zeros_like(alpha), value)  # zero opacity: the same arithmetic
    img = finish_ct(img, fin)
    return Sample(to_uint8(img), alpha > 0, {"m": m, "r0": r0})


def _ggo(rng: np.random.Generator, lung: np.ndarray, lungs_soft: np.ndarray, s: float):
    """2-4 peripheral ground-glass patches inside the lung; returns (alpha, additive delta)."""
    alpha = np.zeros((SIZE, SIZE), np.float32)
    from scipy import ndimage as ndi

    depth = ndi.distance_transform_edt(lung)
    rim = (depth >= 3) & (depth <= 11)
    for _ in range(int(rng.integers(2, 5))):
        p = random_point_in(rim if rim.any() else lung, rng)
        if p is None:
            break
        a = star_alpha(p[0], p[1], rng.uniform(10, 18), harmonics=rng.uniform(0, 0.2, 3),
                       phases=rng.uniform(0, 2 * np.pi, 3), aspect=rng.uniform(0.6, 1.0),
                       angle=rng.uniform(0, np.pi), edge=3.0)
        alpha = np.maximum(alpha, a)
    alpha = alpha * lung  # the patch stays inside the lung
    tex = np.clip(1 + 0.35 * smooth_field(rng, 14), 0.2, 2)
    delta = s * 0.4 * tex
    if s > 0.6:  # crazy paving: a reticular pattern on top of the ground glass
        yy, xx = grid()
        th = rng.uniform(0, np.pi)
        u, v = xx * np.cos(th) + yy * np.sin(th), -xx * np.sin(th) + yy * np.cos(th)
        net = np.maximum(np.cos(2 * np.pi * u / 6.0), np.cos(2 * np.pi * v / 6.0)) > 0.85
        delta = delta + (s - 0.6) * 0.3 * net
    return alpha.astype(np.float32), delta.astype(np.float32)


def cov_ct(rng: np.random.Generator, label: str, *, lesion: bool = True) -> Sample:
    """COVID-19: ground glass of strength s ~ U(0.25, 1) (the faintest are near invisible); Normal: none.

    ``lesion=False``: the same image without its ground glass (the mask is still the one it would have)."""
    bg, les, fin = streams(rng)
    img, lung, geo = chest_ct(bg, vessels=(24, 44))
    if label == "Normal":
        return Sample(to_uint8(finish_ct(img, fin)), None, {})
    s = les.uniform(0.25, 1.0)
    alpha, delta = _ggo(les, lung, lung.astype(np.float32), s)
    img = img + (alpha if lesion else np.zeros_like(alpha)) * delta
    img = finish_ct(img, fin)
    mask = alpha > 0
    return Sample(to_uint8(img), mask if mask.any() else None, {"s": s})
