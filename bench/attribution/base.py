"""The ``METHODS`` registry, input checking, the model-state guard and the layer hooks every method shares.

A method is a function ``fn(model, images, targets, *, layer, **options) -> raw`` registered with
:func:`register_method`. ``images`` is ``(B, C, H, W)`` (detached), ``targets`` an int64 tensor
``(B,)`` already checked, ``layer`` a name in ``model.cam_layers`` (or ``None`` for methods that use
no layer). ``raw`` is what the method computes *before* post-processing: a layer-resolution map
``(B, h, w)``, an input-space attribution ``(B, C, H, W)``, or a list of layer maps (fused methods).
:mod:`bench.attribution.postprocess` turns ``raw`` into the final ``(B, H, W)`` map; methods never
ReLU, reduce channels or upsample themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from bench.registry import Registry

METHODS: Registry = Registry("attribution method")

FAMILIES = ("cam", "gradient", "perturbation", "baseline")

# Default number of images per internal forward pass for the methods that expand a batch
# (score_cam, integrated_gradients, smoothgrad, occlusion, rise). Bounds memory, not results.
DEFAULT_BATCH = 256

# A full-width VGG/FF-VGG19 block5 layer has 512 channels; score_cam's static cost assumes it.
REFERENCE_CHANNELS = 512

# method -> cost(options, channels); kept out of the registry meta so that the meta stays plain data
_COST_FNS: dict[str, Callable[[dict, int], dict]] = {}


def register_method(
    name: str,
    *,
    family: str,
    uses_layer: bool,
    cost: Callable[[dict, int], dict],
    options: dict[str, Any] | None = None,
    stochastic: bool = False,
) -> Callable:
    """Register an attribution method.

    ``cost(options, channels)`` gives ``{"forward": n, "backward": m}``: model passes per image at
    the given options (``channels`` = channels of the explained layer, used by score_cam only).
    The registry meta (plain, JSON-serialisable data) holds ``family``, ``uses_layer``, ``options``
    (the defaults), ``stochastic`` and ``cost`` (at the defaults, with :data:`REFERENCE_CHANNELS`
    channels); :func:`method_cost` evaluates ``cost`` at other options.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    defaults = dict(options or {})
    if stochastic and "seed" not in defaults:
        raise ValueError(f"stochastic method {name!r} must take a 'seed' option")

    def _add(fn: Callable) -> Callable:
        METHODS.register(
            name,
            fn,
            family=family,
            uses_layer=uses_layer,
            options=defaults,
            stochastic=stochastic,
            cost=dict(cost(defaults, REFERENCE_CHANNELS)),
        )
        _COST_FNS[name] = cost
        return fn

    return _add


def method_cost(method: str, *, channels: int = REFERENCE_CHANNELS, **options: Any) -> dict[str, int]:
    """Model passes per image, ``{"forward": n, "backward": m}``, of ``method`` at ``options``.

    ``channels`` is the number of channels of the explained layer (only score_cam depends on it).
    """
    name = METHODS.canonical(method)
    return dict(_COST_FNS[name](check_options(name, options), channels))


# ----------------------------------------------------------------------------------------------
# input checking


def check_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a floating tensor (B, C, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch (B = 0)")
    return images.detach()


def check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults of ``method`` updated with ``options``; an unknown option raises ``ValueError``."""
    defaults = METHODS.meta(method)["options"]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"method {method!r} has no option(s) {', '.join(unknown)}; valid options: {valid}")
    return {**defaults, **options}


def num_classes(model: nn.Module, images: torch.Tensor) -> int:
    """``model.num_classes`` if set, else the width of the model's output on one image."""
    n = getattr(model, "num_classes", None)
    if isinstance(n, int):
        return n
    with torch.no_grad():
        return int(model(images[:1]).shape[1])


def check_targets(targets: Any, batch: int, n_classes: int, device: torch.device) -> torch.Tensor:
    """``targets`` (int, or one per image as list/array/tensor) -> int64 tensor ``(B,)`` on ``device``.

    Raises ``ValueError`` for a wrong count, a non-integer value or a class outside ``[0, n_classes)``.
    """
    if isinstance(targets, bool):
        raise ValueError(f"target must be an int class index, got {targets!r}")
    if isinstance(targets, int):
        t = torch.full((batch,), targets, dtype=torch.int64)
    else:
        t = torch.as_tensor(targets)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"targets must be integer class indices, got dtype {t.dtype}")
        t = t.to(torch.int64).reshape(-1)
        if t.numel() == 1 and batch != 1:
            t = t.expand(batch)
        if t.numel() != batch:
            raise ValueError(f"got {t.numel()} targets for {batch} images; pass an int or one per image")
    t = t.to(device)
    bad = (t < 0) | (t >= n_classes)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"target {int(t[i])} (image {i}) is out of range: the model has {n_classes} classes "
            f"(valid targets 0..{n_classes - 1})"
        )
    return t.contiguous()


def resolve_layer(model: nn.Module, layer: str | None, required: bool) -> str | None:
    """The layer name to explain: ``layer`` or ``model.default_cam_layer``; checked against ``cam_layers``."""
    layers = getattr(model, "cam_layers", None)
    if layer is None and not required:
        return None
    if layers is None:
        if not required:
            return None
        raise ValueError(
            f"{type(model).__name__} has no cam_layers; layer methods need a model that names its "
            "layers (bench.models.create_model builds such models)"
        )
    name = layer if layer is not None else getattr(model, "default_cam_layer", None)
    if name not in layers:
        what = f"unknown layer {name!r}" if name is not None else "no layer given and no default_cam_layer"
        raise ValueError(f"{what}; valid layers of {type(model).__name__}: {', '.join(layers)}")
    return name


# ----------------------------------------------------------------------------------------------
# leaving the model as found

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
)


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore every module's ``training`` flag, every parameter's ``requires_grad`` and the hook
    tables on exit, normal or by exception.

    Our own hooks are removed through their handles; this also removes any hook a library
    (captum) registered and failed to remove because an error interrupted it.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    hooks = [(m, {d: set(getattr(m, d, {}) or {}) for d in _HOOK_DICTS}) for m in model.modules()]
    full_bw = [(m, m.__dict__.get("_is_full_backward_hook", None)) for m in model.modules()]
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            if p.requires_grad != flag:
                p.requires_grad_(flag)
        for m, before in hooks:
            for d, keys in before.items():
                table = getattr(m, d, None)
                if table:
                    for k in [k for k in table if k not in keys]:
                        del table[k]
        for m, value in full_bw:
            if m.__dict__.get("_is_full_backward_hook", None) != value:
                m._is_full_backward_hook = value


# ----------------------------------------------------------------------------------------------
# layer activations and gradients


@contextmanager
def capture(model: nn.Module, layers: Sequence[str], *, grad: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks that keep the outputs of ``layers`` (names in ``model.cam_layers``).

    Yields a dict filled during the next forward pass: name -> the layer's output. Downstream layers
    receive a *clone*, so an in-place op after the layer cannot change what is kept.

    With ``grad=True`` the kept tensors are the ones to differentiate with respect to: the first layer
    reached (and any whose output does not require grad, e.g. under a frozen backbone) is replaced by
    a fresh leaf, so nothing upstream of it is needed for the backward pass; later layers stay in the
    graph, so their gradients include every path to the score.
    """
    modules = model.cam_layers
    kept: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: Any, out: Any) -> torch.Tensor:
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"layer {name!r} returns {type(out).__name__}, expected one tensor")
            if name in kept:
                raise RuntimeError(
                    f"layer {name!r} ran twice in one forward pass; explain a module used once"
                )
            if grad and (not kept or not out.requires_grad):
                out = out.detach().requires_grad_(True)
            elif not grad:
                out = out.detach()
            kept[name] = out
            return out.clone()

        return hook

    handles = [modules[name].register_forward_hook(make_hook(name)) for name in dict.fromkeys(layers)]
    try:
        yield kept
    finally:
        for h in handles:
            h.remove()


def _missing(kept: dict, layers: Sequence[str]) -> None:
    missing = [n for n in layers if n not in kept]
    if missing:
        raise RuntimeError(f"layer(s) {', '.join(missing)} were not reached in the forward pass")


def activations_and_grads(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layers: Sequence[str]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """One forward and one backward pass: logits ``(B, K)``, and for each layer its activation and the
    gradient of the target logit with respect to it (each ``(B, C_l, h_l, w_l)``, detached).

    The score differentiated is ``sum_i logits[i, targets[i]]``; in eval mode images do not interact,
    so each image's gradient is its own. A layer the score does not depend on gets zero gradient.
    """
    with capture(model, layers, grad=True) as kept, torch.enable_grad():
        logits = model(images)
    _missing(kept, layers)
    acts = [kept[n] for n in layers]
    score = logits.gather(1, targets[:, None]).sum()
    grads = torch.autograd.grad(score, acts, allow_unused=True)
    grads = [torch.zeros_like(a) if g is None else g for a, g in zip(acts, grads)]
    return logits.detach(), [a.detach() for a in acts], list(grads)


def activations(model: nn.Module, images: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass without gradients: logits ``(B, K)`` and the layer's output ``(B, C, h, w)``."""
    with capture(model, [layer], grad=False) as kept, torch.no_grad():
        logits = model(images)
    _missing(kept, [layer])
    return logits, kept[layer]


def cpu_generator(seed: int) -> torch.Generator:
    """A private generator (never the global RNG). Random numbers are drawn on the CPU and then
    moved, so a seed gives the same draws on every device."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    return torch.Generator(device="cpu").manual_seed(seed)


def chunks(n: int, size: int) -> Iterator[slice]:
    """Slices ``[0, size), [size, 2 size), ...`` covering ``range(n)``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a positive int, got {size!r}")
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)
