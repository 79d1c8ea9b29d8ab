"""Scoring on the GPU: deletion/insertion of the same maps on the GPU and on the CPU."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bench.attribution import explain
from bench.metrics import deletion_insertion

pytestmark = [pytest.mark.cuda, pytest.mark.slow]


@pytest.mark.parametrize("tf32", [False, True])
@pytest.mark.parametrize("substrate", ["zeros", "blur"])
def test_deletion_insertion_on_the_gpu_equals_the_cpu(gpu_model, gpu_images, tf32, substrate):
    """Same maps, same weights. Written tolerance: AUCs and every curve point within 1e-4 in float32 (TF32 off),
    within 2e-2 with TF32 convolutions (torch's default on Ampere and later)."""
    res, _ = gpu_model
    x, t, _ = gpu_images
    maps = explain(copy.deepcopy(res.model).cpu(), x, t, "grad_cam")
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        g = deletion_insertion(res.model, x.cuda(), maps.cuda(), t.cuda(), steps=8, substrate=substrate)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    c = deletion_insertion(copy.deepcopy(res.model).cpu(), x, maps, t, steps=8, substrate=substrate)
    tol = 2e-2 if tf32 else 1e-4
    for key in ("deletion", "insertion", "deletion_curve", "insertion_curve"):
        np.testing.assert_allclose(g[key], c[key], rtol=0, atol=tol, err_msg=key)
    assert np.array_equal(g["degenerate"], c["degenerate"])
