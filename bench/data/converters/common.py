"""Helpers shared by the converters: finding files, placing images, normalising masks."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
MASK_SUFFIXES = ("_segmentation", "_mask", "-mask", "_seg", "_label")
LINKS = ("copy", "hardlink", "symlink")


def is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")


def place(src: Path, dst: Path, link: str = "copy") -> None:
    """Put ``src`` at ``dst``: a copy, a hard link (falls back to a copy across devices) or a symlink."""
    if link not in LINKS:
        raise ValueError(f"link must be one of {', '.join(LINKS)}, got {link!r}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link == "symlink":
        os.symlink(src.resolve(), dst)
        return
    if link == "hardlink":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def mask_stem(p: Path) -> str:
    """``ISIC_1_segmentation.png`` -> ``ISIC_1``: the file stem without a known mask suffix."""
    stem = p.stem
    for suf in MASK_SUFFIXES:
        if stem.lower().endswith(suf):
            return stem[: -len(suf)]
    return stem


class MaskIndex:
    """All image files under a folder, found by ``(subfolder, stem)`` or by stem alone."""

    def __init__(self, folder: Path | None) -> None:
        self.by_rel: dict[str, Path] = {}
        self.by_stem: dict[str, Path] = {}
        self.ambiguous: set[str] = set()
        if folder is None:
            return
        if not folder.is_dir():
            raise FileNotFoundError(f"mask folder {folder} does not exist")
        for p in sorted(folder.rglob("*")):
            if not is_image(p):
                continue
            stem = mask_stem(p)
            rel = str(p.parent.relative_to(folder) / stem).replace(os.sep, "/")
            self.by_rel[rel] = p
            if stem in self.by_stem:
                self.ambiguous.add(stem)
            self.by_stem.setdefault(stem, p)

    def find(self, sub: str, stem: str) -> Path | None:
        p = self.by_rel.get(f"{sub}/{stem}" if sub else stem)
        if p is not None:
            return p
        if stem in self.ambiguous:
            return None
        return self.by_stem.get(stem)

    def __len__(self) -> int:
        return len(self.by_rel)


def binarise_mask(path: Path, notes: Counter) -> np.ndarray | None:
    """Read a supplied mask as bool (H, W). {0,1} / {0,255} are kept as they are; other values are
    thresholded at half the maximum (counted in ``notes``); an all-zero mask returns None (no lesion)."""
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2)
    arr = arr.astype(np.float64)
    vals = set(np.unique(arr).tolist())
    if not (vals <= {0, 1} or vals <= {0, 255}):
        notes["masks that were not binary, thresholded at half their maximum"] += 1
        arr = arr > (arr.max() / 2 if arr.max() > 0 else 0)
    m = arr > 0
    if not m.any():
        notes["supplied masks that were empty (all 0), treated as no lesion"] += 1
        return None
    return m


def save_mask(m: np.ndarray, path: Path) -> None:
    """Write a bool mask as a 0/255 PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(m.astype(np.uint8) * 255).save(path, format="PNG")


def image_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001
        return None


def match_size(m: np.ndarray, size: tuple[int, int] | None, notes: Counter) -> np.ndarray:
    """Resize mask to the image's (W, H) with nearest when they differ (counted in ``notes``)."""
    if size is None or (m.shape[1], m.shape[0]) == size:
        return m
    notes["masks resized (nearest) to their image's size"] += 1
    return np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 0


def summary(rows: list[dict], classes, notes: Counter) -> dict:
    counts = Counter(r["label"] for r in rows)
    return {
        "counts": {c: counts.get(c, 0) for c in classes},
        "n_images": len(rows),
        "n_masks": sum(1 for r in rows if r.get("mask")),
        "notes": {k: v for k, v in sorted(notes.items())},
    }
