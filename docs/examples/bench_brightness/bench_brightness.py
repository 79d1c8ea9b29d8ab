"""A bench plugin: the ``brightness`` method (a map of the image's brightness, blind to the model) and the
``tiny_cnn`` model. bench imports this module once, through the entry points of pyproject.toml."""

import torch
from torch import nn

from bench.attribution import Rule, register_method
from bench.models import register_model


def brightness(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer=None) -> torch.Tensor:
    """The images themselves, (B, C, H, W): the post-processing rule below takes their channel mean."""
    return images


register_method(
    "brightness", brightness, family="baseline",
    postprocess=Rule(channels="mean", relu=False, why="brightness = mean of the colour channels"),
    cost={"forward": 0, "backward": 0}, version="1", description="the image's brightness (model-blind)",
)


class TinyCNN(nn.Module):
    """Two conv blocks and a linear head; ``cam_layers`` names the blocks the CAM methods may explain."""

    def __init__(self, num_classes: int, channels: int = 8):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * channels, num_classes))
        self.num_classes = num_classes
        self.cam_layers = {"block1": self.block1, "block2": self.block2}
        self.default_cam_layer = "block2"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block2(self.block1(x)))


@register_model("tiny_cnn", version="1", description="two conv blocks, for trying bench")
def tiny_cnn(num_classes: int, *, channels: int = 8) -> nn.Module:
    """``channels``: of the first block (the second has twice as many); set it with model.options."""
    return TinyCNN(num_classes, channels)
