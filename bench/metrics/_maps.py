"""Input handling shared by the localisation metrics: validation, dtypes, upsampling, chunks.

Every localisation metric goes through :func:`evaluate`, so all of them accept the same inputs and
treat undefined inputs the same way:

- ``saliency``: numpy array, torch tensor (any device; it is copied to the CPU) or nested list,
  shape ``(H, W)`` or ``(B, H, W)``, any real dtype. Working precision: float32 for float32,
  float16, bfloat16, bool and integer types of at most 16 bits; float64 otherwise.
- ``mask``: the same container types, shape ``(H, W)`` or ``(B, H, W)`` with the same number of
  dimensions and batch size as ``saliency``; bool, or numeric holding only 0 and 1.
- If ``saliency``'s ``(h, w)`` differs from the mask's ``(H, W)`` and ``h <= H`` and ``w <= W``, the
  map is upsampled bilinearly (``align_corners=False``, as ``torch.nn.functional.interpolate``) to
  ``(H, W)`` in the working precision. A map larger than its mask is an error (downsampling would
  alias; resize it yourself).
- Shape, batch or mask-value problems raise ``ValueError`` naming both shapes.
- Empty mask: NaN. Degenerate map (see :func:`degenerate_maps`; judged on the map as given, before
  upsampling): 0.0, the worst value, and flagged. Flags are only set where the value is defined, so
  ``values[degenerate] == 0.0`` always and NaN entries are never flagged.

The work is done in chunks of about ``CHUNK_PIXELS`` pixels so that temporaries stay in the CPU
cache and memory stays bounded for any batch size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

CHUNK_PIXELS = 1 << 21  # ~2 M pixels: a float32 chunk is 8 MB, inside a typical L3 cache

# A kernel gets the valid, non-degenerate rows of one chunk: maps (n, N) at mask resolution in the
# working dtype, masks (n, N) bool, mask areas (n,) int64, per-map min and max (n,), (H, W) and a
# Workspace. It returns the values (n,) and optionally extra degenerate flags (n,) (set to 0.0).
Kernel = Callable[..., "tuple[np.ndarray, np.ndarray | None]"]


class Workspace:
    """Scratch arrays reused from chunk to chunk within one call.

    Fresh multi-megabyte temporaries cost a page fault per 4 KiB page on every chunk (measured: about
    half the run time); reusing them through ``out=`` arguments avoids that.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        buf = self._bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self._bufs[name] = np.empty(max(size, 1), dtype=dtype)
        return buf[:size].reshape(shape)

_FLOAT32_SOURCES = {np.dtype(t) for t in ("bool", "int8", "uint8", "int16", "uint16", "float16", "float32")}


def _to_numpy(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        if x.is_complex():
            raise ValueError(f"{what} must be real, got a complex tensor of shape {tuple(x.shape)}")
        return x.cpu().numpy()
    a = np.asarray(x)
    if a.dtype == object or not (a.dtype == bool or np.issubdtype(a.dtype, np.number)):
        raise ValueError(f"{what} must be a real numeric array, got dtype {a.dtype} shape {a.shape}")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{what} must be real, got dtype {a.dtype} shape {a.shape}")
    return a


def working_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for float32 and narrower types, float64 for everything else."""
    return np.dtype(np.float32) if np.dtype(dtype) in _FLOAT32_SOURCES else np.dtype(np.float64)


class Inputs:
    """Validated saliency (original resolution) and boolean mask, both with a batch axis."""

    def __init__(self, saliency, mask, name: str = "metric") -> None:
        s = _to_numpy(saliency, "saliency")
        m = _to_numpy(mask, "mask")
        shapes = f"saliency shape {s.shape}, mask shape {m.shape}"
        if s.ndim not in (2, 3) or m.ndim != s.ndim:
            raise ValueError(
                f"{name}: expected saliency and mask both (H, W) or both (B, H, W); got {shapes}"
            )
        self.single = s.ndim == 2
        if self.single:
            s, m = s[None], m[None]
        if s.shape[0] != m.shape[0]:
            raise ValueError(f"{name}: batch sizes differ; got {shapes}")
        if min(m.shape[1:]) == 0 or min(s.shape[1:]) == 0:
            raise ValueError(f"{name}: maps and masks need at least one pixel; got {shapes}")
        if s.shape[1] > m.shape[1] or s.shape[2] > m.shape[2]:
            raise ValueError(
                f"{name}: the saliency map is larger than the mask and is only ever upsampled; "
                f"resize it first; got {shapes}"
            )
        if m.dtype != bool:
            ok = (m == 0) | (m == 1)
            if not ok.all():
                bad = m[~ok].flat[0]
                raise ValueError(
                    f"{name}: mask must be boolean or hold only 0 and 1 (found {bad!r}); got {shapes}"
                )
            m = m != 0
        wd = working_dtype(s.dtype)
        self.s = s  # original dtype; converted per chunk (no full copy of the input)
        self.m = m
        self.dtype = wd
        self.size = tuple(m.shape[1:])
        self.batch = s.shape[0]
        self.upsample = tuple(s.shape[1:]) != self.size
        self.name = name

    def shape_out(self) -> tuple[int, ...]:
        return () if self.single else (self.batch,)

    def bounds(self) -> list[tuple[int, int]]:
        """``(lo, hi)`` row ranges of about ``CHUNK_PIXELS`` pixels each."""
        step = max(1, CHUNK_PIXELS // (self.size[0] * self.size[1]))
        return [(lo, min(self.batch, lo + step)) for lo in range(0, self.batch, step)]

    def chunk(self, lo: int, hi: int, ws: Workspace):
        """``(maps (b, N), masks (b, N), degenerate (b,), mn (b,), mx (b,))`` for rows ``lo:hi``.

        ``maps`` are at mask resolution in the working dtype (a view of the input where possible);
        ``degenerate`` is judged on the maps as given, ``mn``/``mx`` are those of ``maps``.
        """
        H, W = self.size
        n_pix = H * W
        orig = self.s[lo:hi]
        if orig.dtype != self.dtype:
            buf = ws.get("converted", orig.shape, self.dtype)
            np.copyto(buf, orig, casting="unsafe")
            orig = buf
        flat = orig.reshape(hi - lo, -1)
        mn, mx = flat.min(axis=1), flat.max(axis=1)  # NaN propagates into both
        deg = ~(np.isfinite(mn) & np.isfinite(mx)) | (mn == mx)
        if self.upsample:
            t = torch.from_numpy(np.ascontiguousarray(orig))[:, None]
            flat = F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)[:, 0].numpy()
            flat = flat.reshape(hi - lo, n_pix)
            mn, mx = flat.min(axis=1), flat.max(axis=1)
        return flat, self.m[lo:hi].reshape(hi - lo, n_pix), deg, mn, mx


def threads() -> int:
    """Worker threads for the localisation metrics: torch's intra-op thread count (see
    ``bench.device.set_threads``), at most 8. numpy releases the GIL in the sorts and array loops
    that dominate."""
    return max(1, min(8, torch.get_num_threads()))  # each worker holds ~50 MB of scratch arrays


def evaluate(saliency, mask, kernel: Kernel, *, name: str, return_degenerate: bool = False):
    """Run ``kernel`` over valid rows, chunk by chunk; NaN for empty masks, 0.0 for degenerate maps."""
    values, degenerate = evaluate_many(saliency, mask, {name: kernel}, name=name)[name]
    return (values, degenerate) if return_degenerate else values


def evaluate_many(
    saliency, mask, kernels: dict[str, Kernel], *, name: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run several kernels chunk by chunk, sharing validation, upsampling and the chunk in cache.

    Returns ``{kernel name: (values, degenerate)}``. Each kernel sees exactly the rows it would see
    alone, so the values are identical to separate calls. Chunks are independent and run on
    :func:`threads` worker threads, each with its own :class:`Workspace`; a map's value never
    depends on which chunk or thread computed it.
    """
    inp = Inputs(saliency, mask, name)
    out_v = {k: np.full(inp.batch, np.nan) for k in kernels}
    out_d = {k: np.zeros(inp.batch, dtype=bool) for k in kernels}
    local = threading.local()

    def run(bounds: tuple[int, int]) -> None:
        lo, hi = bounds
        ws = getattr(local, "ws", None)
        if ws is None:
            ws = local.ws = Workspace()
        s, m, deg, mn, mx = inp.chunk(lo, hi, ws)
        area = np.count_nonzero(m, axis=1).astype(np.int64)
        defined = area > 0
        use = defined & ~deg
        if not use.all() and use.any():
            s, m, area, mn, mx = s[use], m[use], area[use], mn[use], mx[use]
        for key, kernel in kernels.items():
            out = np.zeros(hi - lo)
            flags = deg & defined
            if use.any():
                vals, extra = kernel(s, m, area, mn, mx, inp.size, ws)
                if extra is not None:
                    vals = np.where(extra, 0.0, vals)
                    flags[use] |= extra
                out[use] = vals
            out[~defined] = np.nan
            out_v[key][lo:hi] = out
            out_d[key][lo:hi] = flags

    chunks = inp.bounds()
    workers = min(threads(), len(chunks))
    if workers <= 1:
        for b in chunks:
            run(b)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(run, chunks):  # re-raises the first error
                pass
    shape = inp.shape_out()
    return {k: (out_v[k].reshape(shape), out_d[k].reshape(shape)) for k in kernels}


def degenerate_maps(saliency) -> np.ndarray:
    """Which maps are degenerate: constant (all zero included) or holding any NaN or infinity.

    ``saliency``: ``(H, W)`` or ``(B, H, W)``. Returns bool ``()`` or ``(B,)``. This is the test
    every localisation metric applies to the map as given (before any upsampling); some metrics add
    their own (``energy_pointing_game``: no positive saliency at all).
    """
    s = _to_numpy(saliency, "saliency")
    if s.ndim not in (2, 3) or min(s.shape[-2:], default=0) == 0:
        raise ValueError(
            f"degenerate_maps: expected a non-empty (H, W) or (B, H, W) saliency, got shape {s.shape}"
        )
    s3 = s[None] if s.ndim == 2 else s
    if s3.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    flat = s3.reshape(s3.shape[0], -1).astype(working_dtype(s.dtype), copy=False)
    mn, mx = flat.min(axis=1), flat.max(axis=1)
    deg = ~(np.isfinite(mn) & np.isfinite(mx)) | (mn == mx)
    return deg[0] if s.ndim == 2 else deg
