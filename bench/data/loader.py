"""One loader for every prepared dataset: ``load_dataset(key) -> ImageSet`` (in-memory tensors).

Images are decoded as RGB (grey replicated to three channels) and resized to ``image_size`` square
with PIL's antialiasing bilinear filter; masks are resized with nearest (if that leaves a non-empty
mask empty, the pixel nearest to its centroid is kept so a tiny lesion never vanishes). The decoded,
resized arrays are cached in ``R/<key>/.cache/`` keyed by the manifest and every file's size and
modification time, so a second load is a file read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

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
from bench.data.paths import MANIFEST, dataset_dir, masks_dir

CACHE_VERSION = 1


@dataclass
class ImageSet:
    """A loaded dataset. N images of size H x W.

    ``images`` float32 (N, 3, H, W) in [0, 1]; ``labels`` int64 (N,) indexes ``class_names``;
    ``masks`` bool (N, H, W), all False where ``has_mask`` (bool (N,)) is False; ``ids``, ``groups``,
    ``splits`` (each a list of N str; split "" = unassigned); ``confounder_masks`` bool (N, H, W) and
    ``has_confounder`` bool (N,) when the manifest has a ``confounder`` column, else None;
    ``mask_sources``: "reference", "derived" or "" per image.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    has_mask: torch.Tensor
    ids: list[str]
    groups: list[str]
    splits: list[str]
    card: DatasetCard
    class_names: tuple[str, ...]
    confounder_masks: torch.Tensor | None = None
    has_confounder: torch.Tensor | None = None
    mask_sources: list[str] = field(default_factory=list)
    key: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices) -> ImageSet:
        """Another ImageSet with the rows ``indices`` (a sequence of ints, a bool or int tensor)."""
        idx = torch.as_tensor(indices)
        if idx.dtype == torch.bool:
            idx = torch.nonzero(idx, as_tuple=False).flatten()
        idx = idx.long()
        pick = idx.tolist()
        return replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            masks=self.masks[idx],
            has_mask=self.has_mask[idx],
            ids=[self.ids[i] for i in pick],
            groups=[self.groups[i] for i in pick],
            splits=[self.splits[i] for i in pick],
            confounder_masks=None if self.confounder_masks is None else self.confounder_masks[idx],
            has_confounder=None if self.has_confounder is None else self.has_confounder[idx],
            mask_sources=[self.mask_sources[i] for i in pick] if self.mask_sources else [],
        )

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.class_names)).tolist()
        return dict(zip(self.class_names, counts))


@dataclass
class _Scan:
    rows: list[Row]
    problems: list[Problem]
    images: np.ndarray | None = None  # uint8 (N, S, S, 3)
    masks: np.ndarray | None = None  # bool (N, S, S)
    conf: np.ndarray | None = None  # bool (N, S, S)


def _resize_mask(m: np.ndarray, size: int) -> np.ndarray:
    out = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 0
    if m.any() and not out.any():
        ys, xs = np.nonzero(m)
        out[int(ys.mean() * size / m.shape[0]), int(xs.mean() * size / m.shape[1])] = True
    return out


def _scan(key: str, root: str, card: DatasetCard, *, image_size: int | None, resize_masks: bool) -> _Scan:
    """Read the manifest and every file; collect all problems; decode and resize if ``image_size``."""
    ddir, mdir = dataset_dir(key, root), masks_dir(key, root)
    mpath = ddir / MANIFEST
    rows, problems = read_manifest(mpath)
    if problems:
        return _Scan(rows, problems)
    man = str(mpath)
    problems += check_rows(rows, card.classes, man)
    if not rows:
        problems.append(Problem(man, None, "the manifest has no rows"))
    n, s = len(rows), image_size
    want = s is not None
    images = np.zeros((n, s, s, 3), np.uint8) if want else None
    masks = np.zeros((n, s, s), bool) if want else None
    has_conf_col = any(r.confounder != "" for r in rows)
    conf = np.zeros((n, s, s), bool) if want and has_conf_col else None
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
        if want:
            images[i] = np.asarray(im.resize((s, s), Image.BILINEAR))
        for col, rel, out in (("mask", r.mask, masks), ("confounder_mask", r.confounder_mask, conf)):
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
            if want and out is not None:
                out[i] = _resize_mask(m, s)
        if r.confounder == "1" and not r.confounder_mask:
            problems.append(Problem(man, r.line, "confounder is 1 but confounder_mask is empty"))
    problems.sort(key=lambda p: p.line or 0)  # in file order (stable: a row's problems keep their order)
    return _Scan(rows, problems, images, masks, conf)


def validate_dataset(key: str, *, root: str = "", resize_masks: bool = False) -> list[Problem]:
    """Every problem of prepared dataset ``key`` (empty list = valid). Decodes every file once."""
    ckey = canonical_key(key, root)
    card = load_card(ckey, root)
    return _scan(ckey, root, card, image_size=None, resize_masks=resize_masks).problems


def _fingerprint(ddir: Path, mdir: Path, rows: list[Row], manifest_bytes: bytes, extra: str) -> str:
    h = hashlib.sha1(manifest_bytes)
    h.update(f"{CACHE_VERSION}|{extra}".encode())
    for r in rows:
        for base, rel in ((ddir, r.image), (mdir, r.mask), (mdir, r.confounder_mask)):
            if rel:
                try:
                    st = (base / rel).stat()
                    h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}".encode())
                except OSError:
                    h.update(f"{rel}|missing".encode())
    return h.hexdigest()


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
    listing them all. ``cache=False`` skips the decoded-array cache.
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
        raise ManifestError(ckey, _scan(ckey, root, card, image_size=None, resize_masks=resize_masks).problems)
    cpath = ddir / ".cache" / f"{image_size}{'r' if resize_masks else ''}.npz"
    fp = _fingerprint(ddir, mdir, rows, (ddir / MANIFEST).read_bytes(), f"{image_size}|{resize_masks}")
    arrays = None
    if cache and cpath.is_file():
        try:
            with np.load(cpath) as z:
                if str(z["fingerprint"]) == fp:
                    n, s = len(rows), image_size
                    arrays = (z["images"], np.unpackbits(z["masks"])[: n * s * s].reshape(n, s, s).astype(bool),
                              np.unpackbits(z["conf"])[: n * s * s].reshape(n, s, s).astype(bool) if z["conf"].size else None)
        except Exception:  # noqa: BLE001 - a broken cache is rebuilt
            arrays = None
    if arrays is None:
        sc = _scan(ckey, root, card, image_size=image_size, resize_masks=resize_masks)
        if sc.problems:
            raise ManifestError(ckey, sc.problems)
        arrays = (sc.images, sc.masks, sc.conf)
        if cache:
            try:
                cpath.parent.mkdir(exist_ok=True)
                tmp = cpath.with_suffix(f".{os.getpid()}.tmp.npz")
                np.savez(tmp, fingerprint=np.array(fp), images=sc.images, masks=np.packbits(sc.masks),
                         conf=np.packbits(sc.conf) if sc.conf is not None else np.zeros(0, np.uint8))
                os.replace(tmp, cpath)
            except OSError:
                pass  # a read-only data root: no cache
    images, masks, conf = arrays
    has_mask = np.array([bool(r.mask) for r in rows])
    masks = masks & has_mask[:, None, None]
    out = ImageSet(
        images=torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0).contiguous(),
        labels=torch.tensor([card.classes.index(r.label) for r in rows], dtype=torch.int64),
        masks=torch.from_numpy(masks),
        has_mask=torch.from_numpy(has_mask),
        ids=[r.id for r in rows],
        groups=[r.group or r.id for r in rows],
        splits=[r.split for r in rows],
        card=card,
        class_names=tuple(card.classes),
        confounder_masks=None if conf is None else torch.from_numpy(conf),
        has_confounder=None if conf is None else torch.tensor([r.confounder == "1" for r in rows]),
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
