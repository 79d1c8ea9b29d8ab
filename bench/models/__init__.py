"""Models. ``create_model(name, num_classes, **options)``; every model exposes ``cam_layers``
(layer name -> module whose output is that feature map) and ``default_cam_layer``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from bench.models.base import MODELS, register_model
from bench.models.fast import fast_model, to_channels_last
from bench.models.ff_vgg19 import FFVGG19, VGG19
from bench.models.predict import predict_proba
from bench.models.torchvision_models import DenseNet121, ResNet50, ViTB16

MODELS.register("ff_vgg19", FFVGG19, paper=True)
MODELS.register("vgg19", VGG19, paper=False)
register_model("resnet50", ResNet50, description="torchvision's ResNet-50; ImageNet normalisation inside")
register_model("densenet121", DenseNet121, description="torchvision's DenseNet-121 (CheXNet's backbone); "
               "ImageNet normalisation inside")
register_model("vit_b_16", ViTB16, description="torchvision's ViT-B/16 (image_size option); ImageNet "
               "normalisation inside")


def model_options(name: str) -> dict[str, Any] | None:
    """The options model ``name`` declares, option -> default: its ``options`` meta if registered with one,
    else the keyword-only parameters of its factory (after ``num_classes``). ``None`` when the factory takes
    ``**options`` (it declares no fixed set)."""
    meta = MODELS.meta(name)
    if isinstance(meta.get("options"), Mapping):
        return dict(meta["options"])
    params = inspect.signature(MODELS.get(name)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}


def create_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build model ``name`` (see ``MODELS.names()``) with ``num_classes`` outputs.

    Each model takes its own options (:func:`model_options`; ``bench list models``). FF-VGG19: ``width``
    (channel multiplier, 1.0 = paper), ``head_units``, ``dropout``, ``taps``, ``bn_momentum``, ``batch_norm``,
    ``pretrained`` (path of a local weights file; never downloaded), ``freeze_backbone`` (default False, as in
    the paper). resnet50 / densenet121: ``pretrained``, ``freeze_backbone``, ``normalize``; vit_b_16 also
    ``image_size``. An option the model does not declare is a ``ValueError`` naming the valid ones.
    """
    declared = model_options(name)
    unknown = sorted(set(options) - set(declared)) if declared is not None else []
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {', '.join(unknown)}; its options: "
                         f"{', '.join(declared) or 'none'}")
    return MODELS.get(name)(num_classes, **options)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "register_model", "create_model", "model_options", "count_parameters", "ResNet50",
           "DenseNet121", "ViTB16", "FFVGG19", "VGG19", "fast_model",
           "to_channels_last", "predict_proba"]
