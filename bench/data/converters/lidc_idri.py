"""LIDC-IDRI through pylidc (optional extra: ``pip install -e .[lidc]``).

Per scan, pylidc's ``cluster_annotations()`` groups the readers' annotations into nodules. A nodule is
kept when at least ``min_readers`` readers marked it; its label is the median of their malignancy
ratings (1-5): ``<= benign_max`` (2) Benign, ``>= malignant_min`` (4) Malignant, in between
(3, "indeterminate") excluded. Its mask is the ``clevel`` (50%) consensus of the readers' masks in
their common bounding box (as ``pylidc.utils.consensus``); the image is the axial slice where that
consensus has its largest area, cropped to ``crop`` x ``crop`` px around the mask's centroid
(padded with air), shown in a lung window (level -600 HU, width 1500 HU). group = patient id.

The pure functions (:func:`nodule_label`, :func:`consensus_mask`, :func:`nodule_sample`) take
duck-typed annotations (``malignancy``, ``bbox_matrix()``, ``boolean_mask(bbox=...)``) and volumes,
so they are tested without pylidc or DICOM.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.converters.common import save_mask, summary
from bench.data.manifest import write_manifest

LUNG_WINDOW = (-600.0, 1500.0)  # level, width in HU


def _import_pylidc():
    try:
        import pylidc  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            "the lidc_idri converter needs pylidc, an optional extra: pip install -e .[lidc]"
        ) from exc
    return pylidc


def pylidc_config_path() -> Path:
    return Path.home() / ("pylidc.conf" if os.name == "nt" else ".pylidcrc")


def check_pylidc_config(raw: Path) -> None:
    """pylidc finds the DICOM through its own config file; say exactly what to write if it is missing."""
    cfg = pylidc_config_path()
    if not cfg.is_file():
        raise RuntimeError(
            f"pylidc reads the DICOM location from {cfg}, which does not exist; create it with:\n"
            f"[dicom]\npath = {Path(raw).resolve()}\nwarn = True"
        )


def nodule_label(ratings, *, benign_max: float = 2.0, malignant_min: float = 4.0) -> str | None:
    """"Benign" / "Malignant" from the readers' malignancy ratings (median), None if indeterminate."""
    r = [float(x) for x in ratings if x is not None]
    if not r:
        return None
    med = float(np.median(r))
    if med <= benign_max:
        return "Benign"
    if med >= malignant_min:
        return "Malignant"
    return None


def consensus_mask(anns, clevel: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Consensus of annotations at level ``clevel``: (bool volume, bbox (3, 2) inclusive [min, max]).

    A voxel is in when at least ``clevel`` of the masks include it (pylidc's ``consensus``).
    """
    bmats = np.array([np.asarray(a.bbox_matrix()) for a in anns])
    lo, hi = bmats[:, :, 0].min(axis=0), bmats[:, :, 1].max(axis=0)
    cbbox = np.stack([lo, hi], axis=1)
    masks = [np.asarray(a.boolean_mask(bbox=cbbox), bool) for a in anns]
    return np.mean(masks, axis=0) >= clevel, cbbox


def window(hu: np.ndarray, level: float = LUNG_WINDOW[0], width: float = LUNG_WINDOW[1]) -> np.ndarray:
    """HU -> uint8 with the given window."""
    x = (hu.astype(np.float32) - (level - width / 2)) / width
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def crop_around(img: np.ndarray, mask: np.ndarray, size: int, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """``size`` x ``size`` crops of a slice and its mask centred on the mask's centroid (padded with ``fill``)."""
    ys, xs = np.nonzero(mask)
    cy, cx = int(round(ys.mean())), int(round(xs.mean()))
    h = size // 2
    pad = size
    im = np.pad(img, pad, constant_values=fill)
    m = np.pad(mask, pad, constant_values=False)
    y0, x0 = cy - h + pad, cx - h + pad
    return im[y0:y0 + size, x0:x0 + size], m[y0:y0 + size, x0:x0 + size]


def nodule_sample(volume: np.ndarray, anns, *, clevel: float = 0.5, crop: int = 128):
    """(uint8 image (crop, crop), bool mask) of one nodule: central consensus slice, lung window."""
    cmask, cbbox = consensus_mask(anns, clevel)
    if not cmask.any():
        return None
    area = cmask.sum(axis=(0, 1))
    z = int(np.argmax(area))
    k = int(cbbox[2, 0]) + z
    full = np.zeros(volume.shape[:2], bool)
    (i0, i1), (j0, j1) = cbbox[0], cbbox[1]
    full[i0:i1 + 1, j0:j1 + 1] = cmask[:, :, z]
    img, m = crop_around(volume[:, :, k], full, crop, fill=-1000.0)
    return window(img), m


def lidc_idri(raw: Path, out_dir: Path, masks_out: Path, card, *, masks: Path | None = None, link: str = "copy",
              clevel: float = 0.5, min_readers: int = 3, benign_max: float = 2.0, malignant_min: float = 4.0,
              crop: int = 128, scans=None, **_: object) -> dict:
    """Convert every scan pylidc knows (or the given ``scans``, duck-typed pylidc ``Scan`` objects)."""
    if scans is None:
        pl = _import_pylidc()
        check_pylidc_config(raw)
        scans = pl.query(pl.Scan).all()
    notes: Counter = Counter()
    rows = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for scan in scans:
        pid = str(scan.patient_id)
        volume = None
        for n, anns in enumerate(scan.cluster_annotations()):
            if len(anns) < min_readers:
                notes[f"nodules marked by fewer than {min_readers} readers (excluded)"] += 1
                continue
            label = nodule_label([a.malignancy for a in anns], benign_max=benign_max, malignant_min=malignant_min)
            if label is None:
                notes["nodules with an indeterminate median malignancy (excluded)"] += 1
                continue
            if volume is None:
                volume = scan.to_volume(verbose=False) if _takes_verbose(scan) else scan.to_volume()
            sample = nodule_sample(volume, anns, clevel=clevel, crop=crop)
            if sample is None:
                notes["nodules with an empty consensus (excluded)"] += 1
                continue
            img, m = sample
            sid = f"{pid}_n{n:02d}"
            Image.fromarray(img).save(out_dir / f"{sid}.png")
            save_mask(m, masks_out / f"{sid}.png")
            rows.append({"image": f"{sid}.png", "label": label, "mask": f"{sid}.png", "group": pid,
                         "split": "", "mask_source": "reference"})
    write_manifest(out_dir / "manifest.csv", rows)
    return summary(rows, card.classes, notes)


def _takes_verbose(scan) -> bool:
    import inspect

    try:
        return "verbose" in inspect.signature(scan.to_volume).parameters
    except (TypeError, ValueError):
        return False


__all__ = ["lidc_idri", "nodule_label", "consensus_mask", "nodule_sample", "window", "crop_around"]
