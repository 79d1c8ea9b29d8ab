"""Localisation metrics: hand-computed values, undefined inputs, errors, and agreement with the
libraries whose definitions they follow (scikit-learn's average precision, scikit-image's Otsu)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from skimage.filters import threshold_otsu
from sklearn.metrics import average_precision_score

from bench.metrics import (
    METRICS,
    auprc,
    degenerate_maps,
    energy_pointing_game,
    iou,
    localisation_metrics,
    pointing_game,
    relevance_rank_accuracy,
)

LOC = localisation_metrics()


def test_registry_lists_the_five_localisation_metrics_with_meta():
    assert LOC == ["auprc", "energy_pointing_game", "iou", "pointing_game", "relevance_rank_accuracy"]
    for name in LOC:
        meta = METRICS.meta(name)
        assert meta["direction"] == "higher" and meta["kind"] == "localisation" and meta["needs_model"] is False
    assert METRICS.meta("deletion")["direction"] == "lower"
    assert METRICS.meta("insertion")["direction"] == "higher"
    assert METRICS.meta("insertion")["needs_model"] is True


# ---------------------------------------------------------------------------------------- hand values


def test_pointing_game_first_maximum_row_major():
    s = np.array([[0, 5, 0], [0, 0, 0], [0, 0, 5]], dtype=np.float32)  # two maxima: (0,1) is first
    assert pointing_game(s, s == 5) == 1.0
    only_second = np.zeros((3, 3), bool)
    only_second[2, 2] = True
    assert pointing_game(s, only_second) == 0.0
    assert pointing_game(s, only_second).shape == ()
    assert pointing_game(s, only_second).dtype == np.float64


@pytest.mark.parametrize(
    ("tolerance", "hit"),
    [(0.0, 0.0), (2.0, 0.0), (2.236, 0.0), (math.sqrt(5), 1.0), (2.24, 1.0), (3.0, 1.0), (math.inf, 1.0)],
)
def test_pointing_game_tolerance_edge(tolerance, hit):
    s = np.zeros((5, 5), np.float32)
    s[0, 1] = 1.0
    m = np.zeros((5, 5), bool)
    m[2, 2] = True  # distance sqrt(1 + 4) = sqrt(5) from the point
    assert pointing_game(s, m, tolerance=tolerance) == hit


@pytest.mark.parametrize("tolerance", [3.0, 5.0])
def test_pointing_game_distance_exactly_tolerance_is_hit(tolerance):
    s = np.zeros((8, 8), np.float32)
    s[0, 0] = 1.0
    m = np.zeros((8, 8), bool)
    if tolerance == 3.0:
        m[0, 3] = True  # distance 3
    else:
        m[3, 4] = True  # distance 5 (3-4-5)
    assert pointing_game(s, m, tolerance=tolerance) == 1.0
    assert pointing_game(s, m, tolerance=np.nextafter(tolerance, 0) - 1e-6) == 0.0


def test_pointing_game_large_tolerance_dense_path_matches_brute_force():
    rng = np.random.default_rng(3)
    s = rng.random((20, 12, 9)).astype(np.float32)
    m = np.zeros((20, 12, 9), bool)
    for i in range(20):
        m[i, rng.integers(12), rng.integers(9)] = True
    for tol in (1.0, 1.5, 4.0, 7.5, 9.0, 20.0):
        got = pointing_game(s, m, tolerance=tol)
        for i in range(20):
            r, c = np.unravel_index(np.argmax(s[i]), s[i].shape)
            rr, cc = np.nonzero(m[i])
            assert got[i] == float((np.hypot(rr - r, cc - c) <= tol).any())


def test_pointing_game_rejects_negative_or_nan_tolerance():
    s, m = np.ones((2, 2)), np.ones((2, 2), bool)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="tolerance"):
            pointing_game(s, m, tolerance=bad)


def test_energy_pointing_game_hand_value():
    s = np.array([[1.0, -2.0], [3.0, 0.0]])
    m = np.array([[1, 0], [0, 1]], bool)
    assert energy_pointing_game(s, m) == pytest.approx(1 / 4)  # positive mass 1+3, inside 1+0


def test_energy_pointing_game_no_positive_value_is_degenerate():
    s = np.array([[-1.0, -2.0], [-3.0, -0.5]])
    v, d = energy_pointing_game(s, np.eye(2, dtype=bool), return_degenerate=True)
    assert v == 0.0 and d


def test_relevance_rank_accuracy_hand_value_and_tie_rule():
    s = np.array([[4.0, 3.0, 3.0, 1.0]])
    m = np.array([[1, 0, 1, 0]], bool)
    # K = 2, threshold 3: pixel 0 is in; one place left, shared by the two 3s (one in the mask).
    assert relevance_rank_accuracy(s, m) == pytest.approx((1 + 0.5) / 2)
    m2 = np.array([[0, 1, 1, 0]], bool)
    assert relevance_rank_accuracy(np.array([[4.0, 3.0, 3.0, 1.0]]), m2) == pytest.approx(0.5)


def _rra_expected_over_tie_orders(s: np.ndarray, m: np.ndarray) -> float:
    """Average over every order of the pixels consistent with their values (ties broken all ways)."""
    s, m = s.ravel(), m.ravel()
    k = int(m.sum())
    total, count = 0.0, 0
    for perm in itertools.permutations(range(s.size)):
        if all(s[perm[i]] >= s[perm[i + 1]] for i in range(s.size - 1)):
            total += m[list(perm[:k])].mean()
            count += 1
    return total / count


def test_relevance_rank_accuracy_equals_expectation_over_random_tie_breaking():
    rng = np.random.default_rng(0)
    for _ in range(25):
        s = rng.integers(0, 3, size=(2, 3)).astype(float)
        m = rng.random((2, 3)) < 0.5
        if not m.any() or s.min() == s.max():
            continue
        assert relevance_rank_accuracy(s, m) == pytest.approx(_rra_expected_over_tie_orders(s, m))


def test_iou_numeric_threshold_hand_value():
    s = np.array([[0.0, 1.0], [2.0, 4.0]])  # normalised: 0, .25, .5, 1
    m = np.array([[0, 0], [0, 1]], bool)
    assert iou(s, m, threshold=0.5) == pytest.approx(1 / 2)  # pred {.5, 1}
    assert iou(s, m, threshold=0.25) == pytest.approx(1 / 3)  # >= is inclusive
    assert iou(s, m, threshold=1.01) == 0.0


def test_iou_otsu_hand_value():
    s = np.array([[0.0, 1.0], [2.0, 4.0]], dtype=np.float32)
    # Otsu's best split of {0, .25, .5 | 1} puts the threshold at the centre of the bin of 0.5,
    # 128.5 / 256, so only the pixel at 1.0 is kept.
    m = np.array([[0, 0], [1, 1]], bool)
    assert iou(s, m) == pytest.approx(1 / 2)
    x = (s - s.min()) / (s.max() - s.min())
    assert threshold_otsu(x) == np.float32(128.5 / 256)


def test_iou_rejects_unknown_threshold():
    with pytest.raises(ValueError, match="threshold"):
        iou(np.ones((2, 2)), np.ones((2, 2), bool), threshold="mean")
    with pytest.raises(ValueError, match="threshold"):
        iou(np.ones((2, 2)), np.ones((2, 2), bool), threshold=float("nan"))


def test_auprc_hand_values():
    m = np.array([[1, 0, 1, 0]], bool)
    assert auprc(np.array([[0.9, 0.8, 0.7, 0.6]]), m) == pytest.approx((1 + 2 / 3) / 2)
    # ties enter together: threshold 0.5 admits a positive and a negative at once
    assert auprc(np.array([[0.9, 0.5, 0.5, 0.1]]), np.array([[1, 1, 0, 0]], bool)) == pytest.approx(
        (1 + 2 / 3) / 2
    )


# --------------------------------------------------------------------------- agreement with libraries


def _maps_with_ties(rng, n, h, w, kind):
    s = rng.random((n, h, w)).astype(np.float32)
    if kind == "ties":
        s = np.round(s * 3) / 3
    elif kind == "relu":
        s = np.maximum(s - 0.5, 0).astype(np.float32)
        s[:, 0, 0] = -0.0  # -0.0 ties with 0.0
    elif kind == "signed":
        s = ((s - 0.5) * 7).astype(np.float32)
    elif kind == "huge":
        s = (s - 0.5) * np.float32(3e38) * np.float32(2)  # float32 key range and max - min overflow
    elif kind == "float64":
        s = (s - 0.3).astype(np.float64) * 1e-3
    elif kind == "float64_wide":
        s = (s - 0.5).astype(np.float64) * 1e300
        s[:, 0, 0] = 1e-300
    return s


KINDS = ["plain", "ties", "relu", "signed", "huge", "float64", "float64_wide"]


@pytest.mark.parametrize("kind", KINDS)
def test_auprc_agrees_with_sklearn(kind):
    rng = np.random.default_rng(1)
    s = _maps_with_ties(rng, 12, 9, 7, kind)
    m = rng.random(s.shape) < 0.3
    m[:, 1, 1] = True
    got = auprc(s, m)
    with np.errstate(invalid="ignore", over="ignore"):  # sklearn's own checks on huge values
        ref = [average_precision_score(m[i].ravel(), s[i].ravel()) for i in range(len(s))]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_iou_otsu_binarisation_agrees_with_skimage(kind):
    rng = np.random.default_rng(2)
    s = _maps_with_ties(rng, 12, 11, 10, kind)
    m = rng.random(s.shape) < 0.3
    m[:, 1, 1] = True
    got = iou(s, m)
    for i in range(len(s)):
        x = s[i]
        with np.errstate(over="ignore"):
            rng_ = x.max() - x.min()
        if not np.isfinite(rng_):
            x = x.astype(np.float64)
        x = (x - x.min()) / (x.max() - x.min())
        pred = x > threshold_otsu(x)
        assert got[i] == (pred & m[i]).sum() / (pred | m[i]).sum()


def test_otsu_thresholds_equal_skimage_on_many_maps():
    from bench.metrics import otsu_thresholds

    rng = np.random.default_rng(5)
    for i in range(200):
        x = rng.random(64 + i).astype(np.float32) ** rng.uniform(0.2, 5)
        if i % 3 == 0:
            x = np.round(x * rng.integers(2, 40)) / 40
        x = np.concatenate([x, [0, 1]]).astype(np.float32)
        x = (x - x.min()) / (x.max() - x.min())
        assert otsu_thresholds(x[None])[0] == threshold_otsu(x)


# -------------------------------------------------------------------------- undefined and degenerate


@pytest.mark.parametrize("name", LOC)
def test_empty_mask_is_nan_never_a_hit_never_flagged(name):
    fn = METRICS.get(name)
    s = np.random.default_rng(0).random((3, 4, 4))
    m = np.zeros((3, 4, 4), bool)
    m[1, 2, 2] = True
    v, d = fn(s, m, return_degenerate=True)
    assert np.isnan(v[0]) and np.isnan(v[2]) and np.isfinite(v[1])
    assert not d.any()
    assert np.isnan(fn(np.zeros((4, 4)), np.zeros((4, 4), bool)))  # degenerate and empty: NaN


@pytest.mark.parametrize("name", LOC)
@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4)), np.full((4, 4), 3.0), np.full((4, 4), np.nan), "nan_pixel", "inf_pixel", "neg_inf"],
)
def test_degenerate_maps_score_zero_and_are_flagged(name, bad):
    fn = METRICS.get(name)
    if isinstance(bad, str):
        s = np.random.default_rng(0).random((4, 4))
        s[1, 1] = {"nan_pixel": np.nan, "inf_pixel": np.inf, "neg_inf": -np.inf}[bad]
    else:
        s = bad
    m = np.zeros((4, 4), bool)
    m[1, 1] = True
    v, d = fn(s, m, return_degenerate=True)
    assert v == 0.0 and d.dtype == bool and bool(d)


def test_degenerate_maps_helper():
    s = np.random.default_rng(0).random((4, 3, 3))
    s[1] = 2.0
    s[2, 0, 0] = np.nan
    s[3, 1, 1] = -np.inf
    assert degenerate_maps(s).tolist() == [False, True, True, True]
    assert degenerate_maps(np.zeros((3, 3))) == np.True_
    assert degenerate_maps(np.zeros((0, 3, 3))).shape == (0,)


def test_constant_low_resolution_map_stays_degenerate_after_upsampling():
    v, d = iou(np.full((2, 3, 3), 0.1), np.ones((2, 9, 9), bool), return_degenerate=True)
    assert (v == 0).all() and d.all()


# ------------------------------------------------------------------------------------ shapes, errors


@pytest.mark.parametrize("name", LOC)
def test_shape_errors_name_both_shapes(name):
    fn = METRICS.get(name)
    cases = [
        (np.ones((2, 4, 4)), np.ones((3, 4, 4), bool)),  # batch mismatch
        (np.ones((4, 4)), np.ones((2, 4, 4), bool)),  # ndim mismatch
        (np.ones((2, 8, 8)), np.ones((2, 4, 4), bool)),  # map larger than mask
        (np.ones((2, 1, 4, 4)), np.ones((2, 1, 4, 4), bool)),  # 4-D
        (np.ones(4), np.ones(4, bool)),  # 1-D
        (np.ones((2, 4, 4)), np.full((2, 4, 4), 2)),  # mask values other than 0/1
        (np.ones((2, 4, 4)), np.full((2, 4, 4), 0.5)),
    ]
    for s, m in cases:
        with pytest.raises(ValueError) as err:
            fn(s, m)
        assert str(s.shape) in str(err.value) and str(m.shape) in str(err.value)


def test_numeric_01_masks_equal_boolean_masks():
    rng = np.random.default_rng(0)
    s = rng.random((3, 5, 5))
    m = rng.random((3, 5, 5)) < 0.4
    for name in LOC:
        fn = METRICS.get(name)
        for mm in (m.astype(np.uint8), m.astype(float), torch.from_numpy(m).int()):
            np.testing.assert_array_equal(fn(s, mm), fn(s, m))


def test_upsampling_is_bilinear_align_corners_false():
    rng = np.random.default_rng(0)
    small = rng.random((3, 4, 5)).astype(np.float32)
    m = rng.random((3, 16, 20)) < 0.3
    up = torch.nn.functional.interpolate(
        torch.from_numpy(small)[:, None], size=(16, 20), mode="bilinear", align_corners=False
    )[:, 0].numpy()
    for name in LOC:
        fn = METRICS.get(name)
        np.testing.assert_array_equal(fn(small, m), fn(up, m))


def test_tensors_and_lists_accepted_and_inputs_never_modified():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((3, 6, 6)).astype(np.float32)
    s[0, 0, 0] = -0.0
    m = rng.random((3, 6, 6)) < 0.3
    s0, m0 = s.copy(), m.copy()
    ts, tm = torch.from_numpy(s.copy()), torch.from_numpy(m.copy())
    for name in LOC:
        fn = METRICS.get(name)
        ref = fn(s, m)
        np.testing.assert_array_equal(fn(ts, tm), ref)
        np.testing.assert_array_equal(fn(s.tolist(), m.tolist()), ref)
        np.testing.assert_array_equal(fn(ts.to(torch.float16), tm), fn(s.astype(np.float16), m))
    np.testing.assert_array_equal(s, s0)
    np.testing.assert_array_equal(m, m0)
    assert torch.equal(ts, torch.from_numpy(s0)) and torch.equal(tm, torch.from_numpy(m0))


def test_empty_batch_gives_empty_result():
    for name in LOC:
        v, d = METRICS.get(name)(np.zeros((0, 4, 4)), np.zeros((0, 4, 4), bool), return_degenerate=True)
        assert v.shape == (0,) and d.shape == (0,) and v.dtype == np.float64
