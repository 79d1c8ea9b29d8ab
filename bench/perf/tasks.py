"""The contenders of each performance task: ours, each peer, and the cost floor, on identical inputs.

Every builder returns a :class:`Task`: callables that take no argument (the model, images, targets,
maps and batch sizes are bound in), so that :func:`bench.perf.timing.interleave` can alternate them.
Peers that are not installed are left out (``Task.missing`` says which and why). Peers that keep
hooks on the model are built inside their callable and released before it returns, so that they never
slow the other contenders down.

Models (untrained unless a trained one is passed in; cost does not depend on the weights except for
Score-CAM, whose number of distinct channel maps does):

- quick: ``create_model("ff_vgg19", 2, width=0.25, head_units=512)`` at 64 px (the ``quick`` suite's
  size; its preset now also sets ``batch_norm = true``, which the trained model of the report has);
- full: ``create_model("ff_vgg19", 2)`` (the paper's width) at 224 px.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.perf.timing import count_flops

QUICK = {"width": 0.25, "head_units": 512}
LAYER = "block5_conv3"


def module_name(model: nn.Module, layer: str = LAYER) -> str:
    """The name in ``model.named_modules()`` of the module whose output is ``layer`` (what torchcam
    takes; ``features.33`` without BatchNorm, another index with it)."""
    target = model.cam_layers[layer]
    return next(n for n, m in model.named_modules() if m is target)


@dataclass
class Task:
    key: str
    title: str
    setting: str
    n_images: int
    contenders: dict[str, Callable[[], Any]]  # "ours", peers, floors
    peers: list[str]
    floor: list[str]  # the contenders whose per-round minimum is the cost floor
    floor_what: str
    target: str
    flops: dict[str, float] = field(default_factory=dict)  # per call of each contender
    missing: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    agreement: list[dict[str, Any]] = field(default_factory=list)


def quick_model(seed: int = 0) -> nn.Module:
    from bench.models import create_model

    torch.manual_seed(seed)
    return create_model("ff_vgg19", 2, **QUICK).eval()


def full_model(seed: int = 0) -> nn.Module:
    from bench.models import create_model

    torch.manual_seed(seed)
    return create_model("ff_vgg19", 2).eval()


def random_inputs(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, size, size), generator=g), torch.randint(0, 2, (n,), generator=g)


def coarse_maps(n: int, size: int, seed: int = 0, cells: int = 7) -> torch.Tensor:
    """Grad-CAM-like maps: ReLU of a random ``cells`` x ``cells`` grid, upsampled bilinearly (ties at 0)."""
    g = torch.Generator().manual_seed(seed + 1)
    c = torch.randn((n, 1, cells, cells), generator=g).clamp_min(0)
    return F.interpolate(c, size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def _clear_grads(model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = None


def _model_context(model: nn.Module, layout):
    """The fastest way we know to run ``model`` in ``layout``: channels-last goes with
    :func:`bench.models.fast.fast_model` (BatchNorms folded, weights channels-last), as ours runs it."""
    from contextlib import nullcontext

    from bench.models.fast import fast_model

    return fast_model(model) if layout == torch.channels_last else nullcontext()


def bare_forwards(model: nn.Module, images: torch.Tensor, n: int, batch: int, layout=torch.channels_last):
    """A callable running ``n`` forward passes (copies of ``images`` cycled) in batches of ``batch``,
    without gradients, in memory ``layout``: the floor of forward-only work."""
    reps = math.ceil(n / images.shape[0])
    pool = images.repeat(reps, 1, 1, 1)[:n].contiguous(memory_format=layout)

    def run() -> None:
        with torch.no_grad(), _model_context(model, layout):
            for lo in range(0, n, batch):
                model(pool[lo : lo + batch])

    return run


def forward_backward(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layout=torch.contiguous_format):
    """One forward and one backward pass to the input (gradient of the summed target logits)."""
    x0 = images.contiguous(memory_format=layout)

    def run() -> None:
        x = x0.detach().requires_grad_(True)
        with _model_context(model, layout):
            score = model(x).gather(1, targets[:, None]).sum()
            torch.autograd.grad(score, x)

    return run


def forward_flops(model: nn.Module, size: int) -> int:
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        return count_flops(lambda: model(x))


# ------------------------------------------------------------------------------------------------
# Grad-CAM


def grad_cam_task(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, label: str) -> Task:
    from bench.attribution import explain

    b, _, h, w = images.shape
    layer_mod = model.cam_layers[LAYER]
    tl = targets.tolist()
    c: dict[str, Callable] = {"ours": lambda: explain(model, images, targets, "grad_cam")}
    missing: dict[str, str] = {}
    try:
        from captum.attr import LayerAttribution, LayerGradCam

        def captum_gc():
            a = LayerGradCam(model, layer_mod).attribute(images, target=targets, relu_attributions=True)
            return LayerAttribution.interpolate(a, (h, w), "bilinear")[:, 0]

        c["captum LayerGradCam"] = captum_gc
    except ImportError as e:
        missing["captum LayerGradCam"] = str(e)
    try:
        from pytorch_grad_cam import GradCAM as PGC
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        def pgc_gc():
            with PGC(model, [layer_mod]) as cam:
                out = cam(input_tensor=images, targets=[ClassifierOutputTarget(i) for i in tl])
            _clear_grads(model)  # it backpropagates into the parameters' .grad
            return out

        c["pytorch-grad-cam GradCAM"] = pgc_gc
    except ImportError as e:
        missing["pytorch-grad-cam GradCAM"] = str(e)
    try:
        from torchcam.methods import GradCAM as TCG

        def torchcam_gc():
            with TCG(model, module_name(model), input_shape=(3, h, w)) as ex:
                scores = model(images)
                cam = ex(tl, scores, normalized=False)[0]
            return F.interpolate(cam[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]

        c["torchcam GradCAM"] = torchcam_gc
    except ImportError as e:
        missing["torchcam GradCAM"] = str(e)
    peers = [k for k in c if k != "ours"]
    c["forward+backward (NCHW)"] = forward_backward(model, images, targets)
    c["forward+backward (channels-last)"] = forward_backward(model, images, targets, torch.channels_last)
    c["forward only"] = bare_forwards(model, images, b, b, torch.contiguous_format)
    return Task(
        key=f"grad_cam_{label}", title=f"Grad-CAM, {label}",
        setting=f"{b} images of {h} px in one batch, layer {LAYER}, maps at input resolution",
        n_images=b, contenders=c, peers=peers,
        floor=["forward+backward (NCHW)", "forward+backward (channels-last)"],
        floor_what="one forward + backward pass to the "
        "input, the faster of plain NCHW and ours' fast path (channels-last, BatchNorms folded)",
        target="no slower than any peer; <= 1.10x the floor", missing=missing,
        extra={"fast_model_ms": fast_model_cost_ms(model)},
    )


def fast_model_cost_ms(model: nn.Module, repeats: int = 5) -> float:
    """Milliseconds (median of ``repeats``) of entering and leaving :func:`bench.models.fast.fast_model`
    on ``model``: what every call of ours pays to fold the BatchNorms and re-lay the conv weights."""
    import statistics
    import time

    from bench.models.fast import fast_model

    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        with fast_model(model):
            pass
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times[1:])  # the first pays for allocator warm-up


def grad_cam_agreement(model, images, targets) -> list[dict[str, Any]]:
    """Our Grad-CAM vs each peer where the definitions coincide (ReLU'd map, no min-max)."""
    from bench.attribution import explain
    from bench.attribution.base import activations_and_grads
    from bench.attribution.cam import grad_cam_map

    b, _, h, w = images.shape
    ours = explain(model, images, targets, "grad_cam")
    _, (a,), (g,) = activations_and_grads(model, images, targets, [LAYER])
    ours_low = grad_cam_map(a, g).clamp_min(0)
    scale = float(ours.abs().max())
    out = []
    try:
        from captum.attr import LayerAttribution, LayerGradCam

        cap = LayerGradCam(model, model.cam_layers[LAYER]).attribute(images, target=targets, relu_attributions=True)
        cap = LayerAttribution.interpolate(cap, (h, w), "bilinear")[:, 0]
        out.append(_agree("grad_cam", "captum LayerGradCam (relu_attributions=True, bilinear interpolate)",
                          ours, cap, scale, "same definition: equal up to float rounding"))
    except ImportError:
        pass
    try:
        from torchcam.methods import GradCAM as TCG

        with TCG(model, module_name(model), input_shape=(3, h, w)) as ex:
            cam = ex(targets.tolist(), model(images), normalized=False)[0].detach()
        tc = F.interpolate(cam[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        out.append(_agree("grad_cam", "torchcam GradCAM (normalized=False, our bilinear upsampling)", ours, tc,
                          scale, "same definition: equal up to float rounding"))
    except ImportError:
        pass
    try:
        from pytorch_grad_cam import GradCAM as PGC
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        tg = [ClassifierOutputTarget(int(i)) for i in targets]
        with PGC(model, [model.cam_layers[LAYER]]) as cam:
            cam(input_tensor=images, targets=tg)
            acts = cam.activations_and_grads.activations[0].numpy()
            grads = cam.activations_and_grads.gradients[0].numpy()
            low = np.maximum(cam.get_cam_image(images, model.cam_layers[LAYER], tg, acts, grads), 0)
        _clear_grads(model)
        out.append(_agree("grad_cam", "pytorch-grad-cam GradCAM, its map before min-max and resize (layer "
                          "resolution)", ours_low, torch.from_numpy(low), float(ours_low.abs().max()),
                          "same definition at layer resolution; its returned maps are min-max normalised and "
                          "resized with OpenCV, so compare shapes of maps only after normalising"))
    except ImportError:
        pass
    return out


def _agree(ours_name: str, peer: str, ours: torch.Tensor, theirs: torch.Tensor, scale: float, note: str):
    d = (ours.double() - theirs.double().reshape(ours.shape)).abs().max().item()
    return {"ours": ours_name, "peer": peer, "max_abs_diff": d, "relative": d / scale if scale else math.nan,
            "agree": d <= 1e-4 * max(scale, 1e-12), "note": note}


# ------------------------------------------------------------------------------------------------
# Score-CAM


def distinct_channels(model: nn.Module, images: torch.Tensor) -> tuple[int, int, int]:
    """(K, non-constant channel maps, distinct non-constant normalised maps) summed over images."""
    from bench.attribution.base import activations

    _, a = activations(model, images, LAYER)
    f = a.flatten(2)
    lo, hi = f.amin(2, keepdim=True), f.amax(2, keepdim=True)
    valid = (hi > lo)[..., 0]
    n = (f - lo) / (hi - lo).clamp_min(1e-30)
    distinct = sum(int(torch.unique(n[i][valid[i]], dim=0).shape[0]) for i in range(a.shape[0]))
    return a.shape[0] * a.shape[1], int(valid.sum()), distinct


def score_cam_task(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, label: str,
                   batch_size: int) -> Task:
    from bench.attribution import explain

    b, _, h, w = images.shape
    tl = targets.tolist()
    layer_mod = model.cam_layers[LAYER]
    total, nonconst, distinct = distinct_channels(model, images)
    k = total // b
    c: dict[str, Callable] = {
        "ours": lambda: explain(model, images, targets, "score_cam", batch_size=batch_size)
    }
    missing: dict[str, str] = {}
    try:
        from torchcam.methods import ScoreCAM as TSC

        def torchcam_sc():
            with TSC(model, module_name(model), batch_size=batch_size, input_shape=(3, h, w)) as ex:
                with torch.no_grad():
                    model(images)
                cam = ex(tl, normalized=False)[0]
            return F.interpolate(cam[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]

        c["torchcam ScoreCAM"] = torchcam_sc
    except ImportError as e:
        missing["torchcam ScoreCAM"] = str(e)
    try:
        from pytorch_grad_cam import ScoreCAM as PSC
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        def pgc_sc():
            with PSC(model, [layer_mod]) as cam:
                cam.batch_size = batch_size
                return cam(input_tensor=images, targets=[ClassifierOutputTarget(i) for i in tl])

        c["pytorch-grad-cam ScoreCAM"] = pgc_sc
    except ImportError as e:
        missing["pytorch-grad-cam ScoreCAM"] = str(e)
    peers = [n for n in c if n != "ours"]
    n_ours = b + distinct
    c["floor"] = bare_forwards(model, images, n_ours, batch_size)
    fwd = forward_flops(model, h)
    flops = {"ours": n_ours * fwd, "floor": n_ours * fwd, "torchcam ScoreCAM": (2 * b + total) * fwd,
             "pytorch-grad-cam ScoreCAM": (b + total) * fwd}
    return Task(
        key=f"score_cam_{label}", title=f"Score-CAM, {label}",
        setting=f"{b} images of {h} px, layer {LAYER} ({k} channels), masked images in batches of {batch_size} "
        "for every implementation", n_images=b, contenders=c, peers=peers, floor=["floor"],
        floor_what=f"the {n_ours} bare forward passes ours needs (1 per image + 1 per distinct non-constant "
        "channel map), run as ours runs them (channels-last, BatchNorms folded), same batch size",
        target=">= 1.5x faster than the fastest peer", flops=flops, missing=missing,
        extra={"channels": k, "pairs": total, "non_constant": nonconst, "distinct": distinct,
               "forwards": {"ours": n_ours, "torchcam ScoreCAM": 2 * b + total,
                            "pytorch-grad-cam ScoreCAM": b + total}},
    )


def score_cam_agreement(model, images, targets) -> list[dict[str, Any]]:
    """Score-CAM definitions differ between the three; report how close the maps are (Pearson r)."""
    from bench.attribution import explain

    b, _, h, w = images.shape
    ours = explain(model, images, targets, "score_cam")
    out = []

    def corr(theirs) -> float:
        t = torch.as_tensor(np.asarray(theirs)).double().reshape(b, -1)
        o = ours.double().reshape(b, -1)
        rs = []
        for i in range(b):
            x, y = o[i] - o[i].mean(), t[i] - t[i].mean()
            den = float(x.norm() * y.norm())
            rs.append(float((x * y).sum()) / den if den > 0 else math.nan)
        finite = [r for r in rs if math.isfinite(r)]
        return float(np.median(finite)) if finite else math.nan  # NaN: a constant map (e.g. all zero)

    try:
        from torchcam.methods import ScoreCAM as TSC

        with TSC(model, module_name(model), input_shape=(3, h, w)) as ex:
            with torch.no_grad():
                model(images)
            cam = ex(targets.tolist(), normalized=False)[0]
        tc = F.interpolate(cam[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        out.append({"ours": "score_cam", "peer": "torchcam ScoreCAM", "pearson_median": corr(tc),
                    "agree": False, "note": "different definition: weights = softmax over channels of "
                    "(target logit of masked input - target logit of the input); masks normalised at layer "
                    "resolution. Ours (the official code): weight = softmax probability of the target class"})
    except ImportError:
        pass
    try:
        from pytorch_grad_cam import ScoreCAM as PSC
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        with PSC(model, [model.cam_layers[LAYER]]) as cam:
            pg = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(i)) for i in targets])
        out.append({"ours": "score_cam", "peer": "pytorch-grad-cam ScoreCAM", "pearson_median": corr(pg),
                    "agree": False, "note": "different definition: weights = softmax over channels of the target "
                    "*logit* of each masked input; masks upsampled with align_corners=True; map min-max "
                    "normalised and resized with OpenCV"})
    except ImportError:
        pass
    return out


# ------------------------------------------------------------------------------------------------
# deletion + insertion


class FixedMaps:
    """A torchcam CAM extractor that returns given maps: torchcam's DeletionInsertionMetric then
    scores exactly the maps we score, and no CAM is computed inside the timed call."""

    def __init__(self, model: nn.Module, maps: torch.Tensor) -> None:
        self.model = model
        self.maps = maps

    def __call__(self, class_idx=None, scores=None, normalized=True, **kwargs):
        return [self.maps]

    def fuse_cams(self, cams):
        return cams[0]

    def _hooks_off(self):
        from contextlib import nullcontext

        return nullcontext()


def deletion_task(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, *,
                  label: str, steps: int, batch_size: int) -> Task:
    from bench.metrics import deletion_insertion

    b, _, h, w = images.shape
    c: dict[str, Callable] = {
        "ours": lambda: deletion_insertion(model, images, maps, targets, steps=steps, batch_size=batch_size)
    }
    missing: dict[str, str] = {}
    try:
        from torchcam.metrics import DeletionInsertionMetric

        def torchcam_di():
            metric = DeletionInsertionMetric(FixedMaps(model, maps), partial(torch.softmax, dim=-1), steps=steps,
                                             batch_size=batch_size)
            metric.update(images, class_idx=targets.tolist())
            return metric.summary()

        c["torchcam DeletionInsertionMetric"] = torchcam_di
    except ImportError as e:
        missing["torchcam DeletionInsertionMetric"] = str(e)
    peers = [n for n in c if n != "ours"]
    n_ours = b * (2 * steps + 1)
    c["floor"] = bare_forwards(model, images, n_ours, batch_size)
    fwd = forward_flops(model, h)
    flops = {"ours": n_ours * fwd, "floor": n_ours * fwd, "torchcam DeletionInsertionMetric": b * 2 * steps * fwd}
    return Task(
        key=f"deletion_insertion_{label}", title=f"Deletion + insertion, {label}",
        setting=f"{b} images of {h} px, {steps} steps, zeros substrate (torchcam: zeros baseline), "
        f"{batch_size} perturbed images per forward pass for both", n_images=b, contenders=c, peers=peers,
        floor=["floor"], floor_what=f"the {n_ours} bare forward passes ours needs ({2 * steps + 1} per image), "
        "run as ours runs them (channels-last, BatchNorms folded), same batch size",
        target=">= 2x faster than torchcam; <= 1.15x the floor", flops=flops, missing=missing,
        extra={"forwards": {"ours": n_ours, "torchcam DeletionInsertionMetric": b * 2 * steps}},
    )


def deletion_agreement(model, images, targets, maps, steps: int) -> list[dict[str, Any]]:
    """Ours vs torchcam's DeletionInsertionMetric per image. With the blurred image as *both* our
    substrate and torchcam's baseline the two definitions coincide (when H*W is a multiple of steps)."""
    from bench.metrics import deletion_insertion
    from bench.metrics.faithfulness import gaussian_blur

    try:
        from torchcam.metrics import DeletionInsertionMetric
    except ImportError:
        return []
    out = []
    for substrate, baseline, note in (
        ("blur", lambda x: gaussian_blur(x, 11, 5.0), "same definition: blurred image as deletion substrate "
         "and insertion start in both"),
        ("zeros", None, "deletion coincides (zeros); insertion does not: torchcam starts insertion from its "
         "baseline (zeros), ours from the blurred image (RISE)"),
    ):
        ours = deletion_insertion(model, images, maps, targets, steps=steps, substrate=substrate)
        theirs = {"deletion": [], "insertion": []}
        for i in range(images.shape[0]):
            m = DeletionInsertionMetric(FixedMaps(model, maps[i : i + 1]), partial(torch.softmax, dim=-1),
                                        steps=steps, baseline=baseline)
            m.update(images[i : i + 1], class_idx=[int(targets[i])])
            s = m.summary()
            theirs["deletion"].append(s["deletion_auc"])
            theirs["insertion"].append(s["insertion_auc"])
        for curve in ("deletion", "insertion"):
            d = float(np.max(np.abs(np.asarray(ours[curve]) - np.asarray(theirs[curve]))))
            same = substrate == "blur" or curve == "deletion"
            out.append({"ours": f"{curve} (substrate={substrate})", "peer": "torchcam DeletionInsertionMetric",
                        "max_abs_diff": d, "agree": d <= 1e-5 if same else None, "expected_equal": same,
                        "note": note})
    return out


# ------------------------------------------------------------------------------------------------
# ROAD


def smooth_maps(n: int, size: int, seed: int = 0, cells: int = 7) -> torch.Tensor:
    """Grad-CAM-like float64 maps without ties: a random ``cells`` x ``cells`` grid upsampled bilinearly, plus
    1e-6 noise. pytorch-grad-cam's ROAD thresholds at a percentile and removes every pixel tied with it, so
    tied maps (ReLU zeros) would give it other masks (or a singular system: all pixels removed)."""
    g = torch.Generator().manual_seed(seed + 2)
    c = torch.randn((n, 1, cells, cells), generator=g, dtype=torch.float64)
    m = F.interpolate(c, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return m + 1e-6 * torch.rand(m.shape, generator=g, dtype=torch.float64)


def _pgc_road(model, images, targets, maps, percentiles, noise: float | None = None):
    """pytorch-grad-cam's ROAD, MoRF and LeRF averaged over ``percentiles``; ``noise`` None = its default."""
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric, RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer, ROADLeastRelevantFirstAverage, \
        ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    tg = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    cams = maps.numpy()
    if noise is None:
        return (ROADMostRelevantFirstAverage(percentiles)(images, cams, tg, model),
                ROADLeastRelevantFirstAverage(percentiles)(images, cams, tg, model))
    out = []
    for remover in (RemoveMostRelevantFirst, RemoveLeastRelevantFirst):
        out.append(np.stack([PerturbationConfidenceMetric(remover(p, NoisyLinearImputer(noise=noise)))(
            images, cams, tg, model, return_diff=False) for p in percentiles], axis=1))
    return tuple(out)


def road_percentiles(steps: int) -> list[int]:
    """pytorch-grad-cam's percentiles for our fractions ``k / steps``, k = 1 .. steps - 1 (percentile p removes
    100 - p %), as its default [10, ..., 90] for 10 steps."""
    return [round(100 * (1 - k / steps)) for k in range(1, steps)]


def road_task(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, *,
              label: str, steps: int, batch_size: int) -> Task:
    """ROAD (both orders, noise on as in both defaults) vs pytorch-grad-cam's ``ROADMostRelevantFirstAverage``
    + ``ROADLeastRelevantFirstAverage`` at the same fractions, and the bare forward passes ours needs."""
    import warnings

    from bench.metrics import road

    b, _, h, w = images.shape
    c: dict[str, Callable] = {
        "ours": lambda: road(model, images, maps, targets, steps=steps, batch_size=batch_size)}
    missing: dict[str, str] = {}
    try:
        import pytorch_grad_cam.metrics.road  # noqa: F401

        def pgc_road():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its singular-matrix and numpy warnings
                return _pgc_road(model, images, targets, maps, road_percentiles(steps))

        c["pytorch-grad-cam ROAD"] = pgc_road
    except ImportError as e:
        missing["pytorch-grad-cam ROAD"] = str(e)
    missing["Quantus ROAD"] = "not run: its ROAD scores accuracy (argmax == label), not the class probability"
    peers = [n for n in c if n != "ours"]
    n_ours = b * (2 * steps - 1)
    c["floor"] = bare_forwards(model, images, n_ours, batch_size)
    fwd = forward_flops(model, h)
    n_pgc = b * 4 * (steps - 1)  # per fraction and order: the unperturbed and the imputed batch
    return Task(
        key=f"road_{label}", title=f"ROAD (MoRF + LeRF), {label}",
        setting=f"{b} images of {h} px, {steps - 1} fractions ({', '.join(f'{k}/{steps}' for k in range(1, steps))}) "
        f"x 2 orders, noise 0.01, smooth random maps without ties; ours {batch_size} imputed images per forward "
        "pass, pytorch-grad-cam one batch of all images per fraction", n_images=b, contenders=c, peers=peers,
        floor=["floor"], floor_what=f"the {n_ours} bare forward passes ours needs ({2 * steps - 1} per image), run "
        "as ours runs them (channels-last, BatchNorms folded); the imputation is on top",
        target=">= 5x faster than the fastest peer", flops={"ours": n_ours * fwd, "floor": n_ours * fwd,
                                                             "pytorch-grad-cam ROAD": n_pgc * fwd},
        missing=missing, extra={"forwards": {"ours": n_ours, "pytorch-grad-cam ROAD": n_pgc},
                                "imputations": {"ours": 2 * b * (steps - 1), "pytorch-grad-cam ROAD": 2 * b * (steps - 1)}},
    )


def road_agreement(model, images, targets, maps, steps: int) -> list[dict[str, Any]]:
    """Ours vs pytorch-grad-cam's ROAD per image and fraction with the noise off in both (the same sparse
    system solved): max |difference| of the probabilities. Needs ``H * W`` a multiple of 100 and maps
    without ties, where its percentile threshold removes exactly our pixel counts."""
    from bench.metrics import road

    try:
        import pytorch_grad_cam.metrics.road  # noqa: F401
    except ImportError:
        return []
    import warnings

    ours = road(model, images, maps, targets, steps=steps, noise=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _pgc_road(model, images, targets, maps, road_percentiles(steps), noise=0.0)
    out = []
    for name, t in zip(("road_morf", "road_lerf"), theirs):
        d = float(np.max(np.abs(ours[f"{name}_curve"][:, 1:] - t)))
        out.append({"ours": f"{name} (noise off)", "peer": "pytorch-grad-cam ROAD (NoisyLinearImputer(noise=0))",
                    "max_abs_diff": d, "agree": d <= 1e-5, "expected_equal": True,
                    "note": f"same definition: {steps - 1} fractions, {images.shape[-1]} px (H*W a multiple of 100), "
                            "probabilities per image and fraction"})
    return out


# ------------------------------------------------------------------------------------------------
# localisation metrics


QUANTUS_PAIRS = {
    "pointing_game": "PointingGame",
    "energy_pointing_game": "RelevanceMassAccuracy",
    "relevance_rank_accuracy": "RelevanceRankAccuracy",
}


def quantus_metric(name: str):
    import quantus

    return getattr(quantus, QUANTUS_PAIRS[name])(disable_warnings=True, display_progressbar=False)


def quantus_scores(name: str, sal: np.ndarray, masks: np.ndarray, batch_size: int = 256) -> np.ndarray:
    n = len(sal)
    x = np.zeros((n, 1, *sal.shape[1:]), dtype=np.float32)
    return np.asarray(quantus_metric(name)(model=None, x_batch=x, y_batch=np.zeros(n, dtype=int),
                                           a_batch=sal[:, None], s_batch=masks[:, None].astype(np.float32),
                                           batch_size=batch_size), dtype=np.float64)


def localisation_agreement(sal: np.ndarray, masks: np.ndarray) -> list[dict[str, Any]]:
    from bench.metrics import METRICS

    try:
        import quantus  # noqa: F401
    except ImportError:
        return []
    out = []
    flat = sal.reshape(len(sal), -1)
    n_max = (flat == flat.max(axis=1, keepdims=True)).sum(axis=1)
    for name in QUANTUS_PAIRS:
        ours = METRICS.get(name)(sal, masks)
        theirs = quantus_scores(name, sal, masks)
        diff = np.abs(ours - theirs)
        row = {"ours": name, "peer": f"quantus {QUANTUS_PAIRS[name]}", "n": len(sal),
               "max_abs_diff": float(np.nanmax(diff)), "n_differ": int((diff > 1e-6).sum())}
        if name == "pointing_game":
            row["note"] = (f"{int((n_max > 1).sum())} maps have a tied maximum; Quantus counts a hit if ANY "
                           "maximum is on the mask, ours takes the first maximum in row-major order")
        elif name == "relevance_rank_accuracy":
            row["note"] = ("Quantus breaks ties at the K-th value by argsort order (arbitrary); ours shares the "
                           "tied places equally (expected value). Maps with exact zeros tie whenever the mask is "
                           "larger than the positive region")
        else:
            row["note"] = "same definition on non-negative maps (ours takes the positive part first)"
        row["agree"] = row["n_differ"] == 0
        out.append(row)
    # the empty-mask case
    s1 = sal[:2].copy()
    m1 = np.zeros_like(masks[:2])
    m1[1] = masks[1]
    for name in QUANTUS_PAIRS:
        with np.errstate(invalid="ignore", divide="ignore"):
            theirs = quantus_scores(name, s1, m1)
        ours = METRICS.get(name)(s1, m1)
        out.append({"ours": f"{name}, empty mask", "peer": f"quantus {QUANTUS_PAIRS[name]}", "n": 1,
                    "ours_value": float(ours[0]), "peer_value": float(theirs[0]),
                    "agree": bool(np.isnan(ours[0]) and np.isnan(theirs[0])),
                    "note": "ours: NaN (undefined)" + (
                        "; Quantus sets NaN into a *boolean* array, which stores True: an empty mask is "
                        "scored as a hit (1.0)" if name == "pointing_game" and not np.isnan(theirs[0]) else "")})
    return out
