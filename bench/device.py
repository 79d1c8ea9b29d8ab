"""Where computation runs: the GPU when there is one, the CPU otherwise."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` if available, else ``cpu``; any other name is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device='auto' or 'cpu'")
    return dev


def set_threads(threads: int) -> None:
    """Set torch's CPU thread count (0 keeps torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)
