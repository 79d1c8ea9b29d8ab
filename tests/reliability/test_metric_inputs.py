"""Maps and metrics under any input: every localisation metric either returns a valid result (values in
[0, 1], NaN exactly where the mask is empty, degenerate maps 0.0 and flagged) or raises the documented
``ValueError`` — never another exception, never a value outside [0, 1], never a hang.

Hypothesis draws shapes (0 to 4 dimensions, batch mismatches, maps larger or smaller than masks),
dtypes (bool, ints, float16/32/64, bfloat16 tensors, complex, objects, strings), values (NaN, +-inf,
constant, huge) and containers (numpy, torch, lists), valid and invalid alike.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bench.metrics import METRICS, deletion_insertion, localisation_metrics

LOC = localisation_metrics()
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))

NUMERIC = ["bool", "uint8", "int8", "uint16", "int16", "int32", "uint64", "int64", "float16", "float32", "float64"]


def _elements(dtype: np.dtype, special: bool):
    if dtype.kind == "f":
        base = st.floats(allow_nan=special, allow_infinity=special, width=dtype.itemsize * 8)
        return st.one_of(base, st.sampled_from([0.0, 1.0, -1.0]))  # ties and constant maps
    if dtype.kind == "b":
        return st.booleans()
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


@st.composite
def any_inputs(draw):
    """``(saliency, mask, options, note)``: anything a caller could pass, valid or not."""
    valid_shapes = draw(st.booleans())
    b = draw(st.integers(0, 3))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    if valid_shapes:
        h, w = draw(st.integers(1, H)), draw(st.integers(1, W))
        batched = draw(st.booleans())
        shape_s, shape_m = ((b, h, w), (b, H, W)) if batched else ((h, w), (H, W))
    else:
        def shape():
            return tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))

        shape_s, shape_m = shape(), shape()
    s_dtype = np.dtype(draw(st.sampled_from(NUMERIC + ["complex64", "object", "U1"])))
    if s_dtype.kind in "OU":
        s = np.full(shape_s, "x", dtype=s_dtype)
    elif s_dtype.kind == "c":
        s = np.zeros(shape_s, dtype=s_dtype)
    else:
        s = draw(hnp.arrays(s_dtype, shape_s, elements=_elements(s_dtype, special=True)))
        if draw(st.booleans()) and s.size:
            s[...] = s.flat[0]  # a constant map (NaN, inf and 0 included)
    m_kind = draw(st.sampled_from(["bool", "01", "01float", "other values", "nan"]))
    if m_kind == "bool":
        m = draw(hnp.arrays(np.bool_, shape_m))
    elif m_kind == "01":
        m = draw(hnp.arrays(np.dtype(draw(st.sampled_from(["uint8", "int64"]))), shape_m, elements=st.integers(0, 1)))
    elif m_kind == "01float":
        m = draw(hnp.arrays(np.float32, shape_m, elements=st.sampled_from([0.0, -0.0, 1.0])))
    elif m_kind == "other values":
        m = draw(hnp.arrays(np.uint8, shape_m, elements=st.sampled_from([0, 1, 2, 255])))
    else:
        m = draw(hnp.arrays(np.float64, shape_m, elements=st.sampled_from([0.0, 1.0, np.nan])))
    container = draw(st.sampled_from(["numpy", "torch", "list"]))
    if container == "torch" and s.dtype.kind in "biuf" and s.dtype not in (np.uint16, np.uint64):
        if s.dtype == np.float32 and draw(st.booleans()):
            s = torch.from_numpy(s).to(torch.bfloat16)
        else:
            s = torch.from_numpy(s.copy())
        m = torch.from_numpy(m.copy()) if m.dtype != np.uint16 else m
    elif container == "list" and s.dtype.kind in "biuf":
        s = s.tolist()
    tol = draw(st.sampled_from([None, 0.0, 1.5, 1e9, float("inf"), -1.0, float("nan"), "2", "far"]))
    thr = draw(st.sampled_from([None, "otsu", 0.0, 0.15, 1.0, 2.0, -1.0, float("nan"), float("inf"), "mean"]))
    return s, m, tol, thr


def _options(name: str, tol, thr) -> dict:
    if name == "pointing_game" and tol is not None:
        return {"tolerance": tol}
    if name == "iou" and thr is not None:
        return {"threshold": thr}
    return {}


def _check_valid(v, d, s, m) -> None:
    s_shape = tuple(s.shape) if hasattr(s, "shape") else np.asarray(s).shape
    m = m.numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    assert isinstance(v, np.ndarray) and v.dtype == np.float64
    assert isinstance(d, np.ndarray) and d.dtype == bool
    assert v.shape == d.shape == (() if len(s_shape) == 2 else (s_shape[0],))
    empty = ~(m != 0).reshape(-1, *m.shape[-2:]).any(axis=(1, 2))
    v1, d1 = v.reshape(-1), d.reshape(-1)
    assert (np.isnan(v1) == empty).all(), (v1, empty)
    assert ((v1[~empty] >= 0.0) & (v1[~empty] <= 1.0)).all(), v1
    assert (v1[d1] == 0.0).all() and not d1[empty].any()


@pytest.mark.parametrize("name", LOC)
@SETTINGS
@given(data=any_inputs())
def test_any_input_gives_a_valid_result_or_a_value_error(note, name, data):
    s, m, tol, thr = data
    fn = METRICS.get(name)
    counts = note.setdefault("metric inputs drawn (valid result / ValueError)", [0, 0])
    try:
        v, d = fn(s, m, return_degenerate=True, **_options(name, tol, thr))
    except ValueError as exc:
        assert str(exc)  # says what was wrong
        counts[1] += 1
        return
    _check_valid(v, d, s, m)
    counts[0] += 1


@pytest.mark.parametrize("name", LOC)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_valid_inputs_are_never_refused(name, data):
    """The other half: the property above must not be met by refusing everything."""
    b = data.draw(st.integers(0, 3))
    H, W = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))
    h, w = data.draw(st.integers(1, H)), data.draw(st.integers(1, W))
    dtype = np.dtype(data.draw(st.sampled_from(NUMERIC)))
    s = data.draw(hnp.arrays(dtype, (b, h, w), elements=_elements(dtype, special=True)))
    m = data.draw(hnp.arrays(np.bool_, (b, H, W)))
    v, d = METRICS.get(name)(torch.from_numpy(s) if dtype.kind == "f" else s, m, return_degenerate=True)
    _check_valid(v, d, s, m)


@pytest.mark.parametrize("name", LOC)
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "constant", "zeros", "one nan pixel"])
def test_degenerate_maps_in_a_batch_do_not_spoil_the_others(name, bad):
    rng = np.random.default_rng(0)
    s = rng.random((3, 8, 8)).astype(np.float32)
    m = np.zeros((3, 8, 8), bool)
    m[:, 2:5, 2:5] = True
    m[2] = False  # an empty mask
    fill = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "constant": 0.7, "zeros": 0.0}
    if bad == "one nan pixel":
        s[0, 3, 3] = np.nan
    else:
        s[0] = fill[bad]
    v, d = METRICS.get(name)(s, m, return_degenerate=True)
    ref = METRICS.get(name)(s[1:2], m[1:2])
    assert v[0] == 0.0 and d[0]
    assert v[1] == ref[0] and not d[1]
    assert np.isnan(v[2]) and not d[2]


@pytest.mark.parametrize("name", LOC)
def test_mismatched_batch_sizes_raise_the_documented_error(name):
    for s_shape, m_shape in [((2, 4, 4), (3, 4, 4)), ((4, 4), (1, 4, 4)), ((2, 8, 8), (2, 4, 4)), ((4,), (4,))]:
        with pytest.raises(ValueError, match=r"shape"):
            METRICS.get(name)(np.zeros(s_shape, np.float32), np.zeros(m_shape, bool))


@pytest.mark.parametrize("bad", ["nan", "inf", "constant"])
def test_deletion_and_insertion_on_degenerate_maps_stay_in_range(bad):
    """The faithfulness pair on NaN / inf / constant maps: values in [0, 1] or flagged, no exception."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    images = torch.rand(2, 3, 8, 8)
    s = torch.rand(2, 8, 8)
    s[0] = {"nan": float("nan"), "inf": float("inf"), "constant": 0.3}[bad]
    out = deletion_insertion(model, images, s, torch.tensor([0, 1]), steps=4)
    for key in ("deletion", "insertion"):
        v = np.asarray(out[key])
        assert v.shape == (2,) and (((v >= 0) & (v <= 1)) | np.isnan(v)).all()
    assert np.asarray(out["degenerate"])[0]
