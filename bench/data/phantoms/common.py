"""Drawing helpers shared by the phantoms (numpy, scipy and scikit-image only).

Every phantom draws at ``SIZE`` x ``SIZE`` pixels in float32 (grey in [0, 1], or RGB (H, W, 3)),
then :func:`to_uint8`. A lesion is painted through an opacity map ``alpha`` that is exactly zero
outside the lesion, and its reference mask is ``alpha > 0``: whatever the lesion changes lies
inside its mask by construction (the property the composite control checks on a trained model).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

SIZE = 128  # raw phantom resolution in pixels


@dataclass
class Sample:
    """One drawn image. ``image``: uint8 (H, W) or (H, W, 3); ``mask``: bool (H, W) or None."""

    image: np.ndarray
    mask: np.ndarray | None
    info: dict = field(default_factory=dict)  # latent values (for docs and debugging; not written)


def streams(rng: np.random.Generator) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Three independent generators from one: background, lesion, finish (noise, gain, artefacts).

    Every phantom draws its background and its finishing from their own streams, so two images with
    the same generator but different classes are identical outside their lesions (a tested property).
    """
    seeds = rng.integers(0, 2**63 - 1, size=3)
    return tuple(np.random.default_rng(int(s)) for s in seeds)  # type: ignore[return-value]


def image_rng(seed: int, key: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` of phantom ``key``: independent of every other image."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode()), int(index)])


@lru_cache(maxsize=4)
def grid(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(yy, xx)``, float32 (size, size)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def smooth_field(rng: np.random.Generator, cells: int, size: int = SIZE) -> np.ndarray:
    """Smooth random field with about ``cells`` blobs per side, zero mean, std about 1, float32."""
    small = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    big = np.asarray(Image.fromarray(small, mode="F").resize((size, size), Image.BICUBIC))
    return (big - big.mean()) / (big.std() + 1e-6)


def star_alpha(
    cy: float,
    cx: float,
    radius: float,
    *,
    harmonics: np.ndarray | None = None,
    phases: np.ndarray | None = None,
    spikes: tuple[np.ndarray, np.ndarray, float] | None = None,
    aspect: float = 1.0,
    angle: float = 0.0,
    edge: float = 1.5,
    size: int = SIZE,
) -> np.ndarray:
    """Opacity of a star-shaped region: 1 inside, a ramp of ``edge`` px just inside the border, 0 outside.

    Border ``R(t) = radius * (1 + sum_k harmonics[k] cos((k+2) t + phases[k]))`` in a frame stretched
    by ``aspect`` and rotated by ``angle``; ``spikes = (angles, lengths, width)`` adds thin radial
    extensions (spiculation) of ``lengths`` times ``radius``.
    """
    reach = radius * (1 + (np.abs(harmonics).sum() if harmonics is not None else 0.0)
                      + (float(np.max(spikes[1])) if spikes is not None and len(spikes[1]) else 0.0))
    reach = reach * max(aspect, 1.0) + 2
    y0, y1 = max(0, int(cy - reach)), min(size, int(np.ceil(cy + reach)) + 1)
    x0, x1 = max(0, int(cx - reach)), min(size, int(np.ceil(cx + reach)) + 1)
    out = np.zeros((size, size), np.float32)
    if y0 >= y1 or x0 >= x1:
        return out
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = (dx * ca + dy * sa) / np.float32(aspect)
    v = -dx * sa + dy * ca
    r = np.hypot(u, v)
    border = np.ones_like(r)
    if harmonics is not None or spikes is not None:
        t = np.arctan2(v, u)
        if harmonics is not None:
            for k, (a, p) in enumerate(zip(harmonics, phases)):
                border += np.float32(a) * np.cos((k + 2) * t + np.float32(p))
        if spikes is not None:
            ang, length, width = spikes
            for a0, ln in zip(ang, length):
                d = np.remainder(t - np.float32(a0) + np.pi, 2 * np.pi) - np.pi  # wrapped angle
                border = np.maximum(border, 1 + np.float32(ln) * np.exp(-0.5 * (d / np.float32(width)) ** 2))
    border *= np.float32(radius)
    out[y0:y1, x0:x1] = np.clip((border - r) / np.float32(edge), 0.0, 1.0)
    return out


def gauss_spots(
    ys: np.ndarray, xs: np.ndarray, sigmas: np.ndarray, amps: np.ndarray, size: int = SIZE
) -> np.ndarray:
    """Sum of isotropic Gaussian spots of peak ``amps``, float32 (size, size).

    Many spots of one width (lines, granules) are splatted onto the grid and blurred once.
    """
    ys, xs = np.asarray(ys, np.float64), np.asarray(xs, np.float64)
    sigmas, amps = np.broadcast_to(sigmas, ys.shape), np.broadcast_to(amps, ys.shape)
    out = np.zeros((size, size), np.float32)
    if len(ys) > 12 and np.ptp(sigmas) == 0:
        ok = (ys > -1) & (ys < size) & (xs > -1) & (xs < size)
        y, x, a = ys[ok], xs[ok], amps[ok]
        y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
        fy, fx = y - y0, x - x0
        big = np.zeros((size + 2, size + 2), np.float64)
        for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            np.add.at(big, (y0 + dy + 1, x0 + dx + 1), a * w)
        s = float(sigmas[0])
        blurred = ndi.gaussian_filter(big, s, truncate=3.0)[1:-1, 1:-1]
        return (blurred * (2 * np.pi * s * s)).astype(np.float32)
    for y, x, s, a in zip(ys, xs, sigmas, amps):
        h = int(np.ceil(3 * s)) + 1
        y0, y1 = max(0, int(y) - h), min(size, int(y) + h + 1)
        x0, x1 = max(0, int(x) - h), min(size, int(x) + h + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        gy = np.exp(-0.5 * ((np.arange(y0, y1) - y) / s) ** 2)
        gx = np.exp(-0.5 * ((np.arange(x0, x1) - x) / s) ** 2)
        out[y0:y1, x0:x1] += a * np.outer(gy, gx).astype(np.float32)
    return out


def random_point_in(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float] | None:
    """A uniformly chosen pixel centre of a boolean mask, or None if the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    i = rng.integers(len(ys))
    return float(ys[i]), float(xs[i])


def random_points_in(mask: np.ndarray, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pixel centres drawn uniformly (with replacement) from a boolean mask; empty if none."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0 or n <= 0:
        return np.zeros(0), np.zeros(0)
    i = rng.integers(len(ys), size=n)
    return ys[i].astype(np.float64), xs[i].astype(np.float64)


def erode(mask: np.ndarray, r: float) -> np.ndarray:
    """Pixels of ``mask`` at least ``r`` px from its outside (a distance-transform erosion)."""
    return ndi.distance_transform_edt(mask) >= r


def _bbox(alpha: np.ndarray) -> tuple[slice, slice] | None:
    rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    if len(rows) == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def paint(img: np.ndarray, alpha: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    """``img * (1 - alpha) + value * alpha``, computed only in the box where alpha > 0.

    ``value``: a scalar, a colour (3,), or an image of ``img``'s shape (grey (H, W) values are
    broadcast over RGB). Returns a new array; ``img`` is not modified.
    """
    out = np.array(img, dtype=np.float32, copy=True)
    box = _bbox(alpha)
    if box is None:
        return out
    a = alpha[box]
    v = np.asarray(value, np.float32)
    if v.ndim >= 2:
        v = v[box]
    if out.ndim == 3:
        a = a[..., None]
        if v.ndim == 2:
            v = v[..., None]
    out[box] = out[box] * (1 - a) + v * a
    return out


def colour(rgb, field_: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) image of constant colour ``rgb`` (optionally times a (H, W) field)."""
    c = np.asarray(rgb, np.float32)
    if field_ is None:
        return np.broadcast_to(c, (SIZE, SIZE, 3)).astype(np.float32)
    return field_[..., None] * c


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def lesion_mask(alpha: np.ndarray) -> np.ndarray:
    """The reference mask of a lesion drawn with opacity ``alpha``: every pixel it touches."""
    return alpha > 0
