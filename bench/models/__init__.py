"""Models. ``create_model(name, num_classes, **options)``; every model exposes ``cam_layers``
(layer name -> module whose output is that feature map) and ``default_cam_layer``."""

from __future__ import annotations

from torch import nn

from bench.models.fast import fast_model, to_channels_last
from bench.models.ff_vgg19 import FFVGG19, VGG19
from bench.models.predict import predict_proba
from bench.registry import Registry

MODELS: Registry = Registry("model")
MODELS.register("ff_vgg19", FFVGG19, paper=True)
MODELS.register("vgg19", VGG19, paper=False)


def create_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build model ``name`` (see ``MODELS.names()``) with ``num_classes`` outputs.

    Options: ``width`` (channel multiplier, 1.0 = paper), ``head_units``, ``pretrained`` (path of a
    local weights file; never downloaded), ``freeze_backbone`` (default False, as in the paper).
    """
    return MODELS.get(name)(num_classes, **options)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "create_model", "count_parameters", "FFVGG19", "VGG19", "fast_model", "to_channels_last",
           "predict_proba"]
