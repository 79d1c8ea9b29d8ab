"""Every step between what a method computes and the ``(B, H, W)`` map users get — in one place.

Peers hide these steps inside each method (pytorch-grad-cam ReLUs and min-max normalises silently;
captum's LayerGradCam does no ReLU unless asked and upsamples with ``nearest``). Here a method
returns its *raw* result and :func:`finish` applies exactly the steps listed in :data:`RULES`, in
this order, to each part of it (the built-ins' rules are written in :data:`RULES`; a method registered from
outside gives its :class:`Rule` to ``register_method(postprocess=...)`` or gets its family's
:data:`DEFAULT_RULES`, and ``register_method`` records it in :data:`RULES`):

1. channel reduction of an input-space attribution ``(B, C, H, W)`` -> ``(B, H, W)``:
   - ``"abs_sum"``: sum over channels of the absolute value. Used for every gradient-family method
     so that they are comparable with each other; it is the usual visualisation (captum's
     ``absolute_value``, the PAIR saliency library's grey-scale image). Simonyan et al. take the max
     over channels instead; the difference is a per-pixel choice, not a change of ranking in most
     images.
   - ``"mean"``: the channel mean, used by occlusion, whose window spans all channels so its value
     is the same in every channel.
2. ReLU, only where the method's paper applies it to the map (the CAM family: "we apply a ReLU to the
   linear combination of maps because we are only interested in the features that have a positive
   influence on the class of interest", Selvaraju et al. 2017). Applied at the layer's resolution,
   before upsampling, as in the paper and in captum (``relu_attributions=True`` then interpolate).
3. upsampling to the input's ``(H, W)``: bilinear, ``align_corners=False`` (a no-op when the map is
   already at that size).
4. for a list of parts (``fused_grad_cam``: one map per tap) the processed parts are **summed**.

Nothing is ever min-max normalised here: the scale of a map is left to the metrics (most are
invariant to it) and to display code (:mod:`bench.report.gallery` normalises for colour only).
The result is float32, contiguous, on the input's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CHANNEL_REDUCTIONS = ("abs_sum", "mean")


@dataclass(frozen=True)
class Rule:
    """The post-processing of one method: channel reduction (``"abs_sum"``, ``"mean"``, or ``None`` for a
    map that has no channel axis), whether to ReLU, and why (the source of the choice)."""

    channels: str | None
    relu: bool
    why: str = ""

    def __post_init__(self) -> None:
        if self.channels is not None and self.channels not in CHANNEL_REDUCTIONS:
            raise ValueError(f"Rule: channels must be None or one of {', '.join(CHANNEL_REDUCTIONS)}, "
                             f"got {self.channels!r}")
        if not isinstance(self.relu, bool):
            raise ValueError(f"Rule: relu must be True or False, got {self.relu!r}")


_CAM = "ReLU of the weighted sum of activation maps, as in the method's paper; then bilinear upsampling"
_GRAD = "input-space attribution; sum of |.| over colour channels (comparable across gradient methods)"

RULES: dict[str, Rule] = {
    # CAM family: raw = signed weighted sum of activations at layer resolution (B, h, w)
    "grad_cam": Rule(None, True, "Selvaraju et al. 2017, eq. 2: " + _CAM),
    "grad_cam_pp": Rule(None, True, "Chattopadhay et al. 2018 (as Grad-CAM): " + _CAM),
    "xgrad_cam": Rule(None, True, "Fu et al. 2020 (as Grad-CAM): " + _CAM),
    "layer_cam": Rule(None, True, "Jiang et al. 2021, eq. 4: " + _CAM),
    "score_cam": Rule(None, True, "Wang et al. 2020, eq. 3: " + _CAM),
    "eigen_cam": Rule(
        None, False, "Muhammad & Yeasin 2020: projection on the first principal component, no ReLU in the paper"
    ),
    "fused_grad_cam": Rule(None, True, "Grad-CAM (ReLU) on each FF-VGG19 tap, upsampled, then summed"),
    # gradient family: raw = attribution in input space (B, C, H, W)
    "saliency": Rule("abs_sum", False, "Simonyan et al. 2014 gradient magnitude; " + _GRAD),
    "input_x_gradient": Rule("abs_sum", False, _GRAD),
    "integrated_gradients": Rule("abs_sum", False, _GRAD),
    "smoothgrad": Rule("abs_sum", False, "Smilkov et al. 2017 (mean gradient, then |.|); " + _GRAD),
    "guided_backprop": Rule("abs_sum", False, _GRAD),
    "guided_grad_cam": Rule("abs_sum", False, "guided backprop x bilinear-upsampled ReLU'd Grad-CAM; " + _GRAD),
    "deeplift": Rule("abs_sum", False, _GRAD),
    # perturbation family
    "occlusion": Rule("mean", False, "drop of the class probability; same in every channel, so the mean"),
    "rise": Rule(None, False, "Petsiuk et al. 2018: probability-weighted sum of masks, already (B, H, W)"),
    # baselines: already (B, H, W) at input size
    "random": Rule(None, False, "uniform noise"),
    "centre": Rule(None, False, "centred Gaussian prior"),
    "edge": Rule(None, False, "Sobel gradient magnitude of the grey image"),
}


# The rule a method registered without ``postprocess=`` gets, by family (bench.attribution.base.FAMILIES).
# The built-ins' own rules are the ones written in RULES above; these are for methods from outside.
DEFAULT_RULES: dict[str, Rule] = {
    "cam": Rule(None, True, "CAM family default: a (B, h, w) map at the layer's resolution; " + _CAM),
    "gradient": Rule("abs_sum", False, "gradient family default: a (B, C, H, W) " + _GRAD[len("input-space "):]),
    "perturbation": Rule(None, False, "perturbation family default: a (B, h, w) map (as RISE), no ReLU"),
    "baseline": Rule(None, False, "baseline family default: a (B, h, w) map, no ReLU"),
}


def rule_for(method: str, family: str, rule: Rule | None = None) -> Rule:
    """The rule of a method being registered: ``rule`` if given, else the built-in's in :data:`RULES`, else
    :data:`DEFAULT_RULES` of its family.

    Raises:
        ValueError: ``rule`` is not a :class:`Rule`, or contradicts the built-in rule written in RULES.
    """
    if rule is not None and not isinstance(rule, Rule):
        raise ValueError(f"method {method!r}: postprocess must be a bench.attribution.Rule(channels, relu, why), "
                         f"got {type(rule).__name__}")
    if rule is not None and method in RULES and RULES[method] != rule:
        raise ValueError(f"method {method!r}: its rule is written in bench.attribution.postprocess.RULES; "
                         "edit it there rather than passing postprocess=")
    if rule is not None:
        return rule
    if method in RULES:
        return RULES[method]
    if family not in DEFAULT_RULES:
        raise ValueError(f"method {method!r}: no default post-processing for family {family!r}; "
                         f"valid families: {', '.join(DEFAULT_RULES)}")
    return DEFAULT_RULES[family]


def reduce_channels(attribution: torch.Tensor, how: str) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H, W)`` by ``how`` in :data:`CHANNEL_REDUCTIONS`."""
    if attribution.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) attribution, got shape {tuple(attribution.shape)}")
    if how == "abs_sum":
        return attribution.abs().sum(dim=1)
    if how == "mean":
        return attribution.mean(dim=1)
    raise ValueError(f"unknown channel reduction {how!r}; valid: {', '.join(CHANNEL_REDUCTIONS)}")


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, h, w)`` -> ``(B, H, W)``, bilinear with ``align_corners=False``; identity at equal size."""
    size = (int(size[0]), int(size[1]))
    if tuple(maps.shape[-2:]) == size:
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def finish(method: str, raw: torch.Tensor | list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Apply ``RULES[method]`` to ``raw`` (one tensor or a list of parts): -> ``(B, H, W)`` float32."""
    if method not in RULES:
        raise KeyError(f"no post-processing rule for method {method!r}: register it with "
                       "bench.attribution.register_method, which records its rule in RULES")
    rule = RULES[method]
    parts = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    if not parts:
        raise ValueError(f"{method}: returned no map to post-process")
    out: torch.Tensor | None = None
    for part in parts:
        part = part.detach()
        if rule.channels is not None:
            part = reduce_channels(part, rule.channels)
        if part.ndim != 3:
            fix = ("; a (B, C, H, W) attribution needs a channel reduction: register the method with "
                   "postprocess=Rule('abs_sum' or 'mean', relu)" if part.ndim == 4 and rule.channels is None else "")
            raise ValueError(f"{method}: expected a (B, h, w) map, got shape {tuple(part.shape)} "
                             f"(rule: channels={rule.channels!r}, relu={rule.relu}){fix}")
        if rule.relu:
            part = part.clamp_min(0)
        part = upsample(part.float(), size)
        out = part if out is None else out + part
    return out.float().contiguous()
