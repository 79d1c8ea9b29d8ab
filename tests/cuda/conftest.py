"""The ``cuda`` tests: skipped where ``torch.cuda.is_available()`` is False (``make gpu-check`` runs them on a
GPU). The other tests in this folder check the GPU code paths on the CPU and always run."""

from __future__ import annotations

import os

import pytest
import torch

from bench.device import CUBLAS_WORKSPACE

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # before the first CUDA call (determinism)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")


@pytest.fixture(scope="session")
def cuda_root(tmp_path_factory):
    """A data root of the cuda tests' own (phantoms are generated into it)."""
    root = tmp_path_factory.mktemp("cuda-data") / "datasets"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def gpu_model(cuda_root):
    """A tiny FF-VGG19 (smoke preset: 32 px, width 0.125) trained for 12 steps on the PET/CT phantom on the GPU,
    with that phantom (a cuda fixture: only cuda tests use it)."""
    from bench.config import load_run_config
    from bench.train import fit, load_training_data

    cfg = load_run_config("smoke", ["data.dataset=synthetic-pet_ct", f"data.root='{cuda_root}'",
                                    "train.device='cuda'", "train.max_steps=12", "train.epochs=4"])
    data = load_training_data(cfg)
    return fit(cfg, data=data, progress=False), data


@pytest.fixture(scope="session")
def gpu_images(gpu_model):
    """The phantom's first 4 images with a lesion mask: ``(images (4, 3, H, W), targets (4,), masks (4, H, W))``,
    on the CPU."""
    _, data = gpu_model
    idx = [i for i in range(len(data.ids)) if bool(data.has_mask[i])][:4]
    return data.images[idx], data.labels[idx].long(), data.masks[idx]
