"""Training on the GPU: a few steps of a tiny FF-VGG19 on a tiny phantom; determinism; mixed precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.config import load_run_config
from bench.train import fit

pytestmark = [pytest.mark.cuda, pytest.mark.slow]


def _cfg(root, *sets: str):
    return load_run_config("smoke", ["data.dataset=synthetic-pet_ct", f"data.root='{root}'", "train.device='cuda'",
                                     *sets])


def test_a_tiny_ff_vgg19_trains_on_the_gpu(gpu_model):
    res, _ = gpu_model
    assert next(res.model.parameters()).device.type == "cuda" and res.device.startswith("cuda")
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    assert np.isfinite(res.test_probs).all() and np.allclose(res.test_probs.sum(1), 1.0)
    # train.deterministic (the default) switched cuDNN to its deterministic algorithms
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled()


def test_one_seed_gives_bit_identical_weights_on_the_gpu(cuda_root, gpu_model):
    _, data = gpu_model
    cfg = _cfg(cuda_root, "train.max_steps=4", "train.epochs=1")
    a, b = fit(cfg, data=data, progress=False), fit(cfg, data=data, progress=False)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert np.array_equal(a.test_probs, b.test_probs)


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_training_under_autocast(cuda_root, gpu_model, mode):
    if mode == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    _, data = gpu_model
    res = fit(_cfg(cuda_root, "train.max_steps=6", "train.epochs=2", f"train.autocast='{mode}'"), data=data,
              progress=False)
    assert all(p.dtype == torch.float32 for p in res.model.parameters())  # the weights stay float32
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    assert np.isfinite(res.test_probs).all()
