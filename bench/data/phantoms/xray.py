"""Chest radiograph phantom (``cov_x``): lungs, heart, mediastinum, spine, clavicles and ribs.

Normal images carry no lesion. Each of the six disease classes carries one opacity inside a lung,
whose position and size are drawn from the same distribution for every class; the class is carried
by what the opacity looks like: edema = haze with horizontal (Kerley) lines; effusion = dense,
homogeneous white-out; obstructive disease = hyperlucency with bright-rimmed bullae; fibrosis =
diagonal reticular net, finer than edema's lines; COVID-19 = several soft round ground-glass patches;
pneumonia = dense consolidation with dark branching air bronchograms. Every pattern's detail is at
least 3 px at 128 px, so it survives the resize to 64 px. The contrast s ~ U(0.75, 1) scales every
pattern, so faint lesions are harder to tell apart and from Normal. Exposure, gamma, rib spacing,
anatomy and noise vary independently of the class.
"""

from __future__ import annotations

import numpy as np

from bench.data.phantoms.common import (
    SIZE,
    Sample,
    erode,
    gauss_spots,
    grid,
    paint,
    random_point_in,
    smooth_field,
    star_alpha,
    streams,
    to_uint8,
)

NORMAL = "Normal"


def chest_xray(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background radiograph float32 (H, W); lung mask bool; soft lung opacity float32."""
    yy, xx = grid()
    cx, cy = 64 + rng.uniform(-4, 4), 64 + rng.uniform(-3, 3)
    half = rng.uniform(52, 62)
    body = np.clip((half - np.abs(xx - cx)) / 6, 0, 1)
    img = 0.12 + body * (0.5 + 0.03 * smooth_field(rng, 5)) + 0.05 * (yy / SIZE)
    lungs = np.zeros_like(img)
    for side in (-1, 1):
        lx = cx + side * rng.uniform(21, 26)
        ly = cy - rng.uniform(2, 6)
        la = star_alpha(ly, lx, rng.uniform(36, 42), aspect=rng.uniform(0.45, 0.55), angle=side * rng.uniform(0, 0.08),
                        harmonics=rng.uniform(0, 0.06, 2), phases=rng.uniform(0, 2 * np.pi, 2), edge=2.5)
        lungs = np.maximum(lungs, la)
    img = paint(img, lungs, 0.2 + 0.025 * smooth_field(rng, 10))
    # mediastinum + spine (a bright vertical band), heart bulging to the image right
    band = np.clip((rng.uniform(7, 10) - np.abs(xx - cx)) / 2, 0, 1) * np.clip((yy - 10) / 6, 0, 1)
    img = paint(img, band, 0.62)
    heart = star_alpha(cy + rng.uniform(16, 24), cx + rng.uniform(6, 12), rng.uniform(18, 24),
                       aspect=rng.uniform(1.1, 1.35), angle=rng.uniform(-0.3, 0.1), edge=3.0)
    img = paint(img, heart, 0.6)
    # clavicles
    for side in (-1, 1):
        t = np.clip((yy - (cy - rng.uniform(40, 46) + 0.18 * side * (xx - cx))), -3, 3)
        clav = np.clip(1.6 - np.abs(t), 0, 1) * np.clip((side * (xx - cx) - 4) / 4, 0, 1) * body
        img = img + 0.18 * clav
    # ribs: curved bright bands over the lungs, spacing and phase vary
    spacing, phase, bend = rng.uniform(8, 10.5), rng.uniform(0, 10), rng.uniform(0.006, 0.012)
    ribs = np.cos(2 * np.pi * (yy - bend * (xx - cx) ** 2 - phase) / spacing)
    img = img + rng.uniform(0.05, 0.09) * np.clip(ribs - 0.3, 0, 1) / 0.7 * (0.25 * body + 0.75 * lungs)
    lung = (lungs > 0.5) & (heart < 0.3) & (band < 0.3)
    return img.astype(np.float32), lung, lungs * (1 - heart) * (1 - band)


def finish_xray(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)
    img = img * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    return img + rng.normal(0, rng.uniform(0.008, 0.025), img.shape).astype(np.float32)


def _rotated(rng: np.random.Generator, th: float):
    """The pixel grid rotated by ``th`` radians, ``(u, v)`` float32 (H, W)."""
    yy, xx = grid()
    return xx * np.cos(th) + yy * np.sin(th), -xx * np.sin(th) + yy * np.cos(th)


def _branches(rng: np.random.Generator, cy: float, cx: float, r: float, n: int) -> np.ndarray:
    """Branching tubes (random walks, about 3 px wide at 128 px) around (cy, cx), float32 (H, W) in [0, 1]."""
    pts_y, pts_x = [], []
    for _ in range(n):
        y, x = cy + rng.uniform(-r, r) * 0.4, cx + rng.uniform(-r, r) * 0.4
        ang = rng.uniform(0, 2 * np.pi)
        for _ in range(int(r * 1.5)):
            ang += rng.normal(0, 0.2)
            y, x = y + np.sin(ang), x + np.cos(ang)
            pts_y.append(y)
            pts_x.append(x)
    if not pts_y:
        return np.zeros((SIZE, SIZE), np.float32)
    out = gauss_spots(np.array(pts_y), np.array(pts_x), np.full(len(pts_y), 1.2), np.full(len(pts_y), 0.3))
    return np.clip(out, 0, 1)


def _pattern(rng: np.random.Generator, label: str, cy: float, cx: float, r: float, s: float) -> np.ndarray:
    """Additive change of the lesion (before it is confined to its mask), float32 (H, W).

    Every pattern's detail (line spacing, ring width, tube width) is at least 3 px at 128 px, so it
    survives the resize to the quick preset's 64 px.
    """
    yy, xx = grid()
    if label == "Pulmonary Edema":  # horizontal bright lines on a faint haze
        lines = np.clip(np.cos(2 * np.pi * (yy + rng.uniform(0, 14)) / rng.uniform(12, 14)) - 0.2, 0, 1) / 0.8
        return s * (0.12 + 0.03 * smooth_field(rng, 6) + 0.3 * lines)
    if label == "Pleural Effusion":  # flat, dense white-out
        return s * (0.4 + 0.015 * smooth_field(rng, 12))
    if label == "Obstructive Pulmonary Disease":  # darker lung with bright-rimmed bullae
        n = int(rng.integers(2, 4))
        ang, rad = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 0.5, n) * r
        rims = np.zeros((SIZE, SIZE), np.float32)
        for a, d in zip(ang, rad):
            rr = np.hypot(yy - cy - d * np.sin(a), xx - cx - d * np.cos(a))
            rims = np.maximum(rims, np.clip(1 - np.abs(rr - rng.uniform(6, 9)) / 1.8, 0, 1))
        return s * (-0.25 + 0.35 * rims)
    if label == "Pulmonary Fibrosis":  # reticular net of bright lines, two diagonal directions
        u, v = _rotated(rng, np.pi / 4 + rng.uniform(-0.3, 0.3))
        p = rng.uniform(8, 9)
        net = np.maximum(np.cos(2 * np.pi * u / p), np.cos(2 * np.pi * v / p))
        return s * (0.3 * np.clip(net - 0.5, 0, 1) / 0.5)
    if label == "COVID-19":  # multifocal ground glass: several soft round patches with gaps between
        n = int(rng.integers(4, 7))
        ang, rad = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(0, 1, n)) * r * 0.8
        spots = gauss_spots(cy + rad * np.sin(ang), cx + rad * np.cos(ang), np.full(n, rng.uniform(2.5, 3.5)),
                            np.full(n, 1.0))
        return s * 0.3 * np.clip(spots, 0, 1)
    if label == "Bacterial and Viral Pneumonia":  # dense consolidation crossed by dark air bronchograms
        air = _branches(rng, cy, cx, r, int(rng.integers(2, 4)))
        return s * (0.3 + 0.02 * smooth_field(rng, 10) - 0.3 * air)
    raise ValueError(f"cov_x phantom: unknown class {label!r}")


def cov_x(rng: np.random.Generator, label: str, *, lesion: bool = True) -> Sample:
    """``lesion=False``: the same image without its opacity (the mask is still the one it would have)."""
    bg, les, fin = streams(rng)
    img, lung, lung_soft = chest_xray(bg)
    if label == NORMAL:
        return Sample(to_uint8(finish_xray(img, fin)), None, {})
    r = les.uniform(13, 22)
    where = erode(lung, r * 0.6)
    p = random_point_in(where if where.any() else lung, les)
    cy, cx = p if p is not None else (50.0, 40.0)
    alpha = star_alpha(cy, cx, r, harmonics=les.uniform(0, 0.15, 3), phases=les.uniform(0, 2 * np.pi, 3),
                       aspect=les.uniform(0.7, 1.0), angle=les.uniform(0, np.pi), edge=3.0)
    alpha = alpha * np.clip(lung_soft * 1.5, 0, 1)  # the opacity stays inside the lung
    s = les.uniform(0.75, 1.0)
    shown = alpha if lesion else np.zeros_like(alpha)  # zero opacity: the same arithmetic, nothing added
    img = (img + shown * 1.3 * _pattern(les, label, cy, cx, r, s)).astype(np.float32)
    return Sample(to_uint8(finish_xray(img, fin)), alpha > 0, {"s": s, "r": r})
