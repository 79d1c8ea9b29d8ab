"""Statistics for the leaderboards: bootstrap confidence intervals (over images, or over trained models
and then images), Holm correction, paired Wilcoxon signed-rank tests and the Hodges-Lehmann estimate.

Pure functions on arrays; NaN marks an undefined value (an empty mask, an excluded image) and is
dropped, never imputed. Every function says how many values it actually used.

Two kinds of resampling:

- :func:`bootstrap_ci` resamples the valid values of one group (one trained model: its images).
- :func:`bootstrap_counts` / :func:`resampled_means` resample *observations shared by several columns*
  (one row = one image of one trained model, one column = one method): the same resampled rows for
  every column, so ranks and paired differences computed per resample stay paired. With more than one
  trained model (``units``) they resample at two levels: the models with replacement, then the images
  within each drawn model, because retrained models are not more images (a seed's models share its
  luck, and with several seeds pooling all (seed, image) pairs as independent makes the CI too narrow).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator
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
    mean_difference: float  # mean of a - b over those pairs
    hodges_lehmann: float  # median of the Walsh averages of the non-zero a - b: the direction the test sees


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

    Which side is larger: read ``hodges_lehmann``, not ``mean_difference``. The signed-rank test ranks
    the non-zero differences; the estimate that goes with it is the Hodges-Lehmann estimate of those
    same differences (:func:`hodges_lehmann`), whose sign agrees with the test's statistic. The mean can
    have the other sign when the differences are skewed (many small gains, a few large losses).

    Returns:
        ``PairedTest(statistic, pvalue, n_pairs, mean_difference, hodges_lehmann)``: ``mean_difference``
        is the mean of ``a - b`` over the finite pairs, ``hodges_lehmann`` the HL estimate of the non-zero
        ones (NaN when there are none; 0 would mean no direction).

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
    hl = hodges_lehmann(d[d != 0])
    if int(np.count_nonzero(d)) < min_pairs:
        return PairedTest(math.nan, math.nan, n, mean_diff, hl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _st.wilcoxon(a[ok], b[ok])
    return PairedTest(float(res.statistic), float(res.pvalue), n, mean_diff, hl)


def signed_rank_columns(diffs, *, min_pairs: int = 6) -> list[PairedTest]:
    """:func:`paired_wilcoxon` of each column of paired differences against 0, batched.

    Args:
        diffs: ``(n, k)`` differences (a - b), NaN = no pair.

    Returns:
        ``k`` :class:`PairedTest`, the same as ``paired_wilcoxon(diffs[:, j], 0)`` column by column: columns
        without NaN that take the same route through ``scipy.stats.wilcoxon``'s automatic choice (exact
        distribution when n <= 50 without zeros or tied magnitudes, else the normal approximation; a
        permutation test for n <= 13 with ties) go through one vectorised call; the rest one by one.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"signed_rank_columns expects (n, k) differences, got shape {d.shape}")
    n, k = d.shape
    out: list[PairedTest | None] = [None] * k
    batches: dict[str, list[int]] = {"exact": [], "asymptotic": []}
    for j in range(k):
        col = d[:, j]
        nonzero = col[col != 0]
        if not np.isfinite(col).all() or nonzero.size < min_pairs:
            out[j] = paired_wilcoxon(col, np.zeros(n), min_pairs=min_pairs)
        elif n <= 50 and nonzero.size == n and np.unique(np.abs(nonzero)).size == n:
            batches["exact"].append(j)
        elif n > 13:
            batches["asymptotic"].append(j)
        else:
            out[j] = paired_wilcoxon(col, np.zeros(n), min_pairs=min_pairs)  # permutation test
    for method, cols in batches.items():
        if not cols:
            continue
        sub = d[:, cols]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = _st.wilcoxon(sub, axis=0, method=method)
        stat, pval = np.atleast_1d(res.statistic), np.atleast_1d(res.pvalue)
        for i, j in enumerate(cols):
            col = sub[:, i]
            out[j] = PairedTest(float(stat[i]), float(pval[i]), n, float(col.mean()), hodges_lehmann(col[col != 0]))
    return out


# Up to this many values the Walsh averages are formed explicitly (n (n + 1) / 2 of them: 2 M, 16 MB).
_HL_EXPLICIT = 2000


def hodges_lehmann(values) -> float:
    """Hodges-Lehmann location estimate: the median of the Walsh averages ``(d_i + d_j) / 2``, ``i <= j``.

    Args:
        values: 1-D array-like (e.g. paired differences); NaN and +-inf are dropped first.

    Returns:
        The estimate (float); NaN when no finite value is left. With one value, that value. Exact for any
        size: up to 2,000 values the ``n (n + 1) / 2`` averages are formed; above, the two middle order
        statistics are found by bisection on their count (``O(n log n)`` memory and time per step).
    """
    d = np.asarray(values, dtype=np.float64).ravel()
    d = np.sort(d[np.isfinite(d)])
    n = d.size
    if n == 0:
        return math.nan
    if n <= _HL_EXPLICIT:
        i, j = np.triu_indices(n)
        return float(np.median((d[i] + d[j]) / 2.0))
    m = n * (n + 1) // 2
    lo_k, hi_k = (m - 1) // 2, m // 2
    return float((_walsh_order_statistic(d, lo_k) + _walsh_order_statistic(d, hi_k)) / 2.0)


def _walsh_bounds(d: np.ndarray, t: float) -> np.ndarray:
    """Per row ``i`` of the sorted ``d``: the first ``j`` with ``(d_i + d_j) / 2 > t`` (exact in floats).

    ``searchsorted`` on ``2 t - d_i`` is off only where rounding matters; a few corrective steps compare
    the averages themselves (rounded addition is monotone, so each row stays sorted).
    """
    n = d.size
    j = np.searchsorted(d, 2.0 * t - d, side="right")
    for _ in range(8):  # last included average too large: step left past its ties
        jm = np.clip(j - 1, 0, n - 1)
        bad = (j > 0) & ((d + d[jm]) / 2.0 > t)
        if not bad.any():
            break
        j = np.where(bad, np.searchsorted(d, d[jm], side="left"), j)
    for _ in range(8):  # first excluded average small enough: step right past its ties
        jc = np.clip(j, 0, n - 1)
        good = (j < n) & ((d + d[jc]) / 2.0 <= t)
        if not good.any():
            break
        j = np.where(good, np.searchsorted(d, d[jc], side="right"), j)
    return j


def _walsh_order_statistic(d: np.ndarray, k: int) -> float:
    """The ``k``-th smallest (0-based) Walsh average of the sorted 1-D ``d``, without forming them all."""
    rows = np.arange(d.size)

    def count_le(t: float) -> int:
        return int(np.maximum(_walsh_bounds(d, t) - rows, 0).sum())

    def smallest_above(t: float) -> float:
        j = np.maximum(_walsh_bounds(d, t), rows)
        ok = j < d.size
        return float(np.min((d[ok] + d[j[ok]]) / 2.0))

    lo, hi = float(d[0]) - 1.0, float(d[-1])  # count_le(lo) = 0 <= k < m = count_le(hi)
    while True:
        s = smallest_above(lo)  # exactly the answer once no other average lies in (lo, answer)
        if count_le(s) > k:
            return s
        mid = lo + (hi - lo) / 2.0
        if count_le(mid) > k:
            hi = mid
        else:
            lo = mid


# ----------------------------------------------------------------------------------------------------
# Resampling shared rows, at one or two levels


def _count_chunks(units, n_resamples: int, seed) -> Iterator[np.ndarray]:
    """Chunks ``(b, N)`` of :func:`bootstrap_counts` (bounded memory), in resample order."""
    codes = np.unique(np.asarray(units).ravel(), return_inverse=True)[1].ravel()
    n = codes.size
    rng = np.random.default_rng(seed)
    if n == 0:
        yield np.zeros((n_resamples, 0), dtype=np.int64)
        return
    sizes = np.bincount(codes)
    k = sizes.size
    order = np.argsort(codes, kind="stable")  # rows of unit u: order[starts[u]:starts[u] + sizes[u]]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    width = n if k == 1 else k * int(sizes.max())
    step = max(1, _CHUNK // width)
    for start in range(0, n_resamples, step):
        b = min(step, n_resamples - start)
        offset = (np.arange(b) * n)[:, None]
        if k == 1:
            flat = (offset + rng.integers(0, n, size=(b, n))).ravel()
        else:
            drawn = rng.integers(0, k, size=(b, k))  # models, with replacement
            size = sizes[drawn][..., None]  # (b, k, 1)
            pos = np.minimum((rng.random((b, k, int(sizes.max()))) * size).astype(np.int64), size - 1)
            keep = np.arange(int(sizes.max())) < size  # a drawn model brings exactly its own n images
            rows = order[starts[drawn][..., None] + pos]
            flat = (offset[..., None] + rows)[keep]
        yield np.bincount(flat, minlength=b * n).reshape(b, n)


def bootstrap_counts(units, *, n_resamples: int = 1000, seed=0) -> np.ndarray:
    """How often each observation is drawn in each bootstrap resample: ``(n_resamples, N)`` int64.

    Args:
        units: ``(N,)`` label of the trained model each observation (row) comes from (ints or strings).
            One distinct label: the ``N`` rows are resampled with replacement (``N`` draws). Several
            (``K``): two levels, ``K`` models drawn with replacement, then within each drawn model as many
            of its rows as it has, with replacement; a resample's size varies with the models drawn.
        n_resamples: resamples (rows of the result).
        seed: int, sequence of ints or ``numpy.random.Generator``; the same seed and ``units`` give the
            same counts.

    Returns:
        ``(n_resamples, N)`` counts; ``N == 0`` gives ``(n_resamples, 0)``.
    """
    return np.concatenate(list(_count_chunks(units, n_resamples, seed)), axis=0)


def resampled_means(values, units=None, *, n_resamples: int = 1000, seed=0) -> np.ndarray:
    """Means of the finite values of each column over bootstrap resamples of the rows.

    Every column sees the same resampled rows (paired), drawn as :func:`bootstrap_counts` draws them.

    Args:
        values: ``(N,)`` or ``(N, M)``: row = one observation (an image of one model), column = one
            series (a method, or a paired difference); NaN = undefined, skipped within each resample.
        units: ``(N,)`` model labels for two-level resampling; ``None``: one level (all rows one unit).
        n_resamples, seed: as in :func:`bootstrap_counts`.

    Returns:
        ``(n_resamples,)`` or ``(n_resamples, M)`` means; NaN where a resample holds no finite value of
        that column (a column with none at all is NaN throughout).
    """
    v = np.asarray(values, dtype=np.float64)
    one_d = v.ndim == 1
    v = v[:, None] if one_d else v
    if v.ndim != 2:
        raise ValueError(f"resampled_means expects (N,) or (N, M) values, got shape {v.shape}")
    units = np.zeros(v.shape[0], dtype=np.int64) if units is None else np.asarray(units).ravel()
    if units.size != v.shape[0]:
        raise ValueError(f"resampled_means: {units.size} unit labels for {v.shape[0]} rows")
    finite = np.isfinite(v)
    x = np.where(finite, v, 0.0)
    f = finite.astype(np.float64)
    out = np.empty((n_resamples, v.shape[1]))
    start = 0
    for counts in _count_chunks(units, n_resamples, seed):
        c = counts.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(c)] = (c @ x) / (c @ f)
        start += len(c)
    out[~np.isfinite(out)] = np.nan
    return out[:, 0] if one_d else out


def nan_quantiles(samples, q: float, *, method: str = "linear") -> np.ndarray:
    """Quantile ``q`` of each column of ``(B, M)`` samples, NaN ignored, vectorised over columns.

    ``method``: "linear" (interpolated, as ``numpy.quantile``'s default), "lower" or "higher" (the order
    statistic below / above the quantile's position ``q * (n - 1)``, as numpy's methods of those names).
    Returns ``(M,)``; NaN for a column without a finite value.
    """
    s = np.sort(np.asarray(samples, dtype=np.float64), axis=0)  # NaN sorts last
    n = np.isfinite(s).sum(axis=0)
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.ceil(pos).astype(np.int64)
    cols = np.arange(s.shape[1])
    if method == "lower":
        out = s[lo, cols]
    elif method == "higher":
        out = s[hi, cols]
    elif method == "linear":
        a, b = s[lo, cols], s[hi, cols]
        with np.errstate(invalid="ignore"):
            out = np.where(hi > lo, a + (b - a) * (pos - lo), a)
    else:
        raise ValueError(f"method must be 'linear', 'lower' or 'higher', got {method!r}")
    return np.where(n > 0, out, np.nan)


def rank_agreement(values, higher_is_better, *, min_methods: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Kendall's tau between the method rankings of every pair of metrics.

    Args:
        values: ``(M, K)`` floats, one row per method, one column per metric (e.g. each method's mean on one
            dataset); NaN = the method has no value for that metric.
        higher_is_better: ``(K,)`` bools, each metric's direction. A "lower is better" column is negated first,
            so two metrics that rank the methods the same way get tau = +1 whatever their directions, and
            opposite rankings -1.
        min_methods: pairs of metrics with fewer methods valid in both get NaN.

    Returns:
        ``(tau (K, K), n (K, K))``: ``scipy.stats.kendalltau`` (tau-b: ties in either ranking lower |tau|)
        over the methods finite in both columns, and how many methods that was. The diagonal is 1 for a
        column with two or more distinct values. NaN where fewer than ``min_methods`` methods are shared or a
        column is constant over them (no ranking to compare).

    Raises:
        ValueError: ``values`` is not 2-D or ``higher_is_better`` does not have one entry per column.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be (methods, metrics), got shape {v.shape}")
    hib = np.asarray(higher_is_better, dtype=bool).reshape(-1)
    if hib.size != v.shape[1]:
        raise ValueError(f"higher_is_better has {hib.size} entries for {v.shape[1]} metric columns")
    v = np.where(hib, v, -v)
    K = v.shape[1]
    tau = np.full((K, K), np.nan)
    n = np.zeros((K, K), dtype=np.int64)
    for a in range(K):
        for b in range(a, K):
            ok = np.isfinite(v[:, a]) & np.isfinite(v[:, b])
            n[a, b] = n[b, a] = int(ok.sum())
            x, y = v[ok, a], v[ok, b]
            if ok.sum() < min_methods or np.ptp(x) == 0 or np.ptp(y) == 0:
                continue
            tau[a, b] = tau[b, a] = float(_st.kendalltau(x, y).statistic)
    return tau, n
