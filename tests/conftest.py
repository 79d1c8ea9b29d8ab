"""Shared fixtures: tiny data built in code; nothing is downloaded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch


@dataclass
class TinyCard:
    key: str = "tiny"
    positive: str = "lesion"


@dataclass
class TinySet:
    """Duck-typed stand-in for bench.data.ImageSet: class 1 has a bright square (the lesion)."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    ids: list[str]
    groups: list[str]
    splits: list[str]
    class_names: list[str] = field(default_factory=lambda: ["normal", "lesion"])
    card: TinyCard = field(default_factory=TinyCard)


def make_tiny_set(n: int = 64, size: int = 32, seed: int = 0) -> TinySet:
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.4, size=(n, 3, size, size)).astype(np.float32)
    labels = np.arange(n) % 2
    masks = np.zeros((n, size, size), dtype=bool)
    for i in np.flatnonzero(labels == 1):
        r, c = rng.integers(4, size - 12, size=2)
        masks[i, r : r + 8, c : c + 8] = True
        images[i, :, r : r + 8, c : c + 8] += 0.5
    return TinySet(
        images=torch.from_numpy(images), labels=torch.from_numpy(labels).long(), masks=torch.from_numpy(masks),
        ids=[f"img{i:03d}" for i in range(n)], groups=[f"patient{i // 2}" for i in range(n)], splits=[""] * n,
    )


@pytest.fixture
def tiny_set() -> TinySet:
    return make_tiny_set()


@pytest.fixture
def tiny_set_factory():
    """``make_tiny_set(n, size, seed)`` for tests that need another size."""
    return make_tiny_set
