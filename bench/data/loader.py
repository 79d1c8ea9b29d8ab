"""One loader for every prepared dataset: ``load_dataset(key) -> ImageSet``, read on demand from a cache.

Images are decoded as RGB (grey replicated to three channels) and resized to ``image_size`` square
with PIL's antialiasing bilinear filter; masks are resized with nearest (if that leaves a non-empty
mask empty, the pixel nearest to its centroid is kept so a tiny lesion never vanishes). The first load at a
size decodes every file once into the dataset's decoded cache (:mod:`bench.data.cache`: uint8 on disk, one
channel for a grey dataset, masks as bits, built atomically, keyed by the manifest and the size); every load
then memory-maps it, and the :class:`ImageSet` reads the rows a caller indexes (:mod:`bench.data.arrays`), so
memory grows with the batch, not with the dataset.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from bench.data.arrays import ImageArray, MaskArray, take_rows
from bench.data.cache import (
    Decoded,
    Writer,
    cache_name,
    files_fingerprint,
    lock_path,
    open_cache,
    remove_leftovers,
    remove_stale,
)
from bench.data.cards import DatasetCard, canonical_key, load_card
from bench.data.manifest import (
    ManifestError,
    Problem,
    Row,
    check_rows,
    read_image,
    read_manifest,
    read_mask,
)
from bench.data.paths import MANIFEST, cache_dir, dataset_dir, masks_dir
from bench.data.prepare import file_lock

BUILD_WAIT_S = 6 * 3600.0  # how long a load waits for another process building the same cache (it may be large)


@dataclass
class ImageSet:
    """A loaded dataset. N images of size H x W.

    ``images`` (N, 3, H, W): an :class:`bench.data.arrays.ImageArray` read on demand (``images[rows]`` is a
    float32 tensor in [0, 1]; ``images.batch(rows, device)`` converts on ``device``); ``labels`` int64 (N,)
    indexes ``class_names``; ``masks`` (N, H, W): a :class:`bench.data.arrays.MaskArray` (``masks[rows]`` is
    bool), all False where ``has_mask`` (bool (N,)) is False; ``ids``, ``groups``, ``splits`` (each a list of
    N str; split "" = unassigned); ``confounder_masks`` (N, H, W) like ``masks`` and ``has_confounder`` bool
    (N,) when the manifest has a ``confounder`` column, else None; ``mask_sources``: "reference", "derived"
    or "" per image. Code that builds an ImageSet itself may give plain tensors for ``images`` and the masks.
    """

    images: ImageArray | torch.Tensor
    labels: torch.Tensor
    masks: MaskArray | torch.Tensor
    has_mask: torch.Tensor
    ids: list[str]
    groups: list[str]
    splits: list[str]
    card: DatasetCard
    class_names: tuple[str, ...]
    confounder_masks: MaskArray | torch.Tensor | None = None
    has_confounder: torch.Tensor | None = None
    mask_sources: list[str] = field(default_factory=list)
    key: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices) -> ImageSet:
        """Another ImageSet with the rows ``indices`` (a sequence of ints, a bool or int tensor); images and
        masks stay on disk (a view of the rows)."""
        idx = torch.as_tensor(indices)
        if idx.dtype == torch.bool:
            idx = torch.nonzero(idx, as_tuple=False).flatten()
        idx = idx.long().reshape(-1)
        pick = idx.tolist()
        return replace(
            self,
            images=take_rows(self.images, idx),
            labels=self.labels[idx],
            masks=take_rows(self.masks, idx),
            has_mask=self.has_mask[idx],
            ids=[self.ids[i] for i in pick],
            groups=[self.groups[i] for i in pick],
            splits=[self.splits[i] for i in pick],
            confounder_masks=None if self.confounder_masks is None else take_rows(self.confounder_masks, idx),
            has_confounder=None if self.has_confounder is None else self.has_confounder[idx],
            mask_sources=[self.mask_sources[i] for i in pick] if self.mask_sources else [],
        )

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.class_names)).tolist()
        return dict(zip(self.class_names, counts))


def _resize_mask(m: np.ndarray, size: int) -> np.ndarray:
    out = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 0
    if m.any() and not out.any():
        ys, xs = np.nonzero(m)
        out[int(ys.mean() * size / m.shape[0]), int(xs.mean() * size / m.shape[1])] = True
    return out


def _scan(key: str, root: str, card: DatasetCard, *, resize_masks: bool, sink: Writer | None = None,
          image_size: int = 0) -> list[Problem]:
    """Read the manifest and every file and return all problems; with a ``sink``, give it every row's image
    and masks decoded at ``image_size`` (one row at a time: memory stays at one image)."""
    ddir, mdir = dataset_dir(key, root), masks_dir(key, root)
    mpath = ddir / MANIFEST
    rows, problems = read_manifest(mpath)
    if problems:
        return problems
    man = str(mpath)
    problems += check_rows(rows, card.classes, man)
    if not rows:
        problems.append(Problem(man, None, "the manifest has no rows"))
    s = image_size
    for i, r in enumerate(rows):
        if not r.image:
            continue
        ipath = ddir / r.image
        if not ipath.is_file():
            what = "is a folder, not an image file:" if ipath.is_dir() else "missing image"
            problems.append(Problem(man, r.line, f"{what} {ipath}"))
            continue
        try:
            im = read_image(ipath)
        except Exception as exc:  # noqa: BLE001 - any decoder error
            problems.append(Problem(man, r.line, f"unreadable image {ipath}: {exc}"))
            continue
        if sink is not None:
            sink.image(i, np.asarray(im.resize((s, s), Image.BILINEAR)))
        for col, rel in (("mask", r.mask), ("confounder_mask", r.confounder_mask)):
            if not rel:
                continue
            mp = mdir / rel
            if not mp.is_file():
                what = f"{col} is a folder, not an image file:" if mp.is_dir() else f"missing {col}"
                problems.append(Problem(man, r.line, f"{what} {mp}"))
                continue
            m, why = read_mask(mp)
            if m is None:
                problems.append(Problem(man, r.line, why))
                continue
            if m.shape != (im.height, im.width) and not resize_masks:
                problems.append(Problem(man, r.line, f"{col} {mp} is {m.shape[1]}x{m.shape[0]} but its image is "
                                                     f"{im.width}x{im.height} (resize_masks=True / --resize-masks "
                                                     "resizes it with nearest)"))
                continue
            if sink is not None:
                sink.mask(i, _resize_mask(m, s), confounder=col == "confounder_mask")
        if r.confounder == "1" and not r.confounder_mask:
            problems.append(Problem(man, r.line, "confounder is 1 but confounder_mask is empty"))
    problems.sort(key=lambda p: p.line or 0)  # in file order (stable: a row's problems keep their order)
    return problems


def validate_dataset(key: str, *, root: str = "", resize_masks: bool = False) -> list[Problem]:
    """Every problem of prepared dataset ``key`` (empty list = valid). Decodes every file once."""
    ckey = canonical_key(key, root)
    card = load_card(ckey, root)
    return _scan(ckey, root, card, resize_masks=resize_masks)


def _decode(ckey: str, root: str, card: DatasetCard, rows, *, image_size: int, resize_masks: bool,
            cache: bool) -> Decoded:
    """The decoded arrays of dataset ``ckey`` at ``image_size``: its cache (built first if missing, stale or
    half-written), or decoded into memory (``cache=False``; a cache folder that cannot be written)."""
    ddir, mdir = dataset_dir(ckey, root), masks_dir(ckey, root)
    n, conf = len(rows), any(r.confounder != "" for r in rows)
    fingerprint = files_fingerprint(ddir, mdir, rows)

    def build(folder):
        writer = Writer(folder, n=n, size=image_size, confounder=conf)
        try:
            problems = _scan(ckey, root, card, resize_masks=resize_masks, sink=writer, image_size=image_size)
            if problems:
                raise ManifestError(ckey, problems)
            return writer.commit(fingerprint, {"key": ckey, "resize_masks": resize_masks})
        except OSError as exc:  # the files read are checked by _scan: this is the cache's disk (full?)
            raise OSError(f"writing the decoded cache of {ckey!r} to {folder} failed: {exc}; free some space "
                          "there or set BENCH_CACHE_ROOT to another folder") from exc
        finally:
            writer.abort()  # after a commit: nothing left to delete

    if not cache:
        return build(None)
    folder = cache_dir(ckey, root) / cache_name((ddir / MANIFEST).read_bytes(), image_size, resize_masks)
    found = open_cache(folder, n=n, size=image_size, fingerprint=fingerprint)
    if found is not None:
        return found
    with contextlib.ExitStack() as held:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(file_lock(lock_path(folder), timeout=BUILD_WAIT_S))
        except OSError as exc:  # a read-only data root: decode into memory
            print(f"bench: cannot write the decoded cache of {ckey!r} in {folder.parent} ({exc}); decoding "
                  f"{n} images into memory instead (set BENCH_CACHE_ROOT to a writable folder)", file=sys.stderr)
            return build(None)
        found = open_cache(folder, n=n, size=image_size, fingerprint=fingerprint)  # built meanwhile?
        if found is not None:
            return found
        remove_leftovers(folder)  # of builds killed half-way: never read, deleted here
        out = build(folder)
        remove_stale(folder)
        return out


def load_dataset(
    key: str,
    *,
    root: str = "",
    image_size: int = 64,
    split: str | None = None,
    resize_masks: bool = False,
    cache: bool = True,
) -> ImageSet:
    """Load prepared dataset ``key`` (aliases accepted) at ``image_size`` x ``image_size``.

    ``split``: None = every row; "train" / "val" / "test" / "decorrelated" = the rows with that split
    (a ``ValueError`` if the manifest assigns no splits). Any problem in the dataset raises one :class:`ManifestError`
    listing them all (no cache is written then).

    The first load at a size decodes every file into the decoded cache (:mod:`bench.data.cache`); a load then
    opens it (a memory map: milliseconds) and the images are read as they are indexed. ``cache=False``
    decodes into memory instead (uint8, the same interface), and so does a data root where the cache cannot
    be written (set ``BENCH_CACHE_ROOT``: :func:`bench.data.paths.cache_dir`).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    ckey = canonical_key(key, root)
    card = load_card(ckey, root)
    ddir, mdir = dataset_dir(ckey, root), masks_dir(ckey, root)
    rows, problems = read_manifest(ddir / MANIFEST)
    if problems:
        raise ManifestError(ckey, problems)
    if check_rows(rows, card.classes, str(ddir / MANIFEST)):  # report every problem, files included
        raise ManifestError(ckey, _scan(ckey, root, card, resize_masks=resize_masks))
    dec = _decode(ckey, root, card, rows, image_size=image_size, resize_masks=resize_masks, cache=cache)
    s = image_size
    out = ImageSet(
        images=ImageArray(dec.images, dec.channels, s, s),
        labels=torch.tensor([card.classes.index(r.label) for r in rows], dtype=torch.int64),
        masks=MaskArray(dec.masks, s, s),
        has_mask=torch.tensor([bool(r.mask) for r in rows], dtype=torch.bool),
        ids=[r.id for r in rows],
        groups=[r.group or r.id for r in rows],
        splits=[r.split for r in rows],
        card=card,
        class_names=tuple(card.classes),
        confounder_masks=None if dec.confounder is None else MaskArray(dec.confounder, s, s),
        has_confounder=None if dec.confounder is None else torch.tensor([r.confounder == "1" for r in rows]),
        mask_sources=[r.mask_source or ("reference" if r.mask else "") for r in rows],
        key=ckey,
    )
    if split is not None:
        if split not in ("train", "val", "test", "decorrelated"):
            raise ValueError(f"split must be None, 'train', 'val', 'test' or 'decorrelated', got {split!r}")
        if not any(out.splits):
            raise ValueError(f"dataset {ckey!r} assigns no splits in its manifest; load split=None and split it")
        out = out.subset([i for i, sp in enumerate(out.splits) if sp == split])
    return out
