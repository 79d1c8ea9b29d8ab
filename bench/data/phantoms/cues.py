"""Confounder cues for the shortcut suite: an artefact outside the lesion that can be tied to a class.

``tag``: a bright corner marker with a dark letter (a radiograph's lead marker / a source token);
``ink``: a purple surgical-ink stroke near the border (dermoscopy); ``ruler``: a ruler along one edge.
Each is drawn with its own opacity; its mask is ``opacity > 0`` and never touches the lesion mask
dilated by 4 px.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from bench.data.phantoms.common import SIZE, gauss_spots, grid, paint, to_uint8

CUES = ("tag", "ink", "ruler")


def _tag(rng: np.random.Generator):
    w, h = int(rng.integers(15, 19)), int(rng.integers(10, 13))
    corner = rng.integers(4)
    inset = int(rng.integers(3, 8))
    y0 = inset if corner < 2 else SIZE - inset - h
    x0 = inset if corner % 2 == 0 else SIZE - inset - w
    a = np.zeros((SIZE, SIZE), np.float32)
    a[y0:y0 + h, x0:x0 + w] = 1
    letter = np.zeros_like(a)
    letter[y0 + 2:y0 + h - 2, x0 + 4:x0 + 6] = 1  # an "L"
    letter[y0 + h - 4:y0 + h - 2, x0 + 4:x0 + w - 4] = 1
    return a, [(a, 0.97), (letter, 0.1)]


def _ink(rng: np.random.Generator):
    yy, xx = grid()
    side = rng.integers(4)
    t = rng.uniform(15, SIZE - 15)
    y, x = [(6.0, t), (SIZE - 7.0, t), (t, 6.0), (t, SIZE - 7.0)][side]
    ang = [0.0, np.pi, np.pi / 2, -np.pi / 2][side] + rng.choice([-1, 1]) * np.pi / 2
    ys, xs = [], []
    for _ in range(int(rng.integers(28, 40))):
        ang += rng.normal(0, 0.08)
        y, x = y + 0.8 * np.sin(ang), x + 0.8 * np.cos(ang)
        ys.append(y)
        xs.append(x)
    a = np.clip(gauss_spots(np.array(ys), np.array(xs), 1.1, 0.9), 0, 1)
    a = np.where(a > 0.05, a, 0).astype(np.float32)
    return a, [(a, (0.38, 0.2, 0.6))]


def _ruler(rng: np.random.Generator):
    side = rng.integers(4)
    width = int(rng.integers(6, 9))
    a = np.zeros((SIZE, SIZE), np.float32)
    ticks = np.zeros_like(a)
    idx = np.arange(SIZE)
    period = int(rng.integers(5, 8))
    if side < 2:
        rows = slice(0, width) if side == 0 else slice(SIZE - width, SIZE)
        a[rows, :] = 1
        t = (idx % period) == 0
        ticks[rows, :] = t[None, :]
        ticks[(slice(width // 2, width) if side == 0 else slice(SIZE - width, SIZE - width // 2)), :] = 0
    else:
        cols = slice(0, width) if side == 2 else slice(SIZE - width, SIZE)
        a[:, cols] = 1
        t = (idx % period) == 0
        ticks[:, cols] = t[:, None]
        ticks[:, (slice(width // 2, width) if side == 2 else slice(SIZE - width, SIZE - width // 2))] = 0
    return a, [(a, 0.92), (ticks, 0.15)]


def add_cue(image: np.ndarray, lesion: np.ndarray | None, cue: str, rng: np.random.Generator,
            *, tries: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Draw cue ``cue`` on a uint8 image, away from the lesion; returns (image uint8, cue mask bool)."""
    if cue not in CUES:
        raise ValueError(f"unknown confounder cue {cue!r}; valid cues: {', '.join(CUES)}")
    keep_out = (ndi.binary_dilation(lesion, iterations=4) if lesion is not None
                else np.zeros((SIZE, SIZE), bool))
    draw = {"tag": _tag, "ink": _ink, "ruler": _ruler}[cue]
    for _ in range(tries):
        alpha, layers = draw(rng)
        if not (keep_out & (alpha > 0)).any():
            break
    else:
        alpha = alpha * ~keep_out
        layers = [(a * ~keep_out, v) for a, v in layers]
    img = image.astype(np.float32) / 255.0
    rgb = img.ndim == 3
    for a, v in layers:
        v = np.asarray(v, np.float32)
        if not rgb and v.ndim == 1:
            v = np.float32(v @ np.array([0.299, 0.587, 0.114], np.float32))
        if rgb and v.ndim == 0:
            v = np.full(3, v, np.float32)
        img = paint(img, a, v)
    return to_uint8(img), alpha > 0
