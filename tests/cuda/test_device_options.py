"""The device options on the CPU: mps refused, autocast refused off CUDA, the determinism switch, defaults."""

from __future__ import annotations

import os

import pytest
import torch

from bench.config import TrainConfig, load_run_config
from bench.device import CUBLAS_WORKSPACE, autocast_dtype, resolve_device, set_deterministic


def test_mps_is_refused_and_the_message_says_what_to_use():
    with pytest.raises(RuntimeError, match=r"'mps' is not supported.*float64.*train.device='cpu'"):
        resolve_device("mps")


def test_autocast_modes():
    assert autocast_dtype("off", "cpu") is None
    with pytest.raises(ValueError, match=r"train.autocast = 'bf16' needs a CUDA device.*'cpu'.*autocast='off'"):
        autocast_dtype("bf16", "cpu")
    with pytest.raises(ValueError, match=r"train.autocast = 'fp32': use 'off', 'bf16' or 'fp16'"):
        autocast_dtype("fp32", "cpu")


def test_fit_refuses_autocast_on_the_cpu_before_any_work(tiny_set):
    from bench.train import fit

    cfg = load_run_config("smoke", ["data.dataset=tiny", "train.device='cpu'", "train.autocast='fp16'"])
    with pytest.raises(ValueError, match="needs a CUDA device"):
        fit(cfg, data=tiny_set, progress=False)


def test_the_train_options_and_the_paper_preset():
    assert TrainConfig().autocast == "off" and TrainConfig().deterministic is True
    paper = load_run_config("paper")
    assert paper.train.autocast == "off" and paper.train.deterministic is True
    assert load_run_config("paper", ["train.autocast='bf16'"]).train.autocast == "bf16"


@pytest.fixture
def torch_flags():
    """Restore torch's process-wide determinism flags after the test."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def test_set_deterministic_switches_the_cudnn_and_cublas_settings(torch_flags, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    set_deterministic(True)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE == ":4096:8"
    set_deterministic(False)
    assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark
    assert not torch.are_deterministic_algorithms_enabled()


def test_an_explicit_cuda_device_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
