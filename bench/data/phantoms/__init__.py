"""Synthetic phantoms: stand-ins for the seven seed datasets with true lesion masks.

``generate(key, ...)`` writes a phantom in the same on-disk format as a prepared real dataset (PNG
images + ``manifest.csv`` under the dataset folder, binary 0/255 PNG masks under the masks folder), so
the real-data code path is the one exercised. Every image is drawn from its own random generator
(seed, dataset, index): the same options give the same files.

The property that makes them a benchmark: whatever separates the classes is drawn inside the lesion's
reference mask (see each module's docstring and the ``[phantom]`` section of each card); anatomy,
position, noise, contrast and artefacts outside the lesion are drawn the same way for every class;
normal classes carry no lesion and no mask. Lesion position and size are drawn from one distribution
for every lesion class.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.phantoms import ct, dermoscopy, microscopy, petct, spect, xray
from bench.data.phantoms.common import SIZE, Sample, image_rng
from bench.data.phantoms.cues import CUES, add_cue
from bench.data.splits import DECORRELATED
from bench.registry import Registry

# Bump when any phantom's drawing changes: prepared phantoms with an older version are regenerated.
GENERATOR_VERSION = 5  # 3: with a confounder, test is correlated and a paired decorrelated split is added

PHANTOMS: Registry = Registry("phantom")
PHANTOMS.register("lidc_idri", ct.lidc_idri, modality="CT", colour=False)
PHANTOMS.register("cov_ct", ct.cov_ct, modality="CT", colour=False)
PHANTOMS.register("pet_ct", petct.pet_ct, modality="PET/CT", colour=True)
PHANTOMS.register("cov_x", xray.cov_x, modality="X-ray", colour=False)
PHANTOMS.register("cells", microscopy.cells, modality="microscopy", colour=True)
PHANTOMS.register("mpip", spect.mpip, modality="SPECT", colour=True)
PHANTOMS.register("ham10000", dermoscopy.ham10000, modality="dermoscopy", colour=True)


def class_sizes(counts, *, scale: float, min_per_class: int, max_per_class: int, min_images: int = 0) -> list[int]:
    """Images per class: ``round(count * scale)`` clipped to [min_per_class, max_per_class], then every class
    raised to at least ``ceil(min_images / len(counts))`` (even above ``max_per_class``), so that a phantom
    with few classes still has ``min_images`` images to train and test on; ``min_images = 0``: no floor."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if min_per_class < 1 or max_per_class < min_per_class:
        raise ValueError(f"need 1 <= min_per_class <= max_per_class, got {min_per_class}, {max_per_class}")
    if min_images < 0:
        raise ValueError(f"min_images must be >= 0, got {min_images}")
    floor = -(-min_images // max(len(counts), 1))
    return [max(int(min(max(round(c * scale), min_per_class), max_per_class)), floor) for c in counts]


def parse_confounder(spec: str, classes: tuple[str, ...], positive: str = "") -> tuple[str, str]:
    """``"ink"`` or ``"ink@Melanoma"`` -> (cue, class). Default class: the positive class, else the first."""
    cue, _, cls = spec.partition("@")
    cue, cls = cue.strip(), cls.strip()
    if cue not in CUES:
        raise ValueError(f"unknown confounder {cue!r}; valid cues: {', '.join(CUES)} (optionally cue@Class)")
    cls = cls or positive or classes[0]
    if cls not in classes:
        raise ValueError(f"confounder class {cls!r} is not a class: {', '.join(classes)}")
    return cue, cls


def draw(key: str, label: str, *, seed: int = 0, index: int = 0) -> Sample:
    """Draw one phantom image of class ``label`` (for tests and figures)."""
    return PHANTOMS.get(key)(image_rng(seed, key, index), label)


def redraw(
    key: str,
    image_id: str,
    label: str,
    *,
    seed: int = 0,
    confounder: str = "",
    confounder_p: float = 0.0,
    classes: tuple[str, ...] = (),
    positive: str = "",
    lesion: bool = True,
) -> np.ndarray:
    """Image ``image_id`` of phantom ``key`` drawn again as :func:`generate` drew it, optionally without its lesion.

    ``image_id``: ``<key>-NNNNN`` (image ``NNNNN`` of :func:`generate`), or a decorrelated copy ``<key>-NNNNN-nocue``
    / ``<key>-NNNNN-cue``; ``label`` its class; ``seed, confounder, confounder_p`` the options it was generated with
    (``classes``/``positive``: the card's, needed with a confounder). ``lesion=False`` draws the same image without
    its lesion: every phantom draws its background, its lesion and its finish (noise, gain, artefacts, a cue) from
    separate streams, so only the pixels inside the lesion's mask change (a tested property). Returns the uint8
    image (``SIZE`` x ``SIZE`` [x 3]) that :func:`generate` wrote (``lesion=True``) or would have written.

    Raises:
        ValueError: ``image_id`` is not an id of phantom ``key``.
    """
    import re

    m = re.fullmatch(re.escape(key) + r"-(\d+)(-nocue|-cue)?", image_id)
    if m is None:
        raise ValueError(f"{image_id!r} is not an image id of phantom {key!r} (expected {key}-NNNNN[-nocue|-cue])")
    j, copy = int(m.group(1)), m.group(2) or ""
    fn = PHANTOMS.get(key)
    rng = image_rng(seed, key, j)
    s = fn(rng, label, lesion=lesion)
    mask = fn(image_rng(seed, key, j), label).mask if (confounder and not lesion) else s.mask  # cues avoid the lesion
    if not confounder:
        return s.image
    cue, cue_class = parse_confounder(confounder, classes, positive)
    if copy == "-nocue":
        return s.image
    if copy == "-cue":
        return add_cue(s.image, mask, cue, image_rng(seed, f"{key}/cue", j))[0]
    p_cue = confounder_p if label == cue_class else 0.0
    return add_cue(s.image, mask, cue, rng)[0] if rng.random() < p_cue else s.image


def _save_png(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=1)


def _with_cue(s: Sample, cue: str, rng: np.random.Generator, sid: str, row: dict, masks_out: Path) -> Sample:
    """``s`` with the cue drawn on it; its mask saved as ``confounder/<sid>.png`` and noted in ``row``."""
    img, cmask = add_cue(s.image, s.mask, cue, rng)
    if cmask.any():
        _save_png(cmask.astype(np.uint8) * 255, masks_out / "confounder" / f"{sid}.png")
        row["confounder"] = "1"
        row["confounder_mask"] = f"confounder/{sid}.png"
    return Sample(img, s.mask, s.info)


def _labels_and_splits(
    sizes: list[int], seed: int, *, n_classes: int, assign_splits: bool, test_fraction: float, val_fraction: float
) -> tuple[np.ndarray, list[str]]:
    """The class index of each image ``(n_images,)`` in a shuffled order (``sizes[c]`` images of class
    ``c``), and each image's split.

    Splits are "" (the trainer splits) unless ``assign_splits``: then stratified over the ``n_classes``
    classes, the first ``round(n * test_fraction)`` of a class's shuffled images "test", the next
    ``round(n * val_fraction)`` "val", the rest "train". Both shuffles draw from one generator seeded by
    ``seed``.
    """
    order_rng = np.random.default_rng([seed & 0xFFFFFFFF, 7919])
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    order_rng.shuffle(labels)
    splits = [""] * len(labels)
    if assign_splits:
        for c in range(n_classes):
            idx = np.flatnonzero(labels == c)
            order_rng.shuffle(idx)
            n_test, n_val = round(len(idx) * test_fraction), round(len(idx) * val_fraction)
            for j, i in enumerate(idx):
                splits[i] = "test" if j < n_test else "val" if j < n_test + n_val else "train"
    return labels, splits


def _write_image(
    fn,
    key: str,
    j: int,
    label: str,
    split: str,
    *,
    seed: int,
    cue: str,
    p_cue: float,
    out_dir: Path,
    masks_out: Path,
) -> list[dict]:
    """Draw image ``j`` (class ``label``) of phantom ``key`` with its drawing function ``fn``, write it
    (and its lesion mask) and return its manifest rows: its own, then, for a test image with a ``cue``,
    its two decorrelated copies (``split`` is the image's split).

    With a ``cue`` the image carries it with probability ``p_cue`` (a draw from the image's own
    stream, after the image).
    """
    rng = image_rng(seed, key, j)
    s = fn(rng, label)
    sid = f"{key}-{j:05d}"
    row = {"image": f"{sid}.png", "label": label, "mask": "", "group": sid, "split": split, "mask_source": ""}
    base = s
    if cue:
        row["confounder"] = "0"
        row["confounder_mask"] = ""
        if rng.random() < p_cue:
            s = _with_cue(s, cue, rng, sid, row, masks_out)
    _save_png(s.image, out_dir / f"{sid}.png")
    if s.mask is not None and s.mask.any():
        _save_png(s.mask.astype(np.uint8) * 255, masks_out / f"{sid}.png")
        row["mask"] = f"{sid}.png"
        row["mask_source"] = "reference"
    rows = [row]
    if cue and split == "test":  # the decorrelated split: this image without and with the cue
        for suffix in ("nocue", "cue"):
            did = f"{sid}-{suffix}"
            drow = {**row, "image": f"{did}.png", "split": DECORRELATED, "confounder": "0", "confounder_mask": ""}
            d = _with_cue(base, cue, image_rng(seed, f"{key}/cue", j), did, drow, masks_out) if suffix == "cue" else base
            _save_png(d.image, out_dir / f"{did}.png")
            rows.append(drow)
    return rows


def _summary(classes: tuple[str, ...], sizes: list[int], rows: list[dict], cue_class: str) -> dict:
    """:func:`generate`'s summary of the manifest ``rows`` written."""
    return {
        "counts": dict(zip(classes, sizes)),
        "n_images": len(rows),
        "n_masks": sum(1 for r in rows if r["mask"]),
        "n_confounder": sum(1 for r in rows if r.get("confounder") == "1"),
        "n_decorrelated": sum(1 for r in rows if r["split"] == DECORRELATED),
        "confounder_class": cue_class,
        "size": SIZE,
    }


def generate(
    key: str,
    classes: tuple[str, ...],
    counts: tuple[int, ...],
    *,
    out_dir: str | os.PathLike,
    masks_out: str | os.PathLike,
    seed: int = 0,
    scale: float = 0.2,
    min_per_class: int = 60,
    max_per_class: int = 200,
    min_images: int = 0,
    confounder: str = "",
    confounder_p: float = 0.0,
    positive: str = "",
    test_fraction: float = 0.2,
    val_fraction: float = 0.15,
) -> dict:
    """Write phantom ``key`` (a card key in ``PHANTOMS``) into ``out_dir`` and ``masks_out``.

    Images are ``<id>.png`` (``SIZE`` px square), masks ``<id>.png`` (0/255). Ids are
    ``<key>-NNNNN`` in a shuffled order, so neither the id nor the file order reveals the class.
    Without a confounder the ``split`` column is empty (the trainer splits). With ``confounder``
    (``cue`` or ``cue@Class``, see :mod:`bench.data.phantoms.cues`), splits are assigned here
    (stratified, ``test_fraction``/``val_fraction``) and the cue is drawn, outside the lesion, on
    images of the chosen class with probability ``confounder_p`` in train, val and test (never on the
    other classes): ``test`` is the *correlated* test split. Each test image is also written twice more
    to the split ``decorrelated``, once without the cue (``<id>-nocue``) and once with it (``<id>-cue``,
    drawn from its own stream), whatever its class: there the cue is independent of the class, and the
    two copies differ only inside the cue's mask. Its mask is ``confounder/<id>.png`` and the manifest
    gets ``confounder`` 0/1. Returns a summary dict (counts per class, options).
    """
    fn = PHANTOMS.get(key)
    sizes = class_sizes(counts, scale=scale, min_per_class=min_per_class, max_per_class=max_per_class,
                        min_images=min_images)
    if not 0.0 <= confounder_p <= 1.0:
        raise ValueError(f"confounder_p must be in [0, 1], got {confounder_p}")
    cue, cue_class = parse_confounder(confounder, classes, positive) if confounder else ("", "")
    out_dir, masks_out = Path(out_dir), Path(masks_out)
    out_dir.mkdir(parents=True, exist_ok=True)
    masks_out.mkdir(parents=True, exist_ok=True)
    if cue:
        (masks_out / "confounder").mkdir(exist_ok=True)
    labels, splits = _labels_and_splits(sizes, seed, n_classes=len(classes), assign_splits=bool(cue),
                                        test_fraction=test_fraction, val_fraction=val_fraction)
    rows = []
    for j, c in enumerate(labels):
        label = classes[c]
        p_cue = confounder_p if label == cue_class else 0.0
        rows += _write_image(fn, key, j, label, splits[j], seed=seed, cue=cue, p_cue=p_cue, out_dir=out_dir,
                             masks_out=masks_out)
    from bench.data.manifest import write_manifest

    write_manifest(out_dir / "manifest.csv", rows)
    return _summary(classes, sizes, rows, cue_class)


__all__ = ["PHANTOMS", "GENERATOR_VERSION", "CUES", "class_sizes", "draw", "generate", "parse_confounder", "redraw"]
