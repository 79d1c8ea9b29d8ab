"""Statistics for the leaderboards: bootstrap confidence intervals, Holm correction, paired Wilcoxon.

Pure functions on 1-D arrays; NaN marks an undefined value (an empty mask, an excluded image) and is
dropped, never imputed. Every function says how many values it actually used.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import numpy as np
from scipy import stats as _st

# Largest index matrix drawn at once (resamples x values): bounds memory at ~32 MB of int64.
_CHUNK = 4_000_000
# Index matrices up to this size (8 MB of int64) are cached between calls with the same int seed.
_CACHE_LIMIT = 1_000_000


class BootstrapCI(NamedTuple):
    """Mean of the valid values and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n_valid: int


class PairedTest(NamedTuple):
    """Wilcoxon signed-rank test of paired values ``a`` against ``b``."""

    statistic: float
    pvalue: float
    n_pairs: int  # pairs where both values are finite
    mean_difference: float  # mean of a - b over those pairs (the sign says which is larger)


def bootstrap_means(values: np.ndarray, *, n_resamples: int = 1000, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples,)`` means of resamples (with replacement, same size) of the 1-D finite ``values``."""
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n == 0:
        return np.full(n_resamples, np.nan)
    out = np.empty(n_resamples)
    step = max(1, _CHUNK // n)
    for start in range(0, n_resamples, step):
        stop = min(n_resamples, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = v[idx].mean(axis=1)
    return out


@functools.lru_cache(maxsize=8)
def _cached_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    idx.setflags(write=False)
    return idx


def _seeded_means(v: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap means whose resampling depends only on ``(seed, len(v), n_resamples)``.

    Drawing the indices is most of the cost, so for small samples they are drawn once per
    ``(len(v), n_resamples, seed)`` and reused: a leaderboard's groups mostly share one size.
    """
    n = v.size
    if n * n_resamples <= _CACHE_LIMIT:
        return v[_cached_indices(n, n_resamples, int(seed))].mean(axis=1)
    return bootstrap_means(v, n_resamples=n_resamples, rng=np.random.default_rng(seed))


def bootstrap_ci(
    values,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> BootstrapCI:
    """Mean of ``values`` with a percentile bootstrap confidence interval.

    Args:
        values: 1-D array-like of floats (one per image); NaN and +-inf are dropped first.
        n_resamples: bootstrap resamples (each the size of the valid values, drawn with replacement).
        confidence: the interval's coverage in (0, 1); 0.95 gives the 2.5th and 97.5th percentiles
            of the resampled means (the percentile method, as CheXlocalize's 1000-replicate CIs).
        seed: an int seed or a ``numpy.random.Generator``; the same seed gives the same interval. With an
            int seed the resampling depends only on the seed and the number of valid values, so groups
            of one size share their resample indices (fast; each interval is still a valid bootstrap).

    Returns:
        ``BootstrapCI(mean, low, high, n_valid)``. No valid value: all three NaN, ``n_valid`` 0.
        One valid value: ``low == high == mean`` (a single image has no spread to resample).

    Raises:
        ValueError: ``values`` is not 1-D, ``confidence`` not in (0, 1) or ``n_resamples`` < 1.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"bootstrap_ci expects 1-D values, got shape {v.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return BootstrapCI(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n == 1 or np.all(v == v[0]):
        return BootstrapCI(mean, mean, mean, n)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        means = _seeded_means(v, n_resamples, int(seed))
    else:
        means = bootstrap_means(v, n_resamples=n_resamples, rng=np.random.default_rng(seed))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # Guard against float rounding putting the mean a hair outside [low, high].
    return BootstrapCI(mean, float(min(low, mean)), float(max(high, mean)), n)


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, family-wise error rate).

    The ``m`` finite p-values are sorted ascending; the i-th smallest (1-based) is multiplied by
    ``m - i + 1``, the running maximum is taken so the adjusted values keep the order of the raw ones,
    and they are capped at 1. NaN entries are not part of the family (``m`` counts finite values only)
    and stay NaN. Returns a float64 array in the input order.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p[ok][(p[ok] < 0) | (p[ok] > 1)][:5]}")
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def paired_wilcoxon(a, b, *, min_pairs: int = 6) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of ``a`` against ``b`` over pairs where both are finite.

    ``scipy.stats.wilcoxon(a, b)`` with its defaults (``zero_method="wilcox"``: zero differences are
    dropped; exact distribution for small samples without ties, normal approximation otherwise).

    The p-value is NaN (test not run) when fewer than ``min_pairs`` pairs have a non-zero difference,
    including when all differences are zero. The default 6 is the smallest sample at which the exact
    two-sided test can reach p < 0.05 (n = 5 gives at best p = 2/32 = 0.0625).

    Returns:
        ``PairedTest(statistic, pvalue, n_pairs, mean_difference)``; ``mean_difference`` is the mean of
        ``a - b`` over the finite pairs (NaN when there are none), so its sign says which side is larger.

    Raises:
        ValueError: ``a`` and ``b`` have different shapes.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_wilcoxon needs pairs: a has {a.size} values, b has {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = int(d.size)
    mean_diff = float(d.mean()) if n else math.nan
    if int(np.count_nonzero(d)) < min_pairs:
        return PairedTest(math.nan, math.nan, n, mean_diff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _st.wilcoxon(a[ok], b[ok])
    return PairedTest(float(res.statistic), float(res.pvalue), n, mean_diff)
