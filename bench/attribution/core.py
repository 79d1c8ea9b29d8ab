"""``explain``: the one entry point every attribution method is called through."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bench.attribution import postprocess
from bench.attribution.base import (
    FAMILIES,
    METHODS,
    check_images,
    check_options,
    check_targets,
    num_classes,
    preserved_state,
    resolve_layer,
)


def explain(
    model: nn.Module,
    images: torch.Tensor,
    targets: Any,
    method: str,
    *,
    layer: str | None = None,
    **options: Any,
) -> torch.Tensor:
    """Explanation maps of ``model`` for ``images`` and ``targets`` by ``method``.

    Args:
        model: a classifier ``(B, C, H, W) -> (B, K)`` logits; layer methods need ``model.cam_layers``
            (name -> module) and ``model.default_cam_layer``; a token layer (a ViT's) is read as a map
            through ``model.cam_reshape`` (see :func:`bench.attribution.base.capture`). Must be on the
            images' device.
        images: ``(B, C, H, W)`` floating tensor (not modified; gradients are never taken into it).
        targets: the class to explain, an int for every image or one per image (list, array or
            tensor of B ints); each must be in ``[0, K)``.
        method: a name from :func:`available_methods`.
        layer: a name in ``model.cam_layers`` for the methods that use one (default
            ``model.default_cam_layer``); checked whenever given, ignored by methods without a layer.
        **options: method options (see ``METHODS.meta(method)["options"]`` for names and defaults),
            e.g. ``seed`` for the stochastic methods, ``batch_size`` to bound memory.

    Returns:
        ``(B, H, W)`` float32 on the images' device, at the input resolution (bilinear,
        ``align_corners=False``), not normalised; post-processing per :mod:`.postprocess`.

    The model runs in eval mode; every module's train/eval mode, every ``requires_grad`` flag and the
    hook tables are as before on return, also when an error is raised. Parameters' ``.grad`` is never
    written. Stochastic methods use a private generator seeded by ``seed`` (never the global RNG), so
    the same call gives the same maps.

    Raises:
        ValueError: unknown method, option or layer (the message lists the valid ones); a target out
            of range or a wrong number of targets; malformed images; a method the model lists in its
            ``unsupported_methods`` (method -> why; e.g. guided backprop on a ViT, which has no ReLU).
    """
    name = METHODS.canonical(method)
    entry = METHODS.entry(name)
    why = (getattr(model, "unsupported_methods", None) or {}).get(name)
    if why:
        model_name = getattr(model, "model_name", type(model).__name__)
        raise ValueError(f"method {name!r} does not run on model {model_name!r}: {why}")
    x = check_images(images)
    opts = check_options(name, options)
    layer_name = resolve_layer(model, layer, entry.meta["uses_layer"])
    with preserved_state(model):
        model.eval()
        t = check_targets(targets, x.shape[0], num_classes(model, x), x.device)
        raw = entry.obj(model, x, t, layer=layer_name, **opts)
    return postprocess.finish(name, raw, x.shape[-2:])


def available_methods(family: str | None = None) -> list[str]:
    """Registered method names (sorted), optionally only those of ``family``
    (cam / gradient / perturbation / baseline)."""
    names = METHODS.names()
    if family is None:
        return names
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    return [n for n in names if METHODS.meta(n)["family"] == family]
