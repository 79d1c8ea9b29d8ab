"""SPECT myocardial perfusion polar map (bull's-eye) phantom (``mpip``).

A disc (apex at the centre, base at the rim) coloured by relative perfusion with a rainbow map.
CAD maps carry one perfusion defect: an angular sector (centre angle uniform, half-width
25-60 degrees) over a radial range, with depth d ~ U(0.12, 0.5) of the local counts and soft
borders (4 px); the reference mask is that sector. Normal maps carry none. Both classes show the same
nuisance: smooth count variation, apical thinning, and in half of the maps soft, broad attenuation
artefacts (inferior wall, anterior wall) of depth up to 0.25, look-alikes of a mild defect that lie
outside any lesion and do not depend on the class.
"""

from __future__ import annotations

import numpy as np

from bench.data.phantoms.common import Sample, grid, smooth_field, streams, to_uint8

_STOPS = np.array([0.0, 0.15, 0.35, 0.55, 0.75, 0.9, 1.0])
_COLS = np.array([
    [0.0, 0.0, 0.0],
    [0.25, 0.0, 0.45],
    [0.0, 0.2, 0.95],
    [0.0, 0.8, 0.4],
    [0.95, 0.9, 0.0],
    [1.0, 0.35, 0.0],
    [1.0, 1.0, 1.0],
])


def rainbow(x: np.ndarray) -> np.ndarray:
    """Perfusion colour map (black -> purple -> blue -> green -> yellow -> red -> white), (H, W, 3)."""
    x = np.clip(x, 0, 1)
    return np.stack([np.interp(x, _STOPS, _COLS[:, c]) for c in range(3)], -1).astype(np.float32)


def _angdist(t: np.ndarray, t0: float) -> np.ndarray:
    return np.abs(np.remainder(t - t0 + np.pi, 2 * np.pi) - np.pi)


def mpip(rng: np.random.Generator, label: str, *, lesion: bool = True) -> Sample:
    """``lesion=False``: the same map without its defect (the mask is still the one it would have)."""
    rng, les, fin = streams(rng)  # background from "rng", the defect from "les", noise from "fin"
    yy, xx = grid()
    cy, cx = 64 + rng.uniform(-2, 2), 64 + rng.uniform(-2, 2)
    R = rng.uniform(54, 59)
    r = np.hypot(yy - cy, xx - cx) / R
    t = np.arctan2(-(yy - cy), xx - cx)  # 0 = lateral (right), pi/2 = anterior (top)
    disc = np.clip((1 - r) * R / 1.5, 0, 1)
    f = 0.8 + 0.045 * smooth_field(rng, 5) + 0.03 * np.cos(t - rng.uniform(0, 2 * np.pi))
    f = f - rng.uniform(0, 0.12) * np.clip(1 - r / 0.25, 0, 1)  # apical thinning
    for t0 in (-np.pi / 2, np.pi / 2):  # inferior, anterior attenuation (nuisance, any class)
        if rng.random() < 0.5:
            w = np.deg2rad(rng.uniform(30, 50))
            f = f - rng.uniform(0.05, 0.25) * np.exp(-0.5 * (_angdist(t, t0) / w) ** 2) * (0.3 + 0.7 * r)
    mask = None
    info: dict = {}
    if label != "Normal":
        t0 = les.uniform(-np.pi, np.pi)
        hw = np.deg2rad(les.uniform(25, 60))
        r1, r2 = les.uniform(0.0, 0.35), les.uniform(0.7, 1.0)
        ramp = 4.0 / R  # border ramp (inside the sector) in units of r
        a_ang = np.clip((hw - _angdist(t, t0)) * np.maximum(r, 1e-3) * R / 4.0, 0, 1)
        a_rad = np.clip(np.minimum(r - r1, r2 - r) / ramp, 0, 1) if r1 > 0 else np.clip((r2 - r) / ramp, 0, 1)
        alpha = (a_ang * a_rad * (r < 1)).astype(np.float32)
        d = les.uniform(0.12, 0.5)
        core = 0.7 + 0.3 * np.clip(1 - _angdist(t, t0) / hw, 0, 1)
        f = f * (1 - (alpha if lesion else np.zeros_like(alpha)) * d * core)  # zero: the same arithmetic
        mask = alpha > 0
        info = {"depth": d}
    f = f + fin.normal(0, 0.012, f.shape).astype(np.float32)
    img = rainbow(f) * disc[..., None]
    return Sample(to_uint8(img), mask, info)
