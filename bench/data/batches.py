"""Batches of an image set for a ``torch.utils.data.DataLoader``: the rows a caller orders, read in workers.

:class:`ImageRows` is a map-style ``Dataset`` over the images (and, optionally, the masks) of an
:class:`bench.data.ImageSet`: item ``i`` is row ``i`` as stored (uint8 ``(C, H, W)``, C = 1 or 3), and a
whole batch is read at once (``__getitems__``: one read of the memory map per batch). :func:`batch_loader`
gives the batches of a list of row lists, in that order, with ``workers`` processes and pinned memory for a
GPU; :func:`bench.data.arrays.to_float_images` then makes each batch float on the device. The order of the
batches is the caller's: a training loop draws its permutation from its own seeded generator, so the
batches, and the weights, do not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.data.arrays import ImageArray, MaskArray


class ImageRows(Dataset):
    """Rows of an image set, as stored. ``images``: an :class:`ImageArray` (read from its store) or a float
    tensor ``(N, 3, H, W)`` (an image set built in memory); ``masks``: a :class:`MaskArray`, a bool tensor
    ``(N, H, W)`` or None.

    ``dataset[i]`` -> ``{"images": (C, H, W), "rows": i[, "masks": (H, W)]}``;
    ``dataset.__getitems__(rows)`` -> the batch ``{"images": (B, C, H, W), "rows": int64 (B,)[, "masks": bool
    (B, H, W)]}`` (images uint8 from a store, else float).
    """

    def __init__(self, images: ImageArray | torch.Tensor, masks: MaskArray | torch.Tensor | None = None) -> None:
        if masks is not None and len(masks) != len(images):
            raise ValueError(f"{len(masks)} masks for {len(images)} images")
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([int(i)])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        out = {"images": self.images.uint8(idx) if isinstance(self.images, ImageArray) else self.images[idx],
               "rows": idx}
        if self.masks is not None:
            out["masks"] = self.masks[idx]
        return out


class BatchList(Sampler):
    """A batch sampler that yields the row lists in :attr:`batches`; set them anew before each pass (one
    DataLoader, and its persistent workers, serve every epoch)."""

    def __init__(self, batches: Sequence[Sequence[int]] = ()) -> None:
        self.batches = [list(map(int, b)) for b in batches]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def as_batch(batch):
    """The DataLoader's ``collate_fn``: :meth:`ImageRows.__getitems__` already made the batch."""
    return batch


def batch_loader(dataset: ImageRows, batches: BatchList | Sequence[Sequence[int]], *, workers: int = 0,
                 pin_memory: bool = False, prefetch: int = 2) -> DataLoader:
    """A DataLoader over ``dataset`` yielding the batches ``batches`` (row lists, or a :class:`BatchList` to
    refill between passes) in their order. ``workers``: reading processes (0 = in this one; they persist
    between passes); ``pin_memory``: page-locked batches for a fast, asynchronous copy to a GPU;
    ``prefetch``: batches each worker reads ahead."""
    if workers < 0:
        raise ValueError(f"workers (data.workers) must be >= 0, got {workers}")
    sampler = batches if isinstance(batches, BatchList) else BatchList(batches)
    # a generator of its own: each pass draws a base seed for the workers from it, which from the global one
    # would move the caller's random stream (dropout masks) and change the weights of a seeded run
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=as_batch, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=workers > 0,
                      prefetch_factor=prefetch if workers > 0 else None, generator=torch.Generator())


def ordered_batches(rows: np.ndarray | torch.Tensor, order: torch.Tensor, batch_size: int) -> list[list[int]]:
    """``rows`` taken in ``order`` (a permutation of positions into ``rows``), cut into batches of
    ``batch_size`` (the last may be smaller)."""
    picked = torch.as_tensor(np.asarray(rows, dtype=np.int64))[order].tolist()
    return [picked[i : i + batch_size] for i in range(0, len(picked), batch_size)]


__all__ = ["BatchList", "ImageRows", "as_batch", "batch_loader", "ordered_batches"]
