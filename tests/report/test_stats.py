"""bench.report.stats: bootstrap CIs, Holm correction, paired Wilcoxon."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from bench.report.stats import bootstrap_ci, holm, paired_wilcoxon


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
