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

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from bench.attribution import postprocess as postprocess_rules
from bench.attribution.postprocess import Rule
from bench.registry import Registry

METHODS: Registry = Registry("attribution method", plugins=True)

FAMILIES = ("cam", "gradient", "perturbation", "baseline")

# Default number of images per internal forward pass for the methods that expand a batch
# (score_cam, integrated_gradients, smoothgrad, occlusion, rise). Bounds memory, not results.
DEFAULT_BATCH = 256

# A full-width VGG/FF-VGG19 block5 layer has 512 channels; score_cam's static cost assumes it.
REFERENCE_CHANNELS = 512

# method -> cost(options, channels); kept out of the registry meta so that the meta stays plain data
_COST_FNS: dict[str, Callable[[dict, int], dict]] = {}

UNKNOWN_COST = {"forward": None, "backward": None}  # a method registered without a cost


def _static_cost(cost: dict) -> Callable[[dict, int], dict]:
    return lambda options, channels: dict(cost)


def _check_callable(name: str, fn: Callable, options: dict[str, Any]) -> None:
    """``fn`` must take ``(model, images, targets, *, layer, **options)``: say which part is missing."""
    if not callable(fn):
        raise TypeError(f"method {name!r}: expected a function fn(model, images, targets, *, layer, **options), "
                        f"got {type(fn).__name__}")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    kinds = [p.kind for p in params.values()]
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    missing = [k for k in ("layer", *options) if k not in params]
    if (len(positional) < 3 and inspect.Parameter.VAR_POSITIONAL not in kinds) or missing:
        what = f"no parameter(s) {', '.join(missing)}" if missing else "fewer than 3 positional parameters"
        raise TypeError(f"method {name!r}: {fn.__qualname__}{inspect.signature(fn)} has {what}; a method is called "
                        "as fn(model, images, targets, *, layer, **options), with every option of options=")


def register_method(
    name: str,
    fn: Callable | None = None,
    *,
    family: str | None = None,
    uses_layer: bool | None = None,
    cost: Callable[[dict, int], dict] | dict | None = None,
    options: dict[str, Any] | None = None,
    stochastic: bool = False,
    postprocess: Rule | None = None,
    version: str = "0",
    description: str = "",
) -> Callable:
    """Register an attribution method: ``register_method(name, fn, family=...)``, or as a decorator
    ``@register_method(name, family=...)``. Returns ``fn``.

    ``fn(model, images, targets, *, layer, **options) -> raw``: ``images`` ``(B, C, H, W)`` (detached),
    ``targets`` int64 ``(B,)`` (checked), ``layer`` a name in ``model.cam_layers`` (``None`` for methods that
    use no layer). ``raw`` is the method's result *before* post-processing: a ``(B, h, w)`` map at any
    resolution, a ``(B, C, H, W)`` input-space attribution, or a list of maps (summed after processing).
    ``explain`` runs it in eval mode and restores the model's state afterwards.

    Args:
        family: ``cam``, ``gradient``, ``perturbation`` or ``baseline`` (:data:`FAMILIES`). Required: it picks
            the default post-processing and groups the method in tables.
        uses_layer: whether the method explains a layer (default: True for ``cam``, else False).
        cost: model passes per image, ``{"forward": n, "backward": m}``, or ``cost(options, channels) -> that
            dict`` when it depends on the options (``channels``: channels of the explained layer). Used in
            timing tables only; default: unknown (None).
        options: the method's keyword options and their defaults (suites set them under ``explain.options``).
        stochastic: the method draws random numbers; it must then take a ``seed`` option.
        postprocess: a :class:`bench.attribution.postprocess.Rule` (channel reduction, ReLU); default: the rule
            of the built-in of that name in ``postprocess.RULES``, else the family's
            ``postprocess.DEFAULT_RULES[family]``. Stored in ``RULES``, which :func:`explain` applies.
        version: bump it when the method's code changes: for a method registered from outside the ``bench``
            package it is part of the sweep's keys of the jobs that run it (:mod:`bench.sweep.sources`), so a
            new version recomputes them and nothing else.
        description: one line for ``bench list``.

    Raises:
        ValueError: no or an unknown family; a stochastic method without ``seed``; a name already registered
            (by bench or another plugin); a bad ``postprocess`` or ``version``.
        TypeError: ``fn`` is not callable with ``(model, images, targets, *, layer, **options)``.
    """
    if family is None:
        raise ValueError(f"register_method({name!r}): family is required, one of {', '.join(FAMILIES)}; it picks "
                         "the default post-processing (bench.attribution.postprocess.DEFAULT_RULES)")
    if family not in FAMILIES:
        raise ValueError(f"register_method({name!r}): family must be one of {FAMILIES}, got {family!r}")
    defaults = dict(options or {})
    if stochastic and "seed" not in defaults:
        raise ValueError(f"stochastic method {name!r} must take a 'seed' option")
    if not isinstance(version, (str, int)) or isinstance(version, bool) or not str(version):
        raise ValueError(f"register_method({name!r}): version must be a non-empty string, got {version!r}")
    rule = postprocess_rules.rule_for(name, family, postprocess)
    cost_fn = cost if callable(cost) else _static_cost(UNKNOWN_COST if cost is None else cost)
    layer = family == "cam" if uses_layer is None else bool(uses_layer)

    def _add(f: Callable) -> Callable:
        _check_callable(name, f, defaults)
        METHODS.register(
            name,
            f,
            family=family,
            uses_layer=layer,
            options=defaults,
            stochastic=stochastic,
            cost=dict(cost_fn(defaults, REFERENCE_CHANNELS)),
            version=str(version),
            description=str(description),
        )
        _COST_FNS[name] = cost_fn
        postprocess_rules.RULES[name] = rule
        return f

    return _add if fn is None else _add(fn)


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

    A layer named in ``model.cam_reshape`` (layer name -> an object with ``to_grid(out)`` and
    ``to_tokens(grid, out)``, e.g. :class:`bench.models.torchvision_models.TokenGrid` for a ViT's token
    sequences) is kept as ``to_grid(out)``, a ``(B, C, h, w)`` map, and downstream layers receive
    ``to_tokens(kept, out)``: the same values, built from the kept map so that gradients reach it. This
    is the one place where token layers become feature maps, for every method that reads a layer.
    """
    modules = model.cam_layers
    reshapes = getattr(model, "cam_reshape", None) or {}
    kept: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable:
        reshape = reshapes.get(name)

        def hook(_module: nn.Module, _inputs: Any, out: Any) -> torch.Tensor:
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"layer {name!r} returns {type(out).__name__}, expected one tensor")
            if name in kept:
                raise RuntimeError(
                    f"layer {name!r} ran twice in one forward pass; explain a module used once"
                )
            fmap = out if reshape is None else reshape.to_grid(out)
            if grad and (not kept or not fmap.requires_grad):
                fmap = fmap.detach().requires_grad_(True)
                out = out.detach()
            elif not grad:
                fmap = fmap.detach()
            kept[name] = fmap
            return fmap.clone() if reshape is None else reshape.to_tokens(fmap, out)

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
