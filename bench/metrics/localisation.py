"""Localisation metrics: does an explanation map point at the lesion mask?

All five share one calling convention (what the sweep relies on)::

    values = fn(saliency, mask, **options)                          # float64 (B,) or ()
    values, degenerate = fn(saliency, mask, return_degenerate=True, **options)

- ``saliency``: array, tensor (any device) or list, ``(H, W)`` or ``(B, H, W)``, any real values.
  A map smaller than its mask is first upsampled bilinearly (``align_corners=False``) to the mask's
  size; a map larger than its mask is an error.
- ``mask``: ``(H, W)`` or ``(B, H, W)`` (same number of dimensions and batch size as ``saliency``),
  bool or 0/1.
- Result: float64, shape ``(B,)``, or ``()`` for a single ``(H, W)`` map. Every metric here is in
  [0, 1] and higher is better.
- Empty mask: NaN (undefined, never a hit and never 0).
- Degenerate map (constant, all zero, any NaN or infinity; see :func:`degenerate_maps`): 0.0, the
  worst value, and ``degenerate`` is True there (only where the value is defined, so NaN entries
  are never flagged). ``energy_pointing_game`` also flags maps with no positive value.
- Wrong shapes, batch sizes or mask values: ``ValueError`` naming both shapes.
- Inputs are never modified. Work is vectorised over the batch in cache-sized chunks on
  ``torch.get_num_threads()`` worker threads (numpy releases the GIL); values never depend on the
  chunking. :func:`localisation_scores` computes several metrics in one pass, with identical values.

Sources: ../shared/REFERENCE.md section 3 (TorchRay and CheXlocalize pointing game, Score-CAM /
Quantus relevance mass, Arras et al. relevance rank accuracy, CheXlocalize IoU, Arun et al. AUPRC).
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import numpy as np

from bench.metrics._maps import degenerate_maps, evaluate, evaluate_many

__all__ = [
    "pointing_game",
    "energy_pointing_game",
    "relevance_rank_accuracy",
    "iou",
    "auprc",
    "localisation_scores",
    "degenerate_maps",
    "otsu_thresholds",
]

OTSU_BINS = 256


# --------------------------------------------------------------------------------------------------
# pointing game


def pointing_game(saliency, mask, *, tolerance: float = 0.0, return_degenerate: bool = False):
    """Pointing game: is the map's maximum on (or near) the lesion?

    Definition: the point is the map's first maximum in row-major order (``argmax`` of the map
    upsampled to the mask's size); the score is 1.0 if some mask pixel lies within Euclidean
    distance ``<= tolerance`` pixels of it (pixel centres; a distance exactly equal to the
    tolerance is a hit, decided in exact arithmetic with 1e-9 px^2 of slack so that
    ``tolerance=math.sqrt(5)`` reaches a pixel at (1, 2)), else 0.0. ``tolerance=0`` asks whether the
    point itself is in the mask (CheXlocalize); TorchRay uses 15 px (with a strict ``<``).

    Direction: higher is better; the mean over images is the hit rate.
    Shapes: see the module docstring; ``tolerance`` is a float >= 0 (``inf`` allowed).
    Undefined: empty mask -> NaN; degenerate map -> 0.0 (flagged).
    Invariant under any strictly increasing transform of the map (ties aside).
    """
    return evaluate(
        saliency, mask, _pointing_kernel(tolerance), name="pointing_game", return_degenerate=return_degenerate
    )


def _max_sq_distance(tol: float) -> float:
    """The largest integer squared distance d2 with sqrt(d2) <= tol; inf for tol=inf.

    Exact rational arithmetic, with 1e-9 px^2 of slack so that a tolerance computed in floating point
    (``math.sqrt(5)`` is a hair below sqrt(5)) still counts a pixel at exactly that distance. Squared
    distances are integers, so the slack admits no farther pixel below tolerances of ~30,000 px.
    """
    if math.isinf(tol):
        return math.inf
    return math.floor(Fraction(tol) ** 2 + Fraction(1, 10**9))


def _pointing_kernel(tolerance: float):
    tol = float(tolerance)
    if not tol >= 0.0:  # also rejects NaN
        raise ValueError(f"pointing_game: tolerance must be >= 0 pixels, got {tolerance!r}")
    r2 = _max_sq_distance(tol)

    def kernel(s, m, area, mn, mx, size, ws):
        H, W = size
        n = s.shape[0]
        idx = np.argmax(s, axis=1)  # first maximum, row-major
        rows = np.arange(n)
        if r2 == 0:
            hit = m[rows, idx]
        elif r2 >= (H - 1) ** 2 + (W - 1) ** 2:
            hit = np.ones(n, dtype=bool)  # every pixel is within reach; masks here are non-empty
        else:
            r2i = int(r2)
            r0, c0 = idx // W, idx % W
            t = math.isqrt(r2i)
            dy, dx = np.meshgrid(np.arange(-t, t + 1), np.arange(-t, t + 1), indexing="ij")
            keep = dy * dy + dx * dx <= r2i
            dy, dx = dy[keep], dx[keep]
            if dy.size <= (H * W) // 4:  # gather a disc around each point
                rr, cc = r0[:, None] + dy[None], c0[:, None] + dx[None]
                inside = (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
                flat = np.where(inside, rr * W + cc, 0)
                hit = (m[rows[:, None], flat] & inside).any(axis=1)
            else:  # dense squared distances to every pixel
                dy2 = (np.arange(H)[None] - r0[:, None]) ** 2
                dx2 = (np.arange(W)[None] - c0[:, None]) ** 2
                d2 = dy2[:, :, None] + dx2[:, None, :]
                hit = ((d2 <= r2i) & m.reshape(n, H, W)).any(axis=(1, 2))
        return hit.astype(np.float64), None

    return kernel


# --------------------------------------------------------------------------------------------------
# energy-based pointing game


def energy_pointing_game(saliency, mask, *, return_degenerate: bool = False):
    """Energy-based pointing game (relevance mass accuracy): the share of positive saliency on the lesion.

    Definition: ``sum(max(s, 0) inside the mask) / sum(max(s, 0))`` over the map upsampled to the
    mask's size (Wang et al., Score-CAM, 2020; Quantus ``RelevanceMassAccuracy``). Sums are
    accumulated in float64.

    Direction: higher is better; 1.0 = all positive evidence on the lesion.
    Undefined: empty mask -> NaN; degenerate map -> 0.0 (flagged), and so is a map with no positive
    value at all (the ratio would be 0/0).
    Invariant under positive rescaling of the map (exactly for powers of two).
    """
    return evaluate(
        saliency, mask, _energy_kernel, name="energy_pointing_game", return_degenerate=return_degenerate
    )


def _energy_kernel(s, m, area, mn, mx, size, ws):
    p = np.maximum(s, 0, out=ws.get("p", s.shape, s.dtype))
    total = p.sum(axis=1, dtype=np.float64)
    np.multiply(p, m, out=p)
    inside = p.sum(axis=1, dtype=np.float64)
    over = ~np.isfinite(total)
    if over.any():  # float64 overflow (values near 1e308): rescale those rows by their maximum
        q = np.maximum(s[over], 0) / mx[over, None]
        total[over] = q.sum(axis=1)
        inside[over] = (q * m[over]).sum(axis=1)
    none = total == 0
    return inside / np.where(none, 1.0, total), none


# --------------------------------------------------------------------------------------------------
# relevance rank accuracy


def relevance_rank_accuracy(saliency, mask, *, return_degenerate: bool = False):
    """Relevance rank accuracy: the fraction of the K most salient pixels that lie in the mask, K = mask area.

    Definition (Arras et al., "CLEVR-XAI", 2022; Quantus ``RelevanceRankAccuracy``): with K the
    number of mask pixels and ``t`` the K-th largest value of the map (upsampled to the mask's
    size), ``(|{s > t} & mask| + (K - |{s > t}|) * |{s == t} & mask| / |{s == t}|) / K``.

    Ties: the pixels tied at the threshold ``t`` share the remaining ``K - |{s > t}|`` places
    equally, i.e. the score is the expected value under a uniformly random order of tied pixels.
    Deterministic, independent of pixel position, and neither optimistic nor pessimistic.

    Direction: higher is better. A map equal to its mask scores 1.0; its complement scores
    ``max(0, 2K - N) / K`` (0.0 whenever the mask covers at most half the image).
    Undefined: empty mask -> NaN; degenerate map -> 0.0 (flagged).
    Invariant under any strictly increasing transform of the map.
    """
    return evaluate(
        saliency, mask, _rank_kernel, name="relevance_rank_accuracy", return_degenerate=return_degenerate
    )


def _rank_kernel(s, m, area, mn, mx, size, ws):
    n, N = s.shape
    kth = N - area
    t = np.empty(n, dtype=s.dtype)
    n_gt = np.empty(n, dtype=np.int64)
    n_eq = np.empty(n, dtype=np.int64)
    row = ws.get("row", (N,), s.dtype)
    for i in range(n):  # per-row selection (introselect, O(N)) on a copy in cache; K varies per row
        row[...] = s[i]
        row.partition(kth[i])
        ti = t[i] = row[kth[i]]
        n_gt[i] = np.count_nonzero(row[kth[i] :] > ti)  # everything above the K-th largest is here
        n_eq[i] = np.count_nonzero(row == ti)
    inside = s[m]  # mask pixels' values, row after row
    t_in = np.repeat(t, area)
    starts = np.cumsum(area) - area
    n_gt_in = np.add.reduceat(inside > t_in, starts, dtype=np.int64)
    n_eq_in = np.add.reduceat(inside == t_in, starts, dtype=np.int64)
    return (n_gt_in + (area - n_gt) * (n_eq_in / n_eq)) / area, None


# --------------------------------------------------------------------------------------------------
# IoU with Otsu's threshold


def iou(saliency, mask, *, threshold: str | float = "otsu", return_degenerate: bool = False):
    """Intersection over union of the binarised map and the mask.

    Definition (CheXlocalize, Saporta et al. 2022): the map, upsampled to the mask's size, is
    min-max normalised to [0, 1] (``x = (s - min) / (max - min)`` in the working precision, float64
    where that range overflows float32) and binarised: ``threshold="otsu"`` keeps pixels ``x > t``
    with ``t = skimage.filters.threshold_otsu(x)`` (256 bins; computed batched here with the same
    arithmetic, see :func:`otsu_thresholds`); a float ``f`` keeps pixels ``x >= f`` (e.g. 0.15 for the
    common "15 % of the maximum" rule; a threshold tuned on test masks inflates results). Score:
    ``|pred & mask| / |pred | mask|``.

    Direction: higher is better.
    Undefined: empty mask -> NaN; degenerate map -> 0.0 (flagged).
    Invariant under positive rescaling and shifting of the map (exactly for powers of two).
    """
    return evaluate(saliency, mask, _iou_kernel(threshold), name="iou", return_degenerate=return_degenerate)


def _iou_kernel(threshold: str | float):
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise ValueError(f"iou: threshold must be 'otsu' or a number, got {threshold!r}")
        thr = None
    else:
        thr = float(threshold)
        if not math.isfinite(thr):
            raise ValueError(f"iou: a numeric threshold must be finite, got {threshold!r}")

    def kernel(s, m, area, mn, mx, size, ws):
        x = _normalise(s, mn, mx, ws)
        pred = ws.get("pred", s.shape, bool)
        if thr is None:
            np.greater(x, otsu_thresholds(x, ws)[:, None], out=pred)
        else:
            np.greater_equal(x, np.float64(thr), out=pred)  # exact, not after rounding thr to float32
        n_pred = np.count_nonzero(pred, axis=1)
        inter = np.count_nonzero(np.logical_and(pred, m, out=pred), axis=1)
        return inter / (n_pred + area - inter), None

    return kernel


def _normalise(s: np.ndarray, mn: np.ndarray, mx: np.ndarray, ws=None) -> np.ndarray:
    """Min-max normalise rows of a finite, non-constant map to [0, 1] (exactly 0 and 1 at the ends)."""
    with np.errstate(over="ignore"):
        rng = mx - mn
    if np.isfinite(rng).all():
        x = np.empty_like(s) if ws is None else ws.get("x", s.shape, s.dtype)
        np.subtract(s, mn[:, None], out=x)
        np.divide(x, rng[:, None], out=x)
        return x
    mn64, mx64 = mn.astype(np.float64), mx.astype(np.float64)
    return (s.astype(np.float64) - mn64[:, None]) / (mx64 - mn64)[:, None]


def otsu_thresholds(x: np.ndarray, ws=None) -> np.ndarray:
    """Otsu's threshold of each row of ``x`` (n, N), rows min-max normalised (min 0, max 1).

    Reproduces ``skimage.filters.threshold_otsu(row)`` (scikit-image 0.2x) for such rows: a
    256-bin histogram over [0, 1] (bin ``min(floor(256 x), 255)``, as ``numpy.histogram``), counts
    as float32, bin centres in the row's dtype, and the same cumulative-sum formulas evaluated in the
    same order, so the threshold (a bin centre) is the same value. Returns (n,) in ``x.dtype``.
    """
    n, N = x.shape
    b = np.empty(x.shape, dtype=np.intp) if ws is None else ws.get("bins", x.shape, np.intp)
    np.multiply(x, OTSU_BINS, out=b, casting="unsafe")  # in x's dtype (exact), truncated = floor
    counts = np.zeros((n, OTSU_BINS + 1), dtype=np.intp)
    for i in range(n):  # per row: cheaper than offsetting all rows into one bincount
        counts[i] = np.bincount(b[i], minlength=OTSU_BINS + 1)
    counts[:, -2] += counts[:, -1]  # x == 1 falls in the last bin, as in numpy.histogram
    counts = counts[:, :-1].astype(np.float32)
    centres = ((np.arange(OTSU_BINS) + 0.5) / OTSU_BINS).astype(x.dtype)  # exact (2i+1)/512
    weight1 = np.cumsum(counts, axis=1)
    weight2 = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    mean1 = np.cumsum(counts * centres, axis=1) / weight1
    mean2 = (np.cumsum((counts * centres)[:, ::-1], axis=1) / weight2[:, ::-1])[:, ::-1]
    variance12 = weight1[:, :-1] * weight2[:, 1:] * (mean1[:, :-1] - mean2[:, 1:]) ** 2
    return centres[np.argmax(variance12, axis=1)]


# --------------------------------------------------------------------------------------------------
# AUPRC


def auprc(saliency, mask, *, return_degenerate: bool = False):
    """Area under the precision-recall curve of pixel scores against the mask (average precision).

    Definition (Arun et al., Radiology: AI 2021): every pixel's saliency (upsampled to the mask's
    size) is a score for "inside the lesion"; the result is average precision exactly as
    ``sklearn.metrics.average_precision_score(mask.ravel(), saliency.ravel())`` defines it:
    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score values as thresholds (tied scores enter
    together; no interpolation). Equivalently the mean, over mask pixels, of the precision of the
    set ``{s >= that pixel's score}``. Computed with one sort per map.

    Direction: higher is better; a map equal to its mask scores 1.0, its complement (and the chance
    level of a random map) the mask's area fraction.
    Undefined: empty mask -> NaN; degenerate map -> 0.0 (flagged; sklearn would give the area
    fraction for a constant map).
    Invariant under any strictly increasing transform of the map.
    """
    return evaluate(saliency, mask, _ap_kernel, name="auprc", return_degenerate=return_degenerate)


def _order_keys(s: np.ndarray, out: np.ndarray | None = None, sign: np.ndarray | None = None) -> np.ndarray:
    """Signed integers that order like the float values of ``s`` (``-0.0`` and ``0.0`` share a key)."""
    it = np.int32 if s.dtype == np.float32 else np.int64
    bits = s.view(it)
    sign = np.right_shift(bits, np.iinfo(it).bits - 1, out=sign)  # 0 or -1
    key = np.bitwise_and(bits, np.iinfo(it).max, out=out)
    np.bitwise_xor(key, sign, out=key)
    np.subtract(key, sign, out=key)  # two's-complement negation where the sign bit was set
    return key


def _sorted_packed(s: np.ndarray, m: np.ndarray, mn: np.ndarray, mx: np.ndarray, ws) -> np.ndarray:
    """Per row, ascending sort of ``(value key << 1) | (not in mask)``.

    The low bit carries the label, so one value-only sort (fast SIMD ``np.sort``, in place) orders
    pixels by saliency and, within a tie, puts mask pixels first. Keys are 32-bit for float32 maps
    whose key range fits 31 bits (always true for non-negative maps), else 64-bit.
    """
    if s.dtype == np.float32:
        packed = ws.get("packed", s.shape, np.uint32)
        key = packed.view(np.int32)
        if (mn >= 0).all():  # non-negative floats: the raw bits order correctly; << 1 drops -0.0's sign
            np.left_shift(s.view(np.int32), 1, out=key)
        else:
            kmin = _order_keys(mn.astype(np.float32)).astype(np.int64)
            kmax = _order_keys(mx.astype(np.float32)).astype(np.int64)
            if (kmax - kmin < 2**31).all():
                _order_keys(s, out=key, sign=ws.get("sign", s.shape, np.int32))
                key -= kmin.astype(np.int32)[:, None]  # now in [0, 2**31)
                key <<= 1
            else:
                packed = key = _order_keys(s).astype(np.int64) << 1
    else:
        key = _order_keys(np.ascontiguousarray(s, dtype=np.float64))
        kmin = key.min(axis=1)
        span = [int(a) - int(b) for a, b in zip(key.max(axis=1), kmin)]
        if max(span) >= 2**62:  # astronomically wide float64 rows: exact dense ranks instead
            key = np.stack([np.unique(row, return_inverse=True)[1].reshape(-1) for row in s]).astype(np.int64)
        else:
            key -= kmin[:, None]
        key <<= 1
        packed = key
    key |= 1
    key ^= m  # label bit: 0 inside the mask, so mask pixels sort first within a tie
    packed.sort(axis=1)
    return packed


def _ap_kernel(s, m, area, mn, mx, size, ws):
    n, N = s.shape
    srt = _sorted_packed(s, m, mn, mx, ws)
    flat = srt.reshape(-1)
    inside = ws.get("inside", srt.shape, bool)
    np.bitwise_and(srt, 1, out=inside, casting="unsafe")
    np.logical_not(inside, out=inside)
    pos = np.flatnonzero(inside)  # mask pixels in ascending score order, row after row
    starts = np.cumsum(area) - area  # where each row's mask pixels begin in ``pos``
    ordinal = np.arange(pos.size)
    before = ordinal - np.repeat(starts, area)  # mask pixels earlier in the same row
    row_end = np.repeat((np.arange(n) + 1) * N, area)  # flat index just past the row
    # A tie group's mask pixels come first in it, so a group starts at its first mask pixel unless
    # that pixel is the first of its row or follows a smaller value (same value: xor >> 1 == 0).
    first = ((flat[pos] ^ flat[pos - 1]) >> 1) != 0
    first[starts] = True
    if first.all():  # no ties among mask pixels
        start, below = pos, before
    else:
        lead = np.maximum.accumulate(np.where(first, ordinal, 0))
        start, below = pos[lead], before[lead]
    # precision of {s >= v} for each mask pixel's value v: |mask & s >= v| / |s >= v|
    precision = (np.repeat(area, area) - below) / (row_end - start)
    return np.add.reduceat(precision, starts) / area, None


# --------------------------------------------------------------------------------------------------
# all at once


def localisation_scores(
    saliency, mask, metrics=None, *, tolerance: float = 0.0, threshold: str | float = "otsu"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Several localisation metrics in one pass over the data: ``{name: (values, degenerate)}``.

    ``metrics``: names among ``pointing_game``, ``energy_pointing_game``,
    ``relevance_rank_accuracy``, ``iou``, ``auprc`` (default: all five); ``tolerance`` goes to the
    pointing game, ``threshold`` to IoU. The values and flags are identical to separate calls with
    ``return_degenerate=True``; validation, upsampling and per-map statistics are done once and each
    chunk is scored by every metric while it is in cache, so this is the fast path for a sweep.
    """
    builders = {
        "pointing_game": lambda: _pointing_kernel(tolerance),
        "energy_pointing_game": lambda: _energy_kernel,
        "relevance_rank_accuracy": lambda: _rank_kernel,
        "iou": lambda: _iou_kernel(threshold),
        "auprc": lambda: _ap_kernel,
    }
    names = list(builders) if metrics is None else list(metrics)
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise ValueError(f"localisation_scores: unknown metrics {unknown}; valid: {sorted(builders)}")
    return evaluate_many(saliency, mask, {n: builders[n]() for n in names}, name="localisation_scores")


if sys.byteorder != "little":  # the bit tricks above assume IEEE-754 little-endian views
    raise ImportError("bench.metrics.localisation requires a little-endian platform")
