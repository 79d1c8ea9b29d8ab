"""Sanity check of an attribution method: cascading model-parameter randomisation (Adebayo et al. 2018).

If a method explains the model, its maps must change when the model's weights are destroyed. The
weights are re-initialised stage by stage from the output down (for FF-VGG19: the head, then block5,
block4, block3, block2, block1, cumulatively) and at each stage the maps of the randomised model are
compared with those of the trained model. The bar is the similarity of maps of *unrelated* images
from the trained model: a method passes a stage where its similarity falls below that bar.
Source: ../shared/REFERENCE.md section 3 (Adebayo et al., NeurIPS 2018; Arun et al. 2021).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from skimage.metrics import structural_similarity
from torch import nn

__all__ = ["randomisation_test", "randomisation_stages", "map_similarity"]

Stage = tuple[str, list[str]]  # (stage name, qualified names of the modules it re-initialises)


def _owns_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


def randomisation_stages(model: nn.Module) -> list[Stage]:
    """The randomisation stages of ``model``, from the output down.

    Found from the modules, generically:

    - a model with a ``features`` ``nn.Sequential`` (the VGG family here): stage ``"head"`` holds every
      module with parameters or buffers outside ``features`` (FF-VGG19: the dense head and the
      BatchNorms of the block3/block4 taps; VGG19: the classifier); then ``features`` is cut into
      blocks after each pooling layer, named ``block1 ..`` from the input, and listed from the
      deepest (FF-VGG19: block5 = block5_conv1..conv3, block4, ..., block1);
    - any other model: each top-level child that has parameters or buffers is a stage named after
      it, from the last registered to the first.

    Returns ``[(stage, [module names])]``; names are those of ``model.named_modules()``.
    """
    named = dict(model.named_modules())
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        prefix = next(n for n, m in named.items() if m is features)
        def in_features(n: str) -> bool:
            return n == prefix or n.startswith(prefix + ".")

        head = [n for n, m in named.items() if n and not in_features(n) and _owns_state(m)]
        blocks: list[list[str]] = [[]]
        for i, layer in enumerate(features):
            for sub, m in layer.named_modules():
                if _owns_state(m):
                    blocks[-1].append(f"{prefix}.{i}" + (f".{sub}" if sub else ""))
            if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                blocks.append([])
        blocks = [b for b in blocks if b]
        stages = [("head", head)] if head else []
        stages += [(f"block{i + 1}", b) for i, b in reversed(list(enumerate(blocks)))]
        return stages
    stages = []
    for name, child in reversed(list(model.named_children())):
        mods = [f"{name}.{n}" if n else name for n, m in child.named_modules() if _owns_state(m)]
        if mods:
            stages.append((name, mods))
    return stages


def _reinitialise(module: nn.Module) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()  # conv / linear: fresh random weights; BatchNorm: identity, fresh statistics
    elif hasattr(module, "reset_running_stats"):
        module.reset_running_stats()
    else:
        for p in module.parameters(recurse=False):
            nn.init.normal_(p, std=0.01)


def _maps(method, model, images, targets, options) -> np.ndarray:
    if isinstance(method, str):
        from bench.attribution import explain  # imported late: attribution depends on nothing here

        out = explain(model, images, targets, method, **options)
    else:
        out = method(model, images, targets)
    if isinstance(out, torch.Tensor):
        out = out.detach().float().cpu().numpy()
    out = np.asarray(out, dtype=np.float64)
    if out.ndim != 3 or out.shape[0] != images.shape[0]:
        raise ValueError(f"method must return (B, H, W) maps for images {tuple(images.shape)}, got {out.shape}")
    return out


def _nanmean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def _nanstd(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.std()) if a.size else float("nan")


def _normalise01(a: np.ndarray) -> np.ndarray:
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def map_similarity(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair Spearman rank correlation and SSIM of maps ``a``, ``b`` (B, H, W).

    Spearman: Pearson correlation of the average ranks of the pixels (NaN where a map is constant).
    SSIM: ``skimage.metrics.structural_similarity`` of the maps min-max normalised to [0, 1]
    (constant maps become zeros), ``data_range=1``, window 7 (smaller for maps under 7 px).
    Maps with NaN or infinity give NaN for both. Returns two float64 (B,) arrays.
    """
    B = a.shape[0]
    ra = rankdata(a.reshape(B, -1), axis=1)
    rb = rankdata(b.reshape(B, -1), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        spear = np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)
    win = min(7, *a.shape[1:])
    win -= 1 - win % 2  # odd
    ssim = np.full(B, np.nan)
    for i in range(B):
        if np.isfinite(a[i]).all() and np.isfinite(b[i]).all():
            if win >= 3:
                ssim[i] = structural_similarity(
                    _normalise01(a[i]), _normalise01(b[i]), data_range=1.0, win_size=win
                )
    finite = np.isfinite(a.reshape(B, -1)).all(axis=1) & np.isfinite(b.reshape(B, -1)).all(axis=1)
    spear[~finite] = np.nan
    return spear, ssim


def _checked_stages(trained: nn.Module, stages: list[Stage] | None) -> list[Stage]:
    """``stages``, or :func:`randomisation_stages` of ``trained`` when None; ``ValueError`` for a module
    name that is not one of ``trained.named_modules()``."""
    stages = randomisation_stages(trained) if stages is None else stages
    named = dict(trained.named_modules())
    unknown = [n for _, mods in stages for n in mods if n not in named]
    if unknown:
        raise ValueError(f"randomisation_test: unknown module names in stages: {unknown}")
    return stages


@contextlib.contextmanager
def _seeded(model: nn.Module, seed: int) -> Iterator[None]:
    """Within the block the global torch RNG (CPU, and the CUDA devices ``model``'s parameters are on)
    is seeded with ``seed``; its previous state is restored afterwards."""
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"]
    with torch.random.fork_rng(devices=sorted({d.index or 0 for d in devices})):
        torch.manual_seed(seed)
        yield


def _stage_row(
    name: str, index: int, mods: list[str], ref: np.ndarray, maps: np.ndarray, baseline: tuple[float, float]
) -> dict:
    """One row of :func:`randomisation_test`'s table: the similarity of stage ``index``'s maps ``(B, H, W)``
    to the trained model's ``ref`` ``(B, H, W)`` (means and stds over images), and whether both means
    fall below the unrelated-image ``baseline`` ``(spearman, ssim)``."""
    baseline_spearman, baseline_ssim = baseline
    sp, ss = map_similarity(ref, maps)
    ok = np.isfinite(sp) & np.isfinite(ss)
    spm, ssm = _nanmean(sp), _nanmean(ss)
    return {
        "stage": name,
        "stage_index": index,
        "modules": ",".join(mods),
        "spearman": spm,
        "ssim": ssm,
        "spearman_std": _nanstd(sp),
        "ssim_std": _nanstd(ss),
        "n": int(ok.sum()),
        "baseline_spearman": baseline_spearman,
        "baseline_ssim": baseline_ssim,
        "passed": bool(index > 0 and spm < baseline_spearman and ssm < baseline_ssim),
    }


def randomisation_test(
    model: nn.Module,
    images: torch.Tensor,
    targets,
    method: str | Callable,
    *,
    stages: list[Stage] | None = None,
    seed: int = 0,
    absolute: bool = False,
    method_options: dict | None = None,
) -> pd.DataFrame:
    """Cascading randomisation test of an attribution method (Adebayo et al., NeurIPS 2018).

    Definition: on a deep copy of ``model`` (the given model is never modified or even run), the
    modules of each stage of :func:`randomisation_stages` are re-initialised (``reset_parameters``,
    i.e. fresh random conv/linear weights and identity BatchNorms), cumulatively from the output
    down. After each stage the maps of the randomised copy are compared with the trained model's,
    image by image, by Spearman rank correlation and SSIM (:func:`map_similarity`; with
    ``absolute=True`` on absolute values). The baseline is the mean similarity of the trained
    model's maps of *unrelated* images, image ``i`` against image ``i + 1`` (cyclically). A stage
    passes where both mean similarities fall below their baselines.

    Direction: lower similarity after randomisation is better (the maps depend on the weights).

    Args:
        model: trained classifier; copies are run in eval mode.
        images: ``(B, C, H, W)`` with ``B >= 2`` (for the baseline pairs).
        targets: int or ``(B,)`` class indices explained.
        method: a name for ``bench.attribution.explain(model, images, targets, method,
            **method_options)``, or a callable ``(model, images, targets) -> (B, H, W)``.
        stages: ``[(name, [module names])]`` to override :func:`randomisation_stages`.
        seed: seeds the re-initialisation (the global RNG state is restored afterwards).

    Returns:
        DataFrame, one row per stage: ``stage`` ("trained" for the unmodified copy, then "head",
        "block5", ...), ``stage_index`` (0 = trained), ``modules`` (re-initialised at this stage),
        ``spearman``, ``ssim`` (means over images), ``spearman_std``, ``ssim_std``, ``n`` (images
        with finite values), ``baseline_spearman``, ``baseline_ssim``, ``passed``.
        ``df.attrs["passed"]`` is True when every randomised stage passed.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] < 2:
        raise ValueError(
            f"randomisation_test needs (B, C, H, W) images with B >= 2 (for the unrelated-image baseline), "
            f"got {getattr(images, 'shape', type(images))}"
        )
    options = dict(method_options or {})
    trained = copy.deepcopy(model).eval()
    stages = _checked_stages(trained, stages)

    def maps_of(m: nn.Module) -> np.ndarray:
        maps = _maps(method, m, images, targets, options)
        return np.abs(maps) if absolute else maps

    ref = maps_of(trained)
    base_sp, base_ss = map_similarity(ref, np.roll(ref, -1, axis=0))
    baseline = _nanmean(base_sp), _nanmean(base_ss)
    rows = [_stage_row("trained", 0, [], ref, ref, baseline)]
    randomised = copy.deepcopy(trained)
    named = dict(randomised.named_modules())
    with _seeded(randomised, seed):
        for index, (name, mods) in enumerate(stages, start=1):  # cumulatively, from the output down
            for n in mods:
                _reinitialise(named[n])
            randomised.eval()
            rows.append(_stage_row(name, index, mods, ref, maps_of(randomised), baseline))
    df = pd.DataFrame(rows)
    df.attrs["passed"] = bool(df["passed"].iloc[1:].all()) if len(df) > 1 else False
    df.attrs["method"] = method if isinstance(method, str) else getattr(method, "__name__", repr(method))
    return df
