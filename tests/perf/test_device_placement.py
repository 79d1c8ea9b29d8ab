"""Tensors on the wrong device, caught on the CPU: the perf code (and what it calls) on an emulated GPU.

``fake_device.remote_device`` makes ``meta`` an accelerator whose tensors hold real CPU data but raise,
as CUDA's do, when mixed with CPU tensors or converted to numpy without ``.cpu()``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fake_device import Remote, remote_device

pytestmark = pytest.mark.slow


def test_the_emulated_device_raises_where_cuda_would():
    with remote_device() as dev:
        w = torch.ones(3).to(dev)
        assert isinstance(w, Remote) and w.device == dev
        with pytest.raises(RuntimeError, match="same device"):
            _ = w + torch.ones(3)
        with pytest.raises(TypeError, match="numpy"):
            w.numpy()
        assert torch.equal(w.cpu() * 2, torch.full((3,), 2.0))
        assert float((w * torch.tensor(2.0)).sum()) == 6.0  # a 0-dim CPU tensor mixes, as on CUDA
        assert isinstance(torch.zeros(2, device=dev), Remote)


def test_scaling_stages_keep_every_tensor_on_the_models_device(tmp_path):
    """Train, explain, score and sanity of bench.perf.scaling with the model on the (emulated) GPU.
    Fails on a Stages that leaves the inputs on the CPU or calls .numpy() on device tensors."""
    from bench.perf.scaling import Stages
    from bench.sweep.suite import load_suite

    suite = load_suite("smoke", ["train.device='meta'", "train.epochs=1", "explain.batch_size=2"])
    with remote_device() as dev:
        st = Stages(suite, "synthetic-lidc_idri", str(tmp_path / "data"), log=lambda msg: None)
        assert st.device == dev and isinstance(next(st.model.parameters()), Remote)
        times = st.explain_and_score(3, 32)
        assert set(times) == set(suite.methods)
        assert all(v["explain"] >= 0 and v["score"] >= 0 for v in times.values())
        assert st.sanity(32, 2, ["grad_cam"]) >= 0
        assert st.cam_channels(32) == round(512 * suite.run_config("synthetic-lidc_idri", "ff_vgg19", 0).model.width)


def test_every_method_and_deletion_insertion_on_the_emulated_gpu_match_the_cpu():
    from bench.attribution import available_methods, explain
    from bench.metrics import deletion_insertion
    from bench.models import create_model

    torch.manual_seed(0)
    model = create_model("ff_vgg19", 2, width=0.125, head_units=16).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1])
    small = {"rise": {"n_masks": 64}, "integrated_gradients": {"n_steps": 8}, "smoothgrad": {"n_samples": 4}}
    on_cpu = {m: explain(model, x, t, m, **small.get(m, {})) for m in available_methods()}
    di_cpu = deletion_insertion(model, x, on_cpu["grad_cam"], t, steps=4)
    with remote_device() as dev:
        remote = model.to(dev)
        for m in available_methods():
            out = explain(remote, x.to(dev), t.to(dev), m, **small.get(m, {}))
            assert out.device == dev, m
            assert torch.allclose(out.cpu(), on_cpu[m], rtol=1e-4, atol=1e-6), m
        di = deletion_insertion(remote, x.to(dev), on_cpu["grad_cam"].to(dev), t.to(dev), steps=4)
    np.testing.assert_allclose(di["deletion"], di_cpu["deletion"], rtol=1e-5)
    np.testing.assert_allclose(di["insertion"], di_cpu["insertion"], rtol=1e-5)
