"""A dataset's images and masks, read on demand from its decoded cache: memory grows with what is read.

:class:`ImageArray` and :class:`MaskArray` are what :class:`bench.data.ImageSet` holds. Indexing one reads
those rows and gives a tensor, exactly what indexing the old in-memory tensors gave:

- ``images[rows]`` -> float32 ``(B, 3, H, W)`` in [0, 1] (``uint8 / 255``; a grey dataset, stored with one
  channel, is replicated to three); ``images.batch(rows, device)`` the same, converted to float on
  ``device`` (a quarter of the bytes cross to a GPU); ``images.uint8(rows)`` the stored bytes,
  ``(B, C, H, W)`` uint8 with ``C`` = 1 or 3.
- ``masks[rows]`` -> bool ``(B, H, W)`` (stored as bits).
- ``take(rows)`` -> a view of those rows, reading nothing.

An int index gives one item without the batch axis, as a tensor would. Rows live in a :class:`RowStore`:
a read-only memory map of a cache file (after each read the pages are handed back to the page cache, so a
pass over the whole dataset does not grow the resident set) or an array in memory (``load_dataset(...,
cache=False)``, a read-only data root).

Whole-array use (``torch.equal(a.images, b.images)``, ``ds.masks.any()``, ``np.asarray(ds.masks)``) still
works on a small dataset by reading it all; above :data:`MATERIALISE_LIMIT` bytes it raises a
``MemoryError`` that says to index the rows needed instead.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import torch

MATERIALISE_LIMIT = 2 * 1024**3  # bytes: implicit whole-array reads (torch functions, methods) above this raise


class RowStore:
    """``n`` rows of ``row_bytes`` uint8 each: a read-only memory map of ``path`` or an ``(n, row_bytes)``
    array in memory. Picklable (a DataLoader worker re-opens the map, never copies it)."""

    def __init__(self, n: int, row_bytes: int, *, path: str | os.PathLike | None = None,
                 array: np.ndarray | None = None) -> None:
        if (path is None) == (array is None):
            raise ValueError("RowStore needs exactly one of path= and array=")
        self.n, self.row_bytes = int(n), int(row_bytes)
        self.path = None if path is None else str(path)
        self._array = None if array is None else np.ascontiguousarray(array, dtype=np.uint8).reshape(n, row_bytes)
        self._map: mmap.mmap | None = None
        if self.path is not None:
            size = Path(self.path).stat().st_size
            if size != self.n * self.row_bytes:
                raise ValueError(f"{self.path} has {size} bytes, expected {self.n} rows x {self.row_bytes} bytes "
                                 f"= {self.n * self.row_bytes}; delete its cache folder to rebuild it")

    @property
    def in_memory(self) -> bool:
        return self._array is not None

    def _rows(self) -> np.ndarray:
        if self._array is not None:
            return self._array
        if self._map is None:
            if self.n * self.row_bytes == 0:
                self._array = np.zeros((self.n, self.row_bytes), np.uint8)
                return self._array
            with open(self.path, "rb") as fh:
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(self._map, dtype=np.uint8).reshape(self.n, self.row_bytes)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """A copy of ``rows`` (int array, any order, repeats allowed): ``(len(rows), row_bytes)`` uint8."""
        out = self._rows()[np.asarray(rows, dtype=np.int64)]
        if self._map is not None and hasattr(mmap, "MADV_DONTNEED"):
            # the copy is ours; drop the mapped pages from this process (they stay in the page cache)
            self._map.madvise(mmap.MADV_DONTNEED)
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_map"] = None
        return state

    def __len__(self) -> int:
        return self.n


def positions(index, n: int) -> tuple[np.ndarray, bool]:
    """``(int64 positions in [0, n), scalar?)`` of an index: an int, a slice, a sequence / array / tensor of
    ints, or a bool mask of length ``n``. Raises ``IndexError`` as numpy does for an index out of range."""
    if torch.is_tensor(index):
        index = index.cpu().numpy()
    if isinstance(index, (int, np.integer)):
        return np.arange(n)[[int(index)]], True
    if isinstance(index, (list, tuple)) and len(index) == 0:
        return np.zeros(0, np.int64), False
    return np.atleast_1d(np.arange(n)[index]).astype(np.int64), False


class _LazyRows:
    """What :class:`ImageArray` and :class:`MaskArray` share: rows of a store, tensor-like on indexing."""

    _item_shape: tuple[int, ...] = ()
    dtype: torch.dtype = torch.float32

    def __init__(self, store: RowStore, rows: np.ndarray | None) -> None:
        self.store = store
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return self.store.n if self.rows is None else len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self._item_shape))

    @property
    def ndim(self) -> int:
        return 1 + len(self._item_shape)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def store_rows(self, index) -> tuple[np.ndarray, bool]:
        """``(rows of the store, scalar?)`` for an index into this view."""
        pos, scalar = positions(index, len(self))
        return (pos if self.rows is None else self.rows[pos]), scalar

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, tuple):  # rows, then the other axes, as a tensor would: x[:, 0], x[rows, :, 2:5]
            first, rest = (index[0] if index else slice(None)), index[1:]
            got = self._get(first)
            return got[rest] if positions(first, len(self))[1] else got[(slice(None), *rest)]
        return self._get(index)

    def _get(self, index) -> torch.Tensor:
        raise NotImplementedError

    def take(self, index):
        """A view of the rows ``index`` (int, slice, ints, bool mask); reads nothing."""
        rows, _ = self.store_rows(index)
        return type(self)(self.store, *self._args(), rows=rows)

    def _args(self) -> tuple:
        return ()

    def nbytes_as_tensor(self) -> int:
        return len(self) * int(np.prod(self._item_shape)) * torch.empty(0, dtype=self.dtype).element_size()

    def tensor(self) -> torch.Tensor:
        """All rows as one tensor (what ``self[:]`` gives)."""
        return self[:]

    def _whole(self) -> torch.Tensor:
        need = self.nbytes_as_tensor()
        if need > MATERIALISE_LIMIT:
            raise MemoryError(
                f"this {type(self).__name__} of {len(self)} items of {tuple(self._item_shape)} would take "
                f"{need / 1e9:.1f} GB as one {self.dtype} tensor (limit bench.data.arrays.MATERIALISE_LIMIT = "
                f"{MATERIALISE_LIMIT / 1e9:.1f} GB); index the rows you need (x[rows]) or read batches "
                "(bench.data.batches.batch_loader)")
        return self[:]

    def __array__(self, dtype=None, copy=None):
        arr = self._whole().numpy()
        return arr if dtype is None else arr.astype(dtype)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        def whole(a):
            if isinstance(a, _LazyRows):
                return a._whole()
            if isinstance(a, (list, tuple)):
                return type(a)(whole(b) for b in a)
            return a

        return func(*whole(tuple(args)), **{k: whole(v) for k, v in (kwargs or {}).items()})

    def __getattr__(self, name: str):
        # tensor methods (min, any, flatten, float, numpy, ...) on the whole array; never private names
        if name.startswith("_") or not hasattr(torch.Tensor, name):
            raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")
        return getattr(self._whole(), name)

    def __and__(self, other):
        return self._whole() & (other._whole() if isinstance(other, _LazyRows) else other)

    __rand__ = __and__

    def __or__(self, other):
        return self._whole() | (other._whole() if isinstance(other, _LazyRows) else other)

    __ror__ = __or__

    def __invert__(self):
        return ~self._whole()

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        where = "memory" if self.store.in_memory else self.store.path
        return f"{type(self).__name__}(shape={tuple(self.shape)}, dtype={self.dtype}, store={where})"


class ImageArray(_LazyRows):
    """Images ``(N, 3, H, W)`` float32 in [0, 1] on indexing, stored as uint8 ``(N, C, H, W)`` rows (``C``:
    ``channels``, 1 for a grey dataset, 3 for colour). See the module docstring."""

    dtype = torch.float32

    def __init__(self, store: RowStore, channels: int, height: int, width: int, *,
                 rows: np.ndarray | None = None) -> None:
        super().__init__(store, rows)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if store.row_bytes != channels * height * width:
            raise ValueError(f"row size {store.row_bytes} != {channels} x {height} x {width}")
        self.channels, self.height, self.width = channels, height, width
        self._item_shape = (3, height, width)

    def _args(self) -> tuple:
        return (self.channels, self.height, self.width)

    def uint8(self, index) -> torch.Tensor:
        """The stored bytes of rows ``index``: uint8 ``(B, C, H, W)``, ``C`` = :attr:`channels`."""
        rows, scalar = self.store_rows(index)
        x = torch.from_numpy(self.store.read(rows)).view(len(rows), self.channels, self.height, self.width)
        return x[0] if scalar else x

    def batch(self, index, device=None) -> torch.Tensor:
        """Rows ``index`` as float32 ``(B, 3, H, W)`` in [0, 1] on ``device`` (default: the CPU), the float
        conversion done there."""
        return to_float_images(self.uint8(index), device)

    def _get(self, index) -> torch.Tensor:
        return self.batch(index)


class MaskArray(_LazyRows):
    """Masks ``(N, H, W)`` bool on indexing, stored as bits (``np.packbits`` of each row, C order)."""

    dtype = torch.bool

    def __init__(self, store: RowStore, height: int, width: int, *, rows: np.ndarray | None = None) -> None:
        super().__init__(store, rows)
        if store.row_bytes != -(-height * width // 8):
            raise ValueError(f"row size {store.row_bytes} != ceil({height} x {width} / 8)")
        self.height, self.width = height, width
        self._item_shape = (height, width)

    def _args(self) -> tuple:
        return (self.height, self.width)

    def _get(self, index) -> torch.Tensor:
        rows, scalar = self.store_rows(index)
        bits = np.unpackbits(self.store.read(rows), axis=1, count=self.height * self.width)
        m = torch.from_numpy(bits.view(bool).reshape(len(rows), self.height, self.width))
        return m[0] if scalar else m


def to_float_images(x: torch.Tensor, device=None) -> torch.Tensor:
    """A batch as the models take it: float32 ``(B, 3, H, W)`` on ``device`` (None = where ``x`` is).

    ``x``: uint8 ``(B, C, H, W)`` (C = 1 or 3; moved to ``device`` first, then divided by 255 there, a grey
    channel replicated to three) or an already floating batch (moved, values untouched). A single image
    ``(C, H, W)`` gives ``(3, H, W)``.
    """
    if device is not None:
        x = x.to(device, non_blocking=True)
    if x.is_floating_point():
        return x
    if x.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 or floating, got {x.dtype}")
    x = x.float().div_(255.0)
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    return x


def take_rows(x, index):
    """``x``'s rows ``index``: a lazy view for an :class:`ImageArray` / :class:`MaskArray` (nothing read), an
    indexed copy for a tensor."""
    if isinstance(x, _LazyRows):
        return x.take(index)
    return x[torch.as_tensor(index) if isinstance(index, np.ndarray) else index]


def images_on(images, index, device=None) -> torch.Tensor:
    """Images ``index`` of ``images`` (an :class:`ImageArray` or a float tensor ``(N, 3, H, W)``) as float32
    ``(B, 3, H, W)`` on ``device``, converted there from the stored uint8 where there is a store."""
    if isinstance(images, ImageArray):
        return images.batch(index, device)
    return to_float_images(images[index], device)


__all__ = ["MATERIALISE_LIMIT", "ImageArray", "MaskArray", "RowStore", "images_on", "positions", "take_rows",
           "to_float_images"]
