"""Properties every registered localisation metric must have (scikit-learn's test_common style):
a new metric is tested the moment it is registered."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bench.metrics import METRICS, auprc, localisation_metrics

LOC = localisation_metrics()


def _masks(rng, n=6, h=9, w=8, max_frac=0.45):
    """Non-empty, non-full masks covering at most ``max_frac`` of the image."""
    m = np.zeros((n, h, w), bool)
    for i in range(n):
        r0, c0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        r1, c1 = r0 + rng.integers(1, 4), c0 + rng.integers(1, 4)
        m[i, r0:r1, c0:c1] = True
        m[i] |= rng.random((h, w)) < 0.05
        assert 0 < m[i].mean() <= max_frac
    return m


@pytest.mark.parametrize("name", LOC)
def test_map_equal_to_mask_scores_one(name):
    m = _masks(np.random.default_rng(0))
    for dtype in (bool, np.float32, np.float64, np.uint8):
        v, d = METRICS.get(name)(m.astype(dtype), m, return_degenerate=True)
        np.testing.assert_array_equal(v, 1.0)
        assert not d.any()


@pytest.mark.parametrize("name", LOC)
def test_complement_of_mask_scores_zero(name):
    m = _masks(np.random.default_rng(1))
    v = METRICS.get(name)((~m).astype(np.float32), m)
    if name == "auprc":  # all mask pixels tied at the bottom: precision = area fraction
        np.testing.assert_allclose(v, m.mean(axis=(1, 2)), rtol=1e-12)
    else:
        np.testing.assert_array_equal(v, 0.0)


def test_relevance_rank_accuracy_complement_of_a_large_mask():
    m = np.zeros((1, 4, 4), bool)
    m[0, :3] = True  # K = 12 of N = 16: the 4 outside pixels, then 8 of the 12 tied mask pixels
    v = METRICS.get("relevance_rank_accuracy")((~m).astype(float), m)
    assert v[0] == pytest.approx(max(0, 2 * 12 - 16) / 12)


@pytest.mark.parametrize("name", LOC)
def test_one_image_does_not_depend_on_the_rest_of_the_batch_or_its_order(name, monkeypatch):
    rng = np.random.default_rng(2)
    s = rng.standard_normal((23, 9, 8)).astype(np.float32)
    s[3] = np.round(s[3])  # ties
    s[5] = 0.0  # degenerate
    s[7] = np.maximum(s[7], 0)  # non-negative fast path beside signed rows
    s[9, 0, 0] = np.nan
    m = _masks(rng, n=23)
    m[11] = False  # empty
    fn = METRICS.get(name)
    ref, ref_d = fn(s, m, return_degenerate=True)
    alone = [fn(s[i], m[i]) for i in range(len(s))]
    np.testing.assert_array_equal(ref, alone)
    perm = rng.permutation(len(s))
    v, d = fn(s[perm], m[perm], return_degenerate=True)
    np.testing.assert_array_equal(v, ref[perm])
    np.testing.assert_array_equal(d, ref_d[perm])
    # other chunkings and thread counts give the same values
    import bench.metrics._maps as maps

    monkeypatch.setattr(maps, "CHUNK_PIXELS", 9 * 8 * 4)
    np.testing.assert_array_equal(fn(s, m), ref)
    monkeypatch.setattr(maps, "threads", lambda: 1)
    np.testing.assert_array_equal(fn(s, m), ref)


@pytest.mark.parametrize("name", LOC)
@pytest.mark.parametrize("factor", [2.0, 0.5, 1024.0, 2.0**-20])
def test_positive_rescaling_changes_nothing(name, factor):
    rng = np.random.default_rng(3)
    s = rng.standard_normal((8, 9, 8))
    s[1] = np.round(s[1])
    m = _masks(rng, n=8)
    fn = METRICS.get(name)
    for dtype in (np.float32, np.float64):
        sd = s.astype(dtype)
        np.testing.assert_array_equal(fn(sd * dtype(factor), m), fn(sd, m))


@pytest.mark.parametrize("name", ["pointing_game", "relevance_rank_accuracy", "auprc"])
def test_rank_metrics_are_invariant_to_increasing_transforms(name):
    rng = np.random.default_rng(4)
    s = rng.random((8, 9, 8))
    m = _masks(rng, n=8)
    fn = METRICS.get(name)
    np.testing.assert_allclose(fn(np.exp(3 * s) - 7, m), fn(s, m), rtol=1e-12)


# --------------------------------------------------------------------------------- hypothesis

DTYPES = st.sampled_from(["bool", "uint8", "int16", "int64", "float16", "float32", "float64"])


def _elements(dtype: np.dtype):
    if dtype.kind == "f":
        return st.floats(allow_nan=True, allow_infinity=True, width=dtype.itemsize * 8)
    if dtype.kind == "b":
        return st.booleans()
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


@st.composite
def inputs(draw):
    """Mostly valid pairs; sometimes wrong ndim, batch, a map larger than its mask, or mask values."""
    batched = draw(st.booleans())
    b = draw(st.integers(0, 3)) if batched else None
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    h, w = draw(st.integers(1, H)), draw(st.integers(1, W))
    shape_s = (h, w) if b is None else (b, h, w)
    shape_m = (H, W) if b is None else (b, H, W)
    if draw(st.integers(0, 4)) == 0:  # an invalid shape pair, or valid by chance
        shape_s = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=4)))
        shape_m = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=4)))
    dtype = np.dtype(draw(DTYPES))
    s = draw(hnp.arrays(dtype, shape_s, elements=_elements(dtype)))
    mdtype = np.dtype(draw(st.sampled_from(["bool", "bool", "uint8", "float32"])))
    mvalues = st.sampled_from([0, 1, 2]) if draw(st.integers(0, 5)) == 0 else st.sampled_from([0, 1])
    m = draw(hnp.arrays(mdtype, shape_m, elements=st.booleans() if mdtype == bool else mvalues))
    return s, m


def _documented_valid(s: np.ndarray, m: np.ndarray) -> bool:
    if s.ndim not in (2, 3) or m.ndim != s.ndim:
        return False
    if s.ndim == 3 and s.shape[0] != m.shape[0]:
        return False
    sh, mh = s.shape[-2:], m.shape[-2:]
    if min(sh) == 0 or min(mh) == 0 or sh[0] > mh[0] or sh[1] > mh[1]:
        return False
    return bool(((m == 0) | (m == 1)).all())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=inputs(), name=st.sampled_from(LOC))
def test_any_input_gives_a_valid_result_or_the_documented_value_error(data, name):
    s, m = data
    s0, m0 = s.copy(), m.copy()
    try:
        v, d = METRICS.get(name)(s, m, return_degenerate=True)
    except ValueError as err:
        assert not _documented_valid(s, m)
        assert str(s.shape) in str(err) and str(m.shape) in str(err)
        return
    assert _documented_valid(s, m)
    np.testing.assert_array_equal(s, s0)
    np.testing.assert_array_equal(m, m0)
    assert v.dtype == np.float64 and d.dtype == bool
    assert v.shape == d.shape == (() if s.ndim == 2 else (s.shape[0],))
    empty = ~(m.reshape(-1, *m.shape[-2:]) != 0).any(axis=(1, 2))
    v1, d1 = v.reshape(-1), d.reshape(-1)
    assert (np.isnan(v1) == empty).all()
    assert ((v1[~empty] >= 0) & (v1[~empty] <= 1)).all()
    assert (v1[d1] == 0).all() and not d1[empty].any()


@settings(max_examples=60, deadline=None)
@given(
    s=hnp.arrays(np.float64, (2, 3, 4), elements=st.floats(-1e6, 1e6)),
    m=hnp.arrays(np.bool_, (3, 3, 4)),
    name=st.sampled_from(LOC),
)
def test_batch_mismatch_is_a_value_error_naming_both_shapes(s, m, name):
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(3, 3, 4\)"):
        METRICS.get(name)(s, m)


@settings(max_examples=100, deadline=None)
@given(
    s=hnp.arrays(np.float32, (2, 4, 5), elements=st.sampled_from([0.0, -0.0, 0.25, 1.0, -3.5, 7.0, 1e-30, 3e38])),
    m=hnp.arrays(np.bool_, (2, 4, 5)),
)
def test_auprc_matches_sklearn_on_heavily_tied_maps(s, m):
    from sklearn.metrics import average_precision_score

    from bench.metrics import degenerate_maps

    v = auprc(torch.from_numpy(s), m)
    for i in range(2):
        if not m[i].any():
            assert np.isnan(v[i])
        elif degenerate_maps(s[i]):
            assert v[i] == 0.0
        else:
            assert v[i] == pytest.approx(average_precision_score(m[i].ravel(), s[i].ravel()), abs=1e-12)


def test_localisation_scores_equals_separate_calls():
    from bench.metrics import localisation_scores

    rng = np.random.default_rng(6)
    s = rng.standard_normal((30, 5, 4)).astype(np.float32)  # upsampled to the masks' 10 x 8
    s[2] = 1.0
    s[4, 0, 0] = np.inf
    s[6] = -np.abs(s[6])  # no positive energy
    s[8] = np.round(s[8])
    m = rng.random((30, 10, 8)) < 0.2
    m[3] = False
    got = localisation_scores(s, m, tolerance=1.5, threshold=0.3)
    assert list(got) == ["pointing_game", "energy_pointing_game", "relevance_rank_accuracy", "iou", "auprc"]
    options = {"pointing_game": {"tolerance": 1.5}, "iou": {"threshold": 0.3}}
    for name, (v, d) in got.items():
        ref_v, ref_d = METRICS.get(name)(s, m, return_degenerate=True, **options.get(name, {}))
        np.testing.assert_array_equal(v, ref_v)
        np.testing.assert_array_equal(d, ref_d)
    assert list(localisation_scores(s, m, ["auprc"])) == ["auprc"]
    with pytest.raises(ValueError, match="unknown"):
        localisation_scores(s, m, ["dice"])
