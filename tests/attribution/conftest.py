"""Tiny models for the attribution tests, built in code."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.models import create_model

# options that keep the expensive methods fast on tiny models (defaults are tested separately)
FAST = {
    "rise": {"n_masks": 48},
    "integrated_gradients": {"n_steps": 8},
    "smoothgrad": {"n_samples": 4},
    "occlusion": {"window": 0.25, "stride": 0.125},
}


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give biases and BatchNorm statistics non-trivial values, so maps of an untrained net are not
    all zero and class-dependent."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
    return model


def tiny_ff(seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return randomise(create_model("ff_vgg19", 2, width=0.125, head_units=32, **kw), seed)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_ff().eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand((3, 3, 32, 32), generator=g)


class HandNet(nn.Module):
    """1x1 conv (R; G - B) -> ReLU -> global average pool -> linear, no biases.

    The gradient of logit c w.r.t. activation A_k at any pixel is W[c, k] / (h w), so CAM maps can be
    computed by hand.
    """

    default_cam_layer = "act"
    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, kernel_size=1, bias=False)
        self.act = nn.ReLU()
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])[:, :, None, None])
            self.fc.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 1.0]]))

    @property
    def cam_layers(self) -> dict[str, nn.Module]:
        return {"conv": self.conv, "act": self.act}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture
def hand_net() -> HandNet:
    return HandNet()


@pytest.fixture
def hand_image() -> torch.Tensor:
    # R, G, B planes of one 2x2 image; A0 = R = [[1, 2], [0, 3]], A1 = relu(G - B) = [[1, 0], [1, 0]]
    r = [[1.0, 2.0], [0.0, 3.0]]
    g = [[1.0, 0.0], [2.0, 0.0]]
    b = [[0.0, 1.0], [1.0, 1.0]]
    return torch.tensor([[r, g, b]])


@pytest.fixture(scope="session")
def make_ff():
    """Factory of tiny FF-VGG19s with non-trivial biases and BatchNorm statistics."""
    return tiny_ff


@pytest.fixture(scope="session")
def fast_options():
    """method -> options that keep it fast on tiny models."""
    return FAST


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two spinning
    OpenMP threads per process make these tests ~4x slower under load. Restored after each module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
