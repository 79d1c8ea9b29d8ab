"""Where computation runs: the GPU when there is one, the CPU otherwise; and how exactly it runs there.

- :func:`resolve_device`: ``"auto"`` / ``"cpu"`` / ``"cuda[:i]"`` -> a ``torch.device``. Apple's ``mps`` is
  refused: bench computes in float64 in places (deletion/insertion curves, Eigen-CAM's SVD, validation
  probabilities), which MPS does not support.
- :func:`set_deterministic`: cuDNN/cuBLAS settings that make CUDA runs repeat bit for bit
  (``train.deterministic``; on the CPU bench is deterministic anyway, with a fixed thread count).
- :func:`autocast_dtype`: ``train.autocast`` ("off" | "bf16" | "fp16") -> the dtype for ``torch.autocast``.

What to expect from devices (README, "Running on a GPU"): two runs on one GPU model with
``deterministic`` on give identical weights and maps; a GPU run and a CPU run do not (other kernels,
other summation orders, TF32 convolutions on Ampere and later), and neither do two GPU models.
``python -m bench.perf.gpu_check`` measures the agreement of GPU and CPU maps on the same weights.
"""

from __future__ import annotations

import os
import warnings

import torch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CUBLAS_WORKSPACE = ":4096:8"


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` if available, else ``cpu``; any other name is passed to torch.

    Raises:
        RuntimeError: ``cuda`` requested without a usable CUDA device; ``mps`` (not supported: bench
            needs float64 on the device, which MPS lacks; use ``cpu``).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device='auto' or 'cpu'")
    if dev.type == "mps":
        raise RuntimeError(
            f"device {name!r} is not supported: bench computes in float64 in places (deletion/insertion, "
            "Eigen-CAM, validation probabilities) and MPS has no float64; use train.device='cpu' "
            "(or a CUDA GPU: train.device='cuda')"
        )
    return dev


def set_threads(threads: int) -> None:
    """Set torch's CPU thread count (0 keeps torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)


def set_deterministic(enabled: bool = True) -> None:
    """Make CUDA computations repeat bit for bit (``enabled``), or let them pick the fastest kernels.

    On: ``torch.backends.cudnn.deterministic = True``, ``torch.backends.cudnn.benchmark = False``,
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` (an op without a deterministic
    implementation warns instead of failing) and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS reads it
    when it starts: set it before the first CUDA call, or in the environment; a warning says when it
    comes too late). Off: the three torch flags back to torch's defaults, ``cudnn.benchmark = True``
    (cuDNN times its algorithms on the first call at each shape and keeps the fastest).

    Process-wide. Cost: deterministic cuDNN algorithms and no autotuning are typically 0-30% slower for
    a convnet (``python -m bench.perf.gpu_check`` measures it on FF-VGG19); the CPU is unaffected.
    """
    enabled = bool(enabled)
    if enabled and os.environ.get("CUBLAS_WORKSPACE_CONFIG") is None:
        if torch.cuda.is_initialized():
            warnings.warn(
                "set_deterministic: CUDA was started before CUBLAS_WORKSPACE_CONFIG was set, so cuBLAS may not "
                f"be deterministic; export CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE} before running", stacklevel=2)
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)


def autocast_dtype(mode: str, device: torch.device | str) -> torch.dtype | None:
    """``train.autocast`` -> the dtype for ``torch.autocast`` (None for ``"off"``).

    Raises:
        ValueError: an unknown mode; ``bf16``/``fp16`` on a device other than CUDA (bench's CPU runs are
            float32 by design: mixed precision there is slower and changes the results); ``bf16`` on a GPU
            without bfloat16 support (before Ampere: use ``fp16``).
    """
    if mode == "off":
        return None
    if mode not in AUTOCAST_DTYPES:
        raise ValueError(f"train.autocast = {mode!r}: use 'off', 'bf16' or 'fp16'")
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(
            f"train.autocast = {mode!r} needs a CUDA device, but the run is on {dev.type!r}; "
            "use train.autocast='off' on the CPU (or train.device='cuda' on a GPU)"
        )
    if mode == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"train.autocast = 'bf16': {torch.cuda.get_device_name(dev)} has no bfloat16; use 'fp16'")
    return AUTOCAST_DTYPES[mode]


__all__ = ["AUTOCAST_DTYPES", "autocast_dtype", "resolve_device", "set_deterministic", "set_threads"]
