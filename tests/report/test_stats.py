"""bench.report.stats: bootstrap CIs (one and two levels), Holm correction, paired Wilcoxon, Hodges-Lehmann."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from bench.report.stats import (
    bootstrap_ci, bootstrap_counts, hodges_lehmann, holm, nan_quantiles, paired_wilcoxon, resampled_means,
    signed_rank_columns,
)


def test_bootstrap_ci_contains_the_mean_and_is_seeded():
    v = np.random.default_rng(1).normal(0.5, 0.2, 300)
    a = bootstrap_ci(v, seed=3)
    assert a.low < a.mean < a.high
    assert a.mean == pytest.approx(v.mean())
    assert a.n_valid == 300
    assert bootstrap_ci(v, seed=3) == a  # same seed, same interval
    assert bootstrap_ci(v, seed=4) != a
    # percentile CI of a mean: close to mean +- 1.96 * standard error for a large normal sample
    se = v.std(ddof=1) / math.sqrt(len(v))
    assert a.high - a.low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bootstrap_ci_drops_nan_and_handles_tiny_samples():
    ci = bootstrap_ci([1.0, np.nan, 0.0, np.inf, 1.0, 0.0], n_resamples=500, seed=0)
    assert ci.n_valid == 4 and ci.mean == 0.5
    assert 0.0 <= ci.low <= 0.5 <= ci.high <= 1.0
    empty = bootstrap_ci([np.nan, np.nan])
    assert empty.n_valid == 0 and all(math.isnan(x) for x in empty[:3])
    assert tuple(bootstrap_ci([0.7])) == (0.7, 0.7, 0.7, 1)
    const = bootstrap_ci([0.2, 0.2, 0.2])
    assert const.low == const.mean == const.high == pytest.approx(0.2) and const.n_valid == 3


def test_bootstrap_ci_narrows_with_lower_confidence_and_validates():
    v = np.random.default_rng(0).random(100)
    wide, narrow = bootstrap_ci(v, confidence=0.99), bootstrap_ci(v, confidence=0.5)
    assert wide.low <= narrow.low and narrow.high <= wide.high
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(v, confidence=1.5)
    with pytest.raises(ValueError, match="1-D"):
        bootstrap_ci(np.zeros((2, 2)))


def test_holm_hand_computed():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    out = holm([0.01, np.nan, 0.04])  # NaN is not part of the family: m = 2
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])
    assert math.isnan(out[1])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert holm([]).size == 0
    with pytest.raises(ValueError, match="p-values"):
        holm([0.1, 1.2])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_holm_properties(ps):
    p = np.asarray(ps)
    adj = holm(p)
    assert np.all(adj >= p - 1e-12) and np.all(adj <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-12)  # keeps the order of the raw p-values
    assert np.all(adj <= np.minimum(1, p * len(p)) + 1e-12)  # never worse than Bonferroni


def test_paired_wilcoxon_matches_scipy_on_finite_pairs():
    rng = np.random.default_rng(0)
    a = rng.normal(0.6, 0.1, 40)
    b = a - rng.normal(0.05, 0.05, 40)
    a[3], b[7] = np.nan, np.nan
    res = paired_wilcoxon(a, b)
    ok = np.isfinite(a) & np.isfinite(b)
    ref = sst.wilcoxon(a[ok], b[ok])
    assert res.n_pairs == 38
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.pvalue == pytest.approx(ref.pvalue)
    assert res.mean_difference == pytest.approx(np.mean(a[ok] - b[ok])) and res.mean_difference > 0


def test_paired_wilcoxon_undefined_cases():
    same = paired_wilcoxon([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert math.isnan(same.pvalue) and same.n_pairs == 7 and same.mean_difference == 0
    few = paired_wilcoxon([1, 2, 3, 4, 5.0], [0, 0, 0, 0, 0.0])  # 5 pairs: p cannot reach 0.05
    assert math.isnan(few.pvalue) and few.mean_difference == 3
    six = paired_wilcoxon([1, 2, 3, 4, 5, 6.0], [0] * 6)
    assert six.pvalue == pytest.approx(sst.wilcoxon([1, 2, 3, 4, 5, 6.0]).pvalue)
    with pytest.raises(ValueError, match="pairs"):
        paired_wilcoxon([1.0, 2.0], [1.0])


# --- issue 16: two-level bootstrap, Hodges-Lehmann ---------------------------------------------------


def _walsh_median(d):
    d = np.asarray(d, dtype=np.float64)
    i, j = np.triu_indices(d.size)
    return float(np.median((d[i] + d[j]) / 2))


def test_hodges_lehmann_is_the_median_of_the_walsh_averages():
    # Walsh averages of [1, 2, 10]: 1, 1.5, 5.5, 2, 6, 10 -> median (2 + 5.5) / 2
    assert hodges_lehmann([1.0, 2.0, 10.0]) == 3.75
    assert hodges_lehmann([4.0]) == 4.0
    assert math.isnan(hodges_lehmann([])) and math.isnan(hodges_lehmann([np.nan]))
    assert hodges_lehmann([1.0, np.nan, 2.0, 10.0]) == 3.75  # NaN dropped
    # skewed: the mean is negative, the HL estimate positive
    d = np.r_[np.full(20, 0.02), -1.0, -1.0]
    assert d.mean() < 0 < hodges_lehmann(d)
    # the large-sample path (no n^2 array) gives the same number
    big = np.random.default_rng(0).standard_t(2, 2600)
    assert hodges_lehmann(big) == pytest.approx(_walsh_median(big), abs=1e-12)
    ones = np.r_[np.ones(1500), np.zeros(900), -np.ones(300)]  # ties (a pointing game's differences)
    assert hodges_lehmann(ones) == _walsh_median(ones)


def test_paired_wilcoxon_reports_the_hodges_lehmann_estimate_of_the_nonzero_differences():
    a = np.r_[np.full(26, 0.5) + 0.02 + 0.001 * np.arange(26), np.full(4, 0.5) - 0.5 - 0.01 * np.arange(4)]
    res = paired_wilcoxon(a, np.full(30, 0.5))
    assert res.mean_difference < 0 < res.hodges_lehmann
    assert res.pvalue < 0.05
    binary = paired_wilcoxon([1.0] * 8 + [0.0] * 20 + [1.0, 0.0], [0.0] * 8 + [0.0] * 20 + [0.0, 1.0])
    assert binary.hodges_lehmann == 1.0  # zeros are dropped, as the test drops them


def test_bootstrap_counts_one_unit_resamples_observations():
    c = bootstrap_counts(np.zeros(7, int), n_resamples=50, seed=1)
    assert c.shape == (50, 7) and (c.sum(axis=1) == 7).all()
    np.testing.assert_array_equal(c, bootstrap_counts(np.zeros(7, int), n_resamples=50, seed=1))
    assert bootstrap_counts(np.zeros(0, int), n_resamples=3, seed=0).shape == (3, 0)


def test_bootstrap_counts_two_levels_draw_whole_models_then_their_images():
    units = np.repeat([0, 1, 2], [4, 10, 6])  # three models of unequal size
    c = bootstrap_counts(units, n_resamples=400, seed=0)
    assert c.shape == (400, 20)
    per_model = np.stack([c[:, units == k].sum(axis=1) for k in range(3)], axis=1)
    # each draw of a model brings exactly its own number of images
    sizes = np.array([4, 10, 6])
    assert np.all(per_model % sizes == 0)
    assert (per_model // sizes).sum(axis=1).tolist() == [3] * 400
    # a model is left out of a resample with probability (2/3)^3 ~ 0.30
    assert 0.2 < (per_model[:, 0] == 0).mean() < 0.4


def test_resampled_means_two_levels_are_wider_than_pooled():
    rng = np.random.default_rng(0)
    units = np.repeat([0, 1, 2], 40)
    v = np.r_[0.3, 0.5, 0.7][units] + rng.normal(0, 0.05, 120)
    v[5] = np.nan  # undefined values are skipped in every resample
    two = resampled_means(v[:, None], units, n_resamples=2000, seed=0)[:, 0]
    one = resampled_means(v[:, None], None, n_resamples=2000, seed=0)[:, 0]
    assert two.shape == one.shape == (2000,)
    lo2, hi2 = np.quantile(two, [0.025, 0.975])
    lo1, hi1 = np.quantile(one, [0.025, 0.975])
    assert hi1 - lo1 < 0.08 and lo2 < 0.35 and hi2 > 0.65  # the models' spread, not just the images'
    assert np.isnan(resampled_means(np.full((3, 1), np.nan), None, n_resamples=4, seed=0)).all()


def test_nan_quantiles_match_numpy_column_by_column():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(101, 5))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 3] = np.nan  # no finite value
    x[1:, 4] = np.nan  # one
    for method in ("linear", "lower", "higher"):
        for q in (0.025, 0.5, 0.975):
            ref = [np.nanquantile(c, q, method=method) if np.isfinite(c).any() else np.nan for c in x.T]
            np.testing.assert_allclose(nan_quantiles(x, q, method=method), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="method"):
        nan_quantiles(x, 0.5, method="nearest")


def test_signed_rank_columns_equal_paired_wilcoxon_column_by_column():
    rng = np.random.default_rng(3)
    cols = []
    for n in (10, 30, 80):
        cols += [rng.normal(0.1, 1, n), np.round(rng.normal(0.2, 1, n), 1),  # continuous; tied magnitudes
                 np.r_[np.zeros(3), rng.normal(0.5, 1, n - 3)],  # zeros
                 rng.choice([-1.0, 0.0, 1.0], n, p=[0.2, 0.4, 0.4]),  # a pointing game's differences
                 np.r_[np.nan, rng.normal(0.3, 1, n - 1)], np.zeros(n), np.r_[np.ones(4), np.zeros(n - 4)]]
        d = np.stack(cols[-7:], axis=1)
        got = signed_rank_columns(d)
        for j in range(d.shape[1]):
            ref = paired_wilcoxon(d[:, j], np.zeros(n))
            np.testing.assert_allclose(np.array(got[j], dtype=float), np.array(ref, dtype=float), rtol=1e-10,
                                       equal_nan=True, err_msg=f"n={n}, column {j}")
