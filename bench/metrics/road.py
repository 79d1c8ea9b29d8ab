"""ROAD: remove and debias (Rong et al., ICML 2022, "A Consistent and Efficient Evaluation Strategy for
Attribution Methods").

Deletion replaces the removed pixels by a constant, so the *shape* of the removed region can tell the model
the class (a lesion-shaped hole is evidence too). ROAD fills the removed pixels with *noisy linear
imputation* instead: each removed pixel becomes the weighted mean of its 8 neighbours (1/6 for the 4 direct
ones, 1/12 for the 4 diagonal ones; neighbours outside the image are left out and the mean is over those
inside, as the authors' code does), solved jointly for all removed pixels as one sparse linear
system (a discrete Laplace equation whose boundary values are the kept pixels), then Gaussian noise of
standard deviation ``noise`` is added to the imputed pixels. Two orders: most relevant first (MoRF: a
faithful map makes the probability fall fast, lower area is better) and least relevant first (LeRF: a
faithful map keeps it high, higher area is better).

The imputer follows the authors' ``NoisyLinearImputer`` (github.com/tleemann/road_evaluation, also
``pytorch_grad_cam.metrics.road``); the values are checked against pytorch-grad-cam's on the same inputs with
the noise off (tests/metrics/test_road.py, ``make perf``).

Cost: the imputation is one sparse factorisation per removal mask (``2 (steps - 1)`` per image), computed in
a fill-reducing nested-dissection order of the pixel grid (:func:`grid_order`) and shared by the image's
channels (one solve with C right-hand sides); consecutive images with the same map (e.g. the ``centre``
baseline) share the factorisations. The forward passes are batched across images and steps, run
as deletion/insertion runs them (channels-last, BatchNorms folded on the CPU).
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu
from torch import nn

from bench.metrics._maps import degenerate_maps
from bench.metrics.faithfulness import checked_inputs, model_device, pixel_ranks, pixels_per_step
from bench.models.fast import fast_model, to_channels_last

__all__ = ["road", "road_morf", "road_lerf", "noisy_linear_impute", "grid_order", "NEIGHBOUR_WEIGHTS", "WORST"]

# (row offset, column offset, weight): Rong et al.'s neighbour weights (the authors' ``neighbors_weights``)
NEIGHBOUR_WEIGHTS = (
    (-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12),
    (0, -1, 1 / 6), (0, 1, 1 / 6),
    (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12),
)

# the worst value of each area (``range`` (0, 1); MoRF: lower is better, LeRF: higher is better)
WORST = {"road_morf": 1.0, "road_lerf": 0.0}


def grid_order(H: int, W: int) -> np.ndarray:
    """A nested-dissection order of the pixels of an ``H x W`` grid: ``(H * W,)`` flat indices, each
    half of the grid before the row or column that separates it from the other, recursively (leaves of at
    most 16 pixels row-major). One-pixel-wide separators suffice for the 8-neighbour stencil (pixels two rows
    apart are never neighbours), so eliminating the pixels in this order keeps the sparse factor small;
    restricted to any subset of the pixels (one removal mask) it is still a good order."""
    out: list[np.ndarray] = []

    def split(r0: int, r1: int, c0: int, c1: int) -> None:
        h, w = r1 - r0, c1 - c0
        if h <= 0 or w <= 0:
            return
        if h * w <= 16:
            out.append((np.arange(r0, r1)[:, None] * W + np.arange(c0, c1)[None, :]).ravel())
        elif h >= w:
            m = (r0 + r1) // 2
            split(r0, m, c0, c1)
            split(m + 1, r1, c0, c1)
            out.append(m * W + np.arange(c0, c1))
        else:
            m = (c0 + c1) // 2
            split(r0, r1, c0, m)
            split(r0, r1, m + 1, c1)
            out.append(np.arange(r0, r1) * W + m)

    split(0, H, 0, W)
    return np.concatenate(out)


@functools.lru_cache(maxsize=8)
def _stencil(H: int, W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For an ``H x W`` grid: ``nbr`` (8, n) flat index of each pixel's neighbour (itself where outside),
    ``weight`` (8, n) its weight (0 where outside), ``degree`` (n,) the sum of a pixel's weights, ``position``
    (n,) each pixel's place in :func:`grid_order`. Read-only, cached."""
    n = H * W
    r, c = np.divmod(np.arange(n), W)
    nbr = np.empty((8, n), dtype=np.int64)
    weight = np.empty((8, n), dtype=np.float64)
    for k, (dr, dc, w) in enumerate(NEIGHBOUR_WEIGHTS):
        inside = (r + dr >= 0) & (r + dr < H) & (c + dc >= 0) & (c + dc < W)
        nbr[k] = np.where(inside, (r + dr) * W + c + dc, np.arange(n))
        weight[k] = np.where(inside, w, 0.0)
    position = np.empty(n, dtype=np.int64)
    position[grid_order(H, W)] = np.arange(n)
    degree = weight.sum(axis=0)
    for a in (nbr, weight, position, degree):
        a.setflags(write=False)
    return nbr, weight, degree, position


def _factor(removed: np.ndarray, H: int, W: int):
    """The system of one removal mask ``removed`` (n,) bool: ``(unknowns (m,) flat indices in solve order,
    SuperLU factor of the (m, m) matrix, known-neighbour weights (8, m))``.

    Row ``i`` (pixel ``p``): ``degree[p] x_p - sum_{removed neighbours q} w_pq x_q = sum_{kept neighbours q}
    w_pq y_q``: symmetric positive definite when every connected group of removed pixels touches a kept
    pixel (always, unless every pixel is removed).
    """
    nbr, weight, degree, position = _stencil(H, W)
    u = np.flatnonzero(removed)
    u = u[np.argsort(position[u], kind="stable")]
    m = u.size
    var = np.full(H * W, -1, dtype=np.int64)
    var[u] = np.arange(m)
    nb, w = nbr[:, u], weight[:, u]
    coupled = (w > 0) & removed[nb]  # (8, m): neighbour is also unknown
    # CSC of the symmetric matrix = CSR: per column j the diagonal, then its unknown neighbours
    cols = np.vstack([np.arange(m)[None], var[nb]])  # (9, m)
    vals = np.vstack([degree[u][None], -w])
    keep = np.vstack([np.ones((1, m), dtype=bool), coupled])
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=0))])
    A = sp.csc_matrix((vals.T[keep.T], cols.T[keep.T], indptr), shape=(m, m))
    lu = splu(A, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True, "Equil": False})
    return u, lu, np.where(coupled, 0.0, w), nb


def noisy_linear_impute(image, removed, *, noise: float = 0.01, rng: np.random.Generator | None = None,
                        _cache: dict | None = None) -> np.ndarray:
    """Rong et al.'s noisy linear imputation of the ``removed`` pixels of one image.

    Args:
        image: ``(C, H, W)`` float array (the model's input space).
        removed: ``(H, W)`` bool, True = pixel to impute. All True (nothing left to impute from) is an error;
            none True returns the image unchanged.
        noise: standard deviation of the Gaussian noise added to each imputed pixel value (absolute, in the
            image's units; 0 = plain linear imputation).
        rng: the noise's generator (default: ``numpy.random.default_rng(0)``).

    Returns:
        ``(C, H, W)`` float64: kept pixels as given; each removed pixel the weighted mean of its 8 neighbours
        (1/6 direct, 1/12 diagonal, only those inside the image, divided by their total weight), all removed
        pixels solved jointly, plus noise. A constant image stays constant (noise off); an image that is
        linear in the row and column is reproduced exactly at removed pixels whose neighbours all lie inside
        the image.
    """
    img = np.asarray(image, dtype=np.float64)
    rem = np.asarray(removed, dtype=bool)
    if img.ndim != 3 or rem.shape != img.shape[1:]:
        raise ValueError(f"image must be (C, H, W) and removed (H, W) bool of the same H, W; got image "
                         f"{img.shape}, removed {rem.shape}")
    if rem.all():
        raise ValueError("every pixel is removed: there is nothing to impute from (use a fraction below 1)")
    C, H, W = img.shape
    flat = img.reshape(C, H * W)
    out = flat.copy()
    r = rem.reshape(-1)
    if not r.any():
        return out.reshape(C, H, W)
    key = np.packbits(r).tobytes() if _cache is not None else None
    got = _cache.get(key) if _cache is not None else None
    if got is None:
        got = _factor(r, H, W)
        if _cache is not None:
            _cache[key] = got
    u, lu, known_w, nb = got
    rhs = np.einsum("km,ckm->mc", known_w, flat[:, nb])  # (m, C)
    x = lu.solve(rhs)
    if noise:
        x = x + noise * (rng if rng is not None else np.random.default_rng(0)).standard_normal(x.shape)
    out[:, u] = x.T
    return out.reshape(C, H, W)


def _curves_and_areas(probs: np.ndarray, steps: int, degenerate: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`road`'s result from ``probs`` ``(B, 2, steps)`` (NaN rows for degenerate maps)."""
    B = probs.shape[0]
    area = probs[:, :, 1:].mean(axis=2)  # (B, 2)
    area[degenerate, 0] = WORST["road_morf"]
    area[degenerate, 1] = WORST["road_lerf"]
    return {
        "road_morf": area[:, 0].copy(),
        "road_lerf": area[:, 1].copy(),
        "road_morf_curve": np.ascontiguousarray(probs[:, 0]),
        "road_lerf_curve": np.ascontiguousarray(probs[:, 1]),
        "fraction": np.arange(steps) / steps,
        "degenerate": np.asarray(degenerate, dtype=bool).reshape(B),
    }


@torch.no_grad()
def road(
    model: nn.Module,
    images: torch.Tensor,
    saliency,
    targets,
    *,
    steps: int = 10,
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """ROAD most-relevant-first and least-relevant-first curves and their areas.

    Definition: the pixels are ranked by saliency exactly as for deletion (the map upsampled bilinearly to
    the image size, most salient first, ties in row-major order; ``bench.metrics.faithfulness.pixel_ranks``).
    At step ``k = 1 .. steps - 1`` the fraction ``k / steps`` of the pixels (``round(k * H * W / steps)``,
    :func:`~bench.metrics.faithfulness.pixels_per_step`) is removed, the most salient ones (MoRF) or the
    least salient ones (LeRF), and filled by :func:`noisy_linear_impute`; the score is the softmax
    probability of the target class. Point ``k = 0`` is the unperturbed image (shared by both curves); no
    point at ``k = steps`` (nothing would be left to impute from). The *area* of a curve is the mean of its
    points ``k = 1 .. steps - 1``: the trapezoid area over [0, 1] minus the two end points, which are the
    same for every map and so cannot rank maps (with ``steps = 10``: the mean over 10 %, 20 %, ..., 90 %
    removed, pytorch-grad-cam's ``ROAD*Average`` percentiles).

    Direction: ``road_morf`` lower is better (removing what the map ranks first should destroy the
    prediction), ``road_lerf`` higher is better (removing what it ranks last should not). Both in [0, 1].

    Degenerate maps (constant or non-finite, ``bench.metrics.degenerate_maps``) score the worst values,
    MoRF 1.0 and LeRF 0.0, are flagged, and their curves are NaN (not computed).

    Args:
        model: classifier returning logits ``(N, num_classes)``; run in eval mode (its training flag is
            restored), on the CPU through ``bench.models.fast.fast_model`` like deletion/insertion.
        images: ``(B, C, H, W)`` float in the model's input space (``noise`` is in its units).
        saliency: ``(B, h, w)`` array or tensor, ``h <= H``, ``w <= W``.
        targets: int or ``(B,)`` class indices.
        steps: ``>= 2``; the curves have ``steps`` points (``k = 0 .. steps - 1``).
        noise: standard deviation of the imputation noise (Rong et al. and pytorch-grad-cam: 0.01); 0 = off.
        seed: the noise of an image comes from ``numpy.random.default_rng([seed, crc32 of its float32
            bytes])``: the same for every map of that image (paired comparisons), whatever its position in
            the call, the batch size or the other images scored with it.
        batch_size: imputed images per forward pass (batches mix images, orders and steps).

    Returns:
        dict of float64 numpy arrays: ``road_morf``, ``road_lerf`` (B,); ``road_morf_curve``,
        ``road_lerf_curve`` (B, steps); ``fraction`` (steps,) = ``k / steps``; ``degenerate`` (B,) bool.

    Cost per image with a non-degenerate map: ``2 (steps - 1)`` sparse factorisations (at most H * W
    unknowns each; a few milliseconds each at 64 x 64 on one core) and ``2 steps - 1`` forward passes.
    """
    sal, tg = checked_inputs(images, saliency, targets, steps, batch_size, "zeros")
    if int(steps) < 2:
        raise ValueError(f"ROAD needs steps >= 2 (points at k / steps for k = 1 .. steps - 1), got {int(steps)}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0 (the imputation noise's standard deviation), got {noise}")
    B, C, H, W = images.shape
    steps, bs = int(steps), int(batch_size)
    degenerate = degenerate_maps(sal.cpu()) if B else np.zeros(0, dtype=bool)
    probs = np.full((B, 2, steps), np.nan)
    keep = np.flatnonzero(~degenerate)
    if keep.size:
        probs[keep] = _probabilities(model, images, sal, tg, keep, steps, float(noise), int(seed), bs)
    return _curves_and_areas(probs, steps, degenerate)


def _imputed(x: np.ndarray, rank: np.ndarray, n_k: list[int], noise: float, rng: np.random.Generator,
             cache: dict | None) -> np.ndarray:
    """One image's ``2 steps - 1`` model inputs: ``(2 steps - 1, C, H, W)`` float64, the image itself, then MoRF
    at ``k = 1 .. steps - 1``, then LeRF at the same ``k``. ``x`` (C, H, W), ``rank`` (H, W) (0 = most salient);
    ``cache``: mask -> factor, read and filled (None: factors not kept)."""
    n = rank.size
    out = [x]
    for order in ("morf", "lerf"):
        for k in n_k[1:-1]:
            removed = rank < k if order == "morf" else rank >= n - k
            out.append(noisy_linear_impute(x, removed, noise=noise, rng=rng, _cache=cache))
    return np.stack(out)


def _image_rng(x: np.ndarray, seed: int) -> np.random.Generator:
    """The noise generator of one image: keyed by ``seed`` and the image's content (float32 bytes)."""
    return np.random.default_rng([seed, zlib.crc32(np.ascontiguousarray(x, dtype=np.float32).tobytes())])


def _probabilities(model, images, sal, tg, keep: np.ndarray, steps: int, noise: float, seed: int,
                   bs: int) -> np.ndarray:
    """``(K, 2, steps)`` target probabilities of the images ``keep`` (K indices): point 0 of both curves the
    unperturbed image, then MoRF / LeRF at ``k = 1 .. steps - 1``."""
    B, C, H, W = images.shape
    device, dtype = model_device(model)
    n_k = pixels_per_step(H * W, steps)
    per_image = 2 * steps - 1
    group = max(1, bs // per_image)  # images imputed at a time: memory stays bounded
    x_all = images.detach().to("cpu", torch.float64).numpy()
    s = sal[torch.as_tensor(keep, device=sal.device)]
    s = s.to(torch.float64 if s.dtype == torch.float64 else torch.float32)  # float64 maps keep their order
    ranks = pixel_ranks(s, H, W)[:, 0].cpu().numpy()
    tg = tg[torch.as_tensor(keep)].to(device)
    layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    flat = np.empty((keep.size, per_image))
    # identical maps give identical masks: an image whose ranking equals the next one's keeps its factors for it
    # (the centre baseline's map is the same on every image); no other factor is kept (one is up to tens of MB)
    same_next = [j + 1 < keep.size and np.array_equal(ranks[j], ranks[j + 1]) for j in range(keep.size)]
    cache: dict | None = None
    was_training = model.training
    model.eval()
    try:
        with fast_model(model):
            for g_lo in range(0, keep.size, group):
                g = range(g_lo, min(keep.size, g_lo + group))
                stack = []
                for j in g:
                    if cache is None and same_next[j]:
                        cache = {}
                    stack.append(_imputed(x_all[keep[j]], ranks[j], n_k, noise, _image_rng(x_all[keep[j]], seed),
                                          cache))
                    if not same_next[j]:
                        cache = None
                batch = np.concatenate(stack)
                inp = torch.from_numpy(batch).to(dtype=dtype)
                inp = to_channels_last(inp) if device.type == "cpu" else inp.to(device)
                who = torch.arange(len(g), device=device).repeat_interleave(per_image) + g_lo
                for lo in range(0, inp.shape[0], bs):
                    p = torch.softmax(model(inp[lo: lo + bs].contiguous(memory_format=layout)).float(), dim=1)
                    t = tg[who[lo: lo + bs]].view(-1, 1)
                    flat.reshape(-1)[g_lo * per_image + lo: g_lo * per_image + lo + p.shape[0]] = (
                        p.gather(1, t)[:, 0].double().cpu().numpy())
    finally:
        model.train(was_training)
    out = np.empty((keep.size, 2, steps))
    out[:, :, 0] = flat[:, :1]
    out[:, 0, 1:] = flat[:, 1:steps]
    out[:, 1, 1:] = flat[:, steps:]
    return out


def road_morf(model, images, saliency, targets, **options) -> np.ndarray:
    """ROAD most-relevant-first area (B,), lower is better; see :func:`road` (computes both orders)."""
    return road(model, images, saliency, targets, **options)["road_morf"]


def road_lerf(model, images, saliency, targets, **options) -> np.ndarray:
    """ROAD least-relevant-first area (B,), higher is better; see :func:`road` (computes both orders)."""
    return road(model, images, saliency, targets, **options)["road_lerf"]
