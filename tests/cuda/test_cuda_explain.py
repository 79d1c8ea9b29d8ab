"""Explaining on the GPU: every method gives finite maps of the right shape; GPU and CPU maps agree."""

from __future__ import annotations

import copy

import pytest
import torch

from bench.attribution import available_methods, explain
from bench.perf.gpu_check import map_agreement

pytestmark = [pytest.mark.cuda, pytest.mark.slow]

# cheaper options for the expensive methods (the device code paths are the same)
SMALL = {"rise": {"n_masks": 200}, "integrated_gradients": {"n_steps": 16}, "smoothgrad": {"n_samples": 8}}


@pytest.fixture
def no_tf32():
    """float32 convolutions and matmuls on the GPU for the test (torch uses TF32 convolutions by default on
    Ampere and later, ~1e-3 relative error per layer), restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("method", available_methods())
def test_every_method_gives_finite_maps_on_the_gpu(gpu_model, gpu_images, method):
    res, _ = gpu_model
    x, t, _ = gpu_images
    maps = explain(res.model, x[:2].cuda(), t[:2].cuda(), method, **SMALL.get(method, {}))
    assert maps.shape == (2, *x.shape[-2:]) and maps.dtype == torch.float32 and maps.device.type == "cuda"
    assert torch.isfinite(maps).all()


@pytest.mark.parametrize("method", available_methods())
def test_gpu_maps_agree_with_cpu_maps_on_the_same_weights(gpu_model, gpu_images, method, no_tf32):
    """Written tolerance (float32 on both, TF32 off): per image Pearson >= 0.999 between the GPU and CPU maps,
    and max |GPU - CPU| <= 1e-2 x max |CPU map|. Not bit-identical: other kernels, other summation orders."""
    res, _ = gpu_model
    x, t, _ = gpu_images
    cpu_model = copy.deepcopy(res.model).cpu()
    g = explain(res.model, x.cuda(), t.cuda(), method, **SMALL.get(method, {})).cpu().numpy()
    c = explain(cpu_model, x, t, method, **SMALL.get(method, {})).numpy()
    agree = map_agreement(g, c)
    assert agree["rel_diff"] <= 1e-2, agree
    if agree["n_constant"] < len(x):
        assert agree["pearson"] >= 0.999, agree


# Written tolerance for maps under autocast: the mean per-image Pearson correlation with the float32 maps, at
# least this much per family (bf16 has an 8-bit mantissa, fp16 11 bits). Calibrated with CPU autocast on the
# same tiny model (bf16: CAMs and RISE >= 0.999, pixel gradients 0.92-0.997, occlusion 0.81; fp16: >= 0.984),
# with a margin. Occlusion maps are differences of probabilities, the most sensitive to rounding.
AUTOCAST_MIN_PEARSON = {"bf16": {"default": 0.99, "gradient": 0.85, "occlusion": 0.7},
                        "fp16": {"default": 0.99, "gradient": 0.95, "occlusion": 0.95}}
# captum's DeepLift hooks refuse the half-precision activations autocast gives ("hook 'input_tensor_hook' has
# changed the type of value"): it is explained in float32 only
NOT_UNDER_AUTOCAST = {"deeplift"}


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_maps_under_autocast_agree_with_float32_maps(gpu_model, gpu_images, mode):
    """``explain`` called under ``torch.autocast`` (README, "Running on a GPU"): every map finite and float32,
    and within :data:`AUTOCAST_MIN_PEARSON` of the float32 maps."""
    from bench.attribution import METHODS

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    res, _ = gpu_model
    x, t, _ = gpu_images
    x, t = x.cuda(), t.cuda()
    low = {}
    for method in sorted(set(available_methods()) - NOT_UNDER_AUTOCAST):
        ref = explain(res.model, x, t, method, **SMALL.get(method, {})).cpu().numpy()
        with torch.autocast(device_type="cuda", dtype=dtype):
            out = explain(res.model, x, t, method, **SMALL.get(method, {}))
        assert out.dtype == torch.float32 and torch.isfinite(out).all(), method
        agree = map_agreement(out.cpu().numpy(), ref)
        limits = AUTOCAST_MIN_PEARSON[mode]
        need = limits.get(method, limits.get(METHODS.meta(method)["family"], limits["default"]))
        if agree["n_constant"] < len(x) and not agree["pearson"] >= need:
            low[method] = (round(agree["pearson"], 4), need)
    assert not low, f"maps under {mode} autocast differ from float32 (mean Pearson, required): {low}"
