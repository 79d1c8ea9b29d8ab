"""Gradient family, computed with captum: each returns an input-space attribution ``(B, C, H, W)``.

Channel reduction (sum of absolute values over colour channels) is applied in
:mod:`bench.attribution.postprocess`. The explained output is the target class's logit.
Baselines (integrated_gradients, deeplift) are the all-zero (black) image, the usual choice for
inputs scaled to [0, 1].

Checked against our models: captum's GuidedBackprop and DeepLift override the backward of
``nn.ReLU`` *modules* (and DeepLift also of ``nn.MaxPool2d``); FF-VGG19 uses non-inplace ReLU
modules, each called once per forward, so their hooks apply cleanly. BatchNorm and Dropout are
linear in eval mode, which :func:`bench.attribution.explain` sets, so DeepLift's rescale rule
through them is exact. Functional ops (``mean`` for GAP) are linear too. A ReLU module called
several times (torchvision's ResNet Bottleneck) makes DeepLift raise, and a functional ``F.relu``
(torchvision's DenseNet after ``norm5``) is invisible to both, so bench's ResNet-50 and DenseNet-121
have one non-inplace ReLU module per use (:mod:`bench.models.torchvision_models`). A model without
ReLUs (ViT: GELU) lists guided backprop and DeepLift in ``unsupported_methods``.

SmoothGrad is not run through captum's ``NoiseTunnel``: it draws its noise from the global RNG
(``torch.normal`` without a generator), which would break both determinism-by-seed and our rule of
never touching the global RNG. We draw the noise from a private generator and let captum's
``Saliency`` compute each gradient.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from captum.attr import (
    DeepLift,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    Saliency,
)
from torch import nn

from bench.attribution.base import DEFAULT_BATCH, chunks, cpu_generator, positive_int, register_method


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence captum's per-call notices (it sets requires_grad on its own copy of the input; it sets
    and removes hooks on ReLUs) — expected here, and printed on every call otherwise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Input Tensor \d+ did not already require gradients")
        warnings.filterwarnings("ignore", message=r"Setting (forward, )?backward hooks")
        yield


def _passes(forward: int, backward: int):
    def cost(options: dict, channels: int) -> dict:
        return {"forward": forward, "backward": backward}

    return cost


@register_method("saliency", family="gradient", uses_layer=False, cost=_passes(1, 1))
def saliency(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str | None) -> torch.Tensor:
    """Plain gradient of the target logit w.r.t. the input (Simonyan et al. 2014), signed."""
    with _quiet():
        return Saliency(model).attribute(images, target=targets, abs=False)


@register_method("input_x_gradient", family="gradient", uses_layer=False, cost=_passes(1, 1))
def input_x_gradient(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str | None
) -> torch.Tensor:
    """Input times gradient (Shrikumar et al. 2016)."""
    with _quiet():
        return InputXGradient(model).attribute(images, target=targets)


def _ig_cost(options: dict, channels: int) -> dict:
    return {"forward": options["n_steps"], "backward": options["n_steps"]}


@register_method(
    "integrated_gradients",
    family="gradient",
    uses_layer=False,
    cost=_ig_cost,
    options={"n_steps": 50, "batch_size": DEFAULT_BATCH},
)
def integrated_gradients(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str | None, n_steps: int, batch_size: int
) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al. 2017) from the black image, ``n_steps`` Gauss-Legendre
    points (captum's default method and step count), ``batch_size`` images per internal pass."""
    positive_int("n_steps", n_steps)
    positive_int("batch_size", batch_size)
    with _quiet():
        return IntegratedGradients(model).attribute(
            images,
            baselines=torch.zeros_like(images),
            target=targets,
            n_steps=n_steps,
            internal_batch_size=batch_size,
        )


def _sg_cost(options: dict, channels: int) -> dict:
    return {"forward": options["n_samples"], "backward": options["n_samples"]}


@register_method(
    "smoothgrad",
    family="gradient",
    uses_layer=False,
    cost=_sg_cost,
    stochastic=True,
    options={"n_samples": 25, "noise_level": 0.15, "seed": 0, "batch_size": DEFAULT_BATCH},
)
def smoothgrad(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    layer: str | None,
    n_samples: int,
    noise_level: float,
    seed: int,
    batch_size: int,
) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): the mean of the signed input gradient over ``n_samples`` noisy
    copies, noise N(0, sigma^2) with sigma = ``noise_level`` x (max - min) of each image (the paper
    recommends 10-20%). The mean is signed, as in the authors' PAIR library; |.| comes in
    postprocess. The ``n_samples`` noise draws come from a private generator seeded by ``seed`` and
    are shared by the images of a batch, so a batch gives what its images give one by one.
    """
    positive_int("n_samples", n_samples)
    if isinstance(noise_level, bool) or not isinstance(noise_level, (int, float)) or noise_level < 0:
        raise ValueError(f"noise_level must be a number >= 0, got {noise_level!r}")
    b = images.shape[0]
    noise = torch.randn((n_samples, *images.shape[1:]), generator=cpu_generator(seed))
    noise = noise.to(device=images.device, dtype=images.dtype)
    sigma = noise_level * (images.amax(dim=(1, 2, 3)) - images.amin(dim=(1, 2, 3)))  # (B,)
    total = torch.zeros_like(images)
    sal = Saliency(model)
    for sl in chunks(b * n_samples, batch_size):
        rows = torch.arange(sl.start, sl.stop, device=images.device)
        img, smp = rows // n_samples, rows % n_samples
        noisy = images[img] + sigma[img, None, None, None] * noise[smp]
        with _quiet():
            grads = sal.attribute(noisy, target=targets[img], abs=False)
        total.index_add_(0, img, grads)
    return total / n_samples


@register_method("guided_backprop", family="gradient", uses_layer=False, cost=_passes(1, 1))
def guided_backprop(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str | None
) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): only positive gradients pass the ReLUs."""
    with _quiet():
        return GuidedBackprop(model).attribute(images, target=targets)


@register_method("guided_grad_cam", family="gradient", uses_layer=True, cost=_passes(2, 2))
def guided_grad_cam(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str
) -> torch.Tensor:
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backprop times Grad-CAM (ReLU'd) on ``layer``,
    the latter upsampled *bilinearly* (captum's default is nearest). captum hooks the layer itself, so a
    token layer (one in ``model.cam_reshape``) is refused: its output is not a feature map."""
    if layer in (getattr(model, "cam_reshape", None) or {}):
        raise ValueError(
            f"guided_grad_cam: layer {layer!r} of {type(model).__name__} is a token layer (read through "
            "cam_reshape); captum's Grad-CAM needs a (B, C, h, w) layer output"
        )
    gc = GuidedGradCam(model, model.cam_layers[layer])
    with _quiet():
        return gc.attribute(images, target=targets, interpolate_mode="bilinear")


@register_method("deeplift", family="gradient", uses_layer=False, cost=_passes(2, 2))
def deeplift(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, layer: str | None) -> torch.Tensor:
    """DeepLIFT, rescale rule (Shrikumar et al. 2017), reference = black image. captum evaluates input
    and reference in one batch of 2B, hence 2 forward and 2 backward image-passes."""
    with _quiet():
        return DeepLift(model).attribute(images, baselines=torch.zeros_like(images), target=targets)
