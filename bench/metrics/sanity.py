"""Sanity check of an attribution method: cascading model-parameter randomisation (Adebayo et al. 2018).

Question: does the map depend on the learned weights of the layers that make the decision?

The weights are re-initialised stage by stage from the output down (for FF-VGG19: the head, then block5,
block4, block3, block2, block1, cumulatively) and after each stage every image's map from the
randomised model is compared with the trained model's map by four similarities, as in the paper:
Spearman rank correlation and SSIM, each on absolute values and on signed maps.

Verdict (Spearman on absolute values, the paper's main measure):

- the last stage is the fully randomised model: its mean similarity ``F`` (the *floor*) is what is left
  of the map when no learned weight is (the input alone);
- the normalised similarity of stage k is ``(S_k - F) / (1 - F)``, ``S_k`` the mean over images:
  1 = unchanged, 0 = as changed as by a fully random model. When ``1 - F < 1e-6`` the map is the same
  whatever the weights and the normalised similarity is defined as 1 at every stage;
- a stage *changes the map* when the upper end of the 95 % percentile bootstrap CI of its normalised
  similarity (images resampled jointly for ``S_k`` and ``F``, seeded) is below 0.5: the map has lost at
  least half of what the learned weights give it;
- the method *passes* when the first randomised stage (the head: the layers that turn the features into
  the decision) already changes the map. ``first_changed_stage`` names the first stage that does
  ("never" if none).

Why not the published bars: Adebayo et al. judge the curves by eye; Arun et al. (2021) count a method
as degraded when its similarity falls below that of maps of unrelated images from the trained model, a
bar that is negative on some phantoms (a near-zero similarity then counts as "too similar"); and the
fully randomised stage cannot tell methods apart, since there every map has lost its learned part.
Quantus' MPRT reports the per-layer similarities without a verdict; its successors (Hedström et al.
2023, sMPRT / eMPRT) compare the trained model with the fully randomised one, as the floor does here.
Source: ../shared/REFERENCE.md section 3 (Adebayo et al., NeurIPS 2018; Arun et al. 2021).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from skimage.metrics import structural_similarity
from torch import nn

__all__ = [
    "randomisation_test",
    "randomisation_stages",
    "map_similarity",
    "normalised_similarity",
    "stage_table",
    "sanity_verdict",
    "SIMILARITIES",
    "VERDICT_SIMILARITY",
    "BAR",
    "FLAT",
    "NEVER",
]

Stage = tuple[str, list[str]]  # (stage name, qualified names of the modules (or parameters) it re-initialises)

SIMILARITIES = ("spearman_abs", "spearman", "ssim_abs", "ssim")  # stored per stage (means over images)
VERDICT_SIMILARITY = "spearman_abs"  # the one the verdict reads (Adebayo et al.'s main measure)
BAR = 0.5  # a stage changes the map when the CI's upper end of its normalised similarity is below this
FLAT = 1e-6  # 1 - F below this: the map does not depend on the weights at all
NEVER = "never"  # first_changed_stage when no stage changes the map


def _owns_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


def randomisation_stages(model: nn.Module) -> list[Stage]:
    """The randomisation stages of ``model``, from the output down.

    A model that defines ``randomisation_stages()`` gives its own (bench's ResNet-50, DenseNet-121 and
    ViT-B/16: one stage per block or group of blocks, see :mod:`bench.models.torchvision_models`); names
    there may also be parameters that belong to no module of their own (ViT's ``class_token``). Otherwise
    the stages are found from the modules, generically:

    - a model with a ``features`` ``nn.Sequential`` (the VGG family here): stage ``"head"`` holds every
      module with parameters or buffers outside ``features`` (FF-VGG19: the dense head and the
      BatchNorms of the block3/block4 taps; VGG19: the classifier); then ``features`` is cut into
      blocks after each pooling layer, named ``block1 ..`` from the input, and listed from the
      deepest (FF-VGG19: block5 = block5_conv1..conv3, block4, ..., block1);
    - any other model: each top-level child that has parameters or buffers is a stage named after
      it, from the last registered to the first.

    Returns ``[(stage, [module names])]``; names are those of ``model.named_modules()``.
    """
    own = getattr(model, "randomisation_stages", None)
    if callable(own):
        return [(str(name), list(mods)) for name, mods in own()]
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


def _reinitialise(module: nn.Module | nn.Parameter) -> None:
    if isinstance(module, nn.Parameter):  # a parameter of no module of its own (ViT's class token)
        with torch.no_grad():
            nn.init.normal_(module, std=0.01)
    elif hasattr(module, "reset_parameters"):
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


def _normalise01(a: np.ndarray) -> np.ndarray:
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def map_similarity(ref: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair Spearman rank correlation and SSIM of maps ``other`` (B, H, W) to the reference maps
    ``ref`` (B, H, W) (here: the trained model's).

    Spearman: Pearson correlation of the average ranks of the pixels. Undefined (NaN) where ``ref`` is
    constant (there is no ranking to keep); 0.0 where only ``other`` is constant (it keeps none of it:
    a randomised model whose map went flat has lost the map).
    SSIM: ``skimage.metrics.structural_similarity`` of the maps min-max normalised to [0, 1]
    (constant maps become zeros), ``data_range=1``, window 7 (smaller for maps under 7 px; NaN under 3).
    A pair with NaN or infinity gives NaN for both. Returns two float64 (B,) arrays.
    """
    B = ref.shape[0]
    ra = rankdata(ref.reshape(B, -1), axis=1)
    rb = rankdata(other.reshape(B, -1), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    va, vb = (ra**2).sum(axis=1), (rb**2).sum(axis=1)
    den = np.sqrt(va * vb)
    with np.errstate(invalid="ignore", divide="ignore"):
        spear = np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), 0.0)
    spear[va == 0] = np.nan
    win = min(7, *ref.shape[1:])
    win -= 1 - win % 2  # odd
    ssim = np.full(B, np.nan)
    finite = np.isfinite(ref.reshape(B, -1)).all(axis=1) & np.isfinite(other.reshape(B, -1)).all(axis=1)
    if win >= 3:
        for i in np.flatnonzero(finite):
            ssim[i] = structural_similarity(
                _normalise01(ref[i]), _normalise01(other[i]), data_range=1.0, win_size=win
            )
    spear[~finite] = np.nan
    return spear, ssim


def normalised_similarity(
    similarity: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, np.ndarray | float]:
    """Normalised similarity per stage with its percentile bootstrap CI.

    Args:
        similarity: ``(K, B)`` per-image similarity to the trained model's maps, stages in order (row 0
            the trained model, row ``K - 1`` the fully randomised model, whose mean is the floor ``F``).
            NaN: undefined for that image (left out of that stage, with its floor value).
        n_resamples, confidence: of the bootstrap over images; ``seed`` seeds a private generator
            (the global RNG is not used), so the same call gives the same CI.

    Returns:
        ``{"normalised", "ci_low", "ci_high"}``: float64 ``(K,)`` arrays of ``(S_k - F) / (1 - F)``,
        ``S_k`` and ``F`` the means over the images finite at stage k and at the last stage (1.0 at every
        stage when ``1 - F < FLAT``: the map ignores the weights); each resample draws ``B`` images with
        replacement, the same for ``S_k`` and ``F`` (so their correlation is kept); NaN where no image is
        valid. ``"n"``: int ``(K,)`` images used per stage. ``"floor"``: ``F`` over every image finite at
        the last stage (NaN if none).
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] < 2 or sim.shape[1] < 1:
        raise ValueError(f"similarity must be (K, B) with K >= 2 stages and B >= 1 images, got {sim.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    K, B = sim.shape
    last = sim[-1]
    counts = np.zeros((n_resamples, B))
    draws = np.random.default_rng(seed).integers(0, B, size=(n_resamples, B))
    np.add.at(counts, (np.repeat(np.arange(n_resamples), B), draws.ravel()), 1.0)
    out = {k: np.full(K, np.nan) for k in ("normalised", "ci_low", "ci_high")}
    out["n"] = np.zeros(K, dtype=int)
    fin_last = np.isfinite(last)
    out["floor"] = float(last[fin_last].mean()) if fin_last.any() else float("nan")
    q = 100 * np.array([(1 - confidence) / 2, (1 + confidence) / 2])
    for k in range(K):
        valid = np.isfinite(sim[k]) & fin_last
        out["n"][k] = int(valid.sum())
        if not valid.any():
            continue
        s, f = sim[k, valid].mean(), last[valid].mean()
        if 1 - f < FLAT:
            out["normalised"][k] = out["ci_low"][k] = out["ci_high"][k] = 1.0
            continue
        out["normalised"][k] = (s - f) / (1 - f)
        w = counts[:, valid]
        tot = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s_b = w @ sim[k, valid] / tot
            f_b = w @ last[valid] / tot
            norm_b = np.where(1 - f_b < FLAT, 1.0, (s_b - f_b) / (1 - f_b))
        norm_b = norm_b[tot > 0]
        out["ci_low"][k], out["ci_high"][k] = np.percentile(norm_b, q)
    return out


def sanity_verdict(table: pd.DataFrame) -> tuple[bool, str]:
    """``(passed, first_changed_stage)`` of one test's per-stage table (one method, one model).

    Reads the columns ``stage``, ``stage_index`` and ``changed``: the first randomised stage is the one
    with the smallest ``stage_index`` above 0; the method passes when that stage changed the map.
    ``first_changed_stage`` is the first randomised stage that changed it, or :data:`NEVER`. This is
    the only definition of "passed": :func:`randomisation_test` and the report both call it.

    Raises:
        ValueError: a column is missing, or the table has no randomised stage.
    """
    missing = [c for c in ("stage", "stage_index", "changed") if c not in table.columns]
    if missing:
        raise ValueError(f"sanity table lacks column(s) {missing}")
    rand = table[table["stage_index"] > 0].sort_values("stage_index")
    if rand.empty:
        raise ValueError("sanity table has no randomised stage (stage_index > 0)")
    changed = rand["changed"].fillna(False).astype(bool).to_numpy()
    first = str(rand["stage"].iloc[int(np.argmax(changed))]) if changed.any() else NEVER
    return bool(changed[0]), first


def stage_table(
    similarities: Mapping[str, np.ndarray],
    stages: Sequence[str],
    *,
    modules: Sequence[str] | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """The per-stage table of the randomisation test from per-image similarities.

    Args:
        similarities: ``{name: (K, B) array}`` for every name in :data:`SIMILARITIES`, rows in the order
            of ``stages`` (row 0 the trained model, the last row the fully randomised model).
        stages: ``K`` stage names ("trained", "head", ...).
        modules: ``K`` strings, the modules re-initialised at each stage (default "").
        n_resamples, confidence, seed: of the bootstrap CI (:func:`normalised_similarity`).

    Returns:
        DataFrame, one row per stage: ``stage``, ``stage_index`` (0 = trained), ``modules``,
        ``spearman_abs``, ``spearman``, ``ssim_abs``, ``ssim`` (means over the finite images), ``n``
        (images in the normalised similarity), ``floor`` (``F``, the same on every row), ``normalised``,
        ``normalised_ci_low``, ``normalised_ci_high`` (of :data:`VERDICT_SIMILARITY`), ``changed``
        (randomised stage whose CI's upper end is below :data:`BAR`). ``attrs``: ``passed``,
        ``first_changed_stage`` (:func:`sanity_verdict`), ``bar``, ``confidence``, ``n_resamples``,
        ``similarity``.
    """
    missing = [s for s in SIMILARITIES if s not in similarities]
    if missing:
        raise ValueError(f"stage_table: similarities lacks {missing}; expected {list(SIMILARITIES)}")
    arrays = {s: np.asarray(similarities[s], dtype=np.float64) for s in SIMILARITIES}
    K = len(stages)
    for s, a in arrays.items():
        if a.ndim != 2 or a.shape[0] != K:
            raise ValueError(f"stage_table: similarities[{s!r}] must be ({K}, B) for {K} stages, got {a.shape}")
    modules = [""] * K if modules is None else list(modules)
    norm = normalised_similarity(arrays[VERDICT_SIMILARITY], n_resamples=n_resamples, confidence=confidence,
                                 seed=seed)
    rows = []
    for k, name in enumerate(stages):
        row = {"stage": str(name), "stage_index": k, "modules": modules[k]}
        for s, a in arrays.items():
            v = a[k][np.isfinite(a[k])]
            row[s] = float(v.mean()) if v.size else float("nan")
        hi = norm["ci_high"][k]
        row.update(n=int(norm["n"][k]), floor=norm["floor"], normalised=float(norm["normalised"][k]),
                   normalised_ci_low=float(norm["ci_low"][k]), normalised_ci_high=float(hi),
                   changed=bool(k > 0 and np.isfinite(hi) and hi < BAR))
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["passed"], df.attrs["first_changed_stage"] = sanity_verdict(df)
    df.attrs.update(bar=BAR, confidence=confidence, n_resamples=n_resamples, similarity=VERDICT_SIMILARITY)
    return df


def _checked_stages(trained: nn.Module, stages: list[Stage] | None) -> list[Stage]:
    """``stages``, or :func:`randomisation_stages` of ``trained`` when None; ``ValueError`` for a module
    name that is neither one of ``trained.named_modules()`` nor of its ``named_parameters()``."""
    stages = randomisation_stages(trained) if stages is None else stages
    named = {**dict(trained.named_parameters()), **dict(trained.named_modules())}
    unknown = [n for _, mods in stages for n in mods if n not in named]
    if unknown:
        raise ValueError(f"randomisation_test: unknown module names in stages: {unknown}")
    if not stages:
        raise ValueError("randomisation_test: the model has no stage to randomise (no module with parameters)")
    return stages


@contextlib.contextmanager
def _seeded(model: nn.Module, seed: int) -> Iterator[None]:
    """Within the block the global torch RNG (CPU, and the CUDA devices ``model``'s parameters are on)
    is seeded with ``seed``; its previous state is restored afterwards."""
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"]
    with torch.random.fork_rng(devices=sorted({d.index or 0 for d in devices})):
        torch.manual_seed(seed)
        yield


def _similarities(ref: np.ndarray, maps: np.ndarray) -> dict[str, np.ndarray]:
    """The four per-image similarities (:data:`SIMILARITIES`) of ``maps`` to ``ref``, both (B, H, W)."""
    sp, ss = map_similarity(ref, maps)
    sp_abs, ss_abs = map_similarity(np.abs(ref), np.abs(maps))
    return {"spearman_abs": sp_abs, "spearman": sp, "ssim_abs": ss_abs, "ssim": ss}


def randomisation_test(
    model: nn.Module,
    images: torch.Tensor,
    targets,
    method: str | Callable,
    *,
    stages: list[Stage] | None = None,
    seed: int = 0,
    method_options: dict | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Cascading randomisation test of an attribution method (Adebayo et al., NeurIPS 2018).

    On a deep copy of ``model`` (the given model is never modified or even run), the modules of each
    stage of :func:`randomisation_stages` are re-initialised (``reset_parameters``: fresh random
    conv/linear weights, identity BatchNorms), cumulatively from the output down. After each stage the
    randomised copy's maps are compared with the trained model's, image by image, by the four
    similarities of :data:`SIMILARITIES` (:func:`map_similarity`, on signed and on absolute maps), and
    the verdict follows the rule of the module docstring (:func:`stage_table`, :func:`sanity_verdict`).

    Direction: a lower normalised similarity after the head is better (the map depends on the weights
    that make the decision).

    Args:
        model: trained classifier; copies are run in eval mode.
        images: ``(B, C, H, W)`` with ``B >= 2`` (for the bootstrap over images).
        targets: int or ``(B,)`` class indices explained.
        method: a name for ``bench.attribution.explain(model, images, targets, method,
            **method_options)``, or a callable ``(model, images, targets) -> (B, H, W)``.
        stages: ``[(name, [module names])]`` to override :func:`randomisation_stages`.
        seed: seeds the re-initialisation (the global RNG state is restored afterwards) and the
            bootstrap (a private generator).
        n_resamples, confidence: of the bootstrap CI of the normalised similarity.

    Returns:
        The table of :func:`stage_table`, one row per stage: "trained" (the unmodified copy), then
        "head", "block5", ... with ``attrs`` ``passed``, ``first_changed_stage`` and ``method``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] < 2:
        raise ValueError(
            f"randomisation_test needs (B, C, H, W) images with B >= 2 (for the bootstrap over images), "
            f"got {getattr(images, 'shape', type(images))}"
        )
    options = dict(method_options or {})
    trained = copy.deepcopy(model).eval()
    stages = _checked_stages(trained, stages)
    ref = _maps(method, trained, images, targets, options)
    per_stage = [_similarities(ref, ref)]
    randomised = copy.deepcopy(trained)
    named = {**dict(randomised.named_parameters()), **dict(randomised.named_modules())}
    with _seeded(randomised, seed):
        for _, mods in stages:  # cumulatively, from the output down
            for n in mods:
                _reinitialise(named[n])
            randomised.eval()
            per_stage.append(_similarities(ref, _maps(method, randomised, images, targets, options)))
    similarities = {s: np.stack([p[s] for p in per_stage]) for s in SIMILARITIES}
    df = stage_table(similarities, ["trained", *[name for name, _ in stages]],
                     modules=["", *[",".join(mods) for _, mods in stages]],
                     n_resamples=n_resamples, confidence=confidence, seed=seed)
    df.attrs["method"] = method if isinstance(method, str) else getattr(method, "__name__", repr(method))
    return df
