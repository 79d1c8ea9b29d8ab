"""What a training run returns: :class:`TrainResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from bench.config import RunConfig
from bench.data.splits import Split


@dataclass
class TrainResult:
    """What :func:`bench.train.fit` returns. ``model`` is in eval mode on ``device``."""

    model: nn.Module
    config: RunConfig
    class_names: list[str]
    metrics: dict[str, Any]
    split: Split
    test_ids: list[str]
    test_labels: np.ndarray
    test_probs: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    device: str = "cpu"

    @property
    def images_per_second(self) -> float:
        """Mean training throughput over epochs (images / s of forward+backward+step)."""
        rates = [h["train_images_per_s"] for h in self.history]
        return float(np.mean(rates)) if rates else float("nan")


__all__ = ["TrainResult"]
