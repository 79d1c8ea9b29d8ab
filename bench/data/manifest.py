"""The on-disk format of a prepared dataset, and its validation.

``R/<key>/manifest.csv`` has the columns ``image, label, mask, group, split`` and optionally
``mask_source`` (reference | derived), ``confounder`` (0 | 1) and ``confounder_mask``; other columns
are ignored. ``image`` is relative to ``R/<key>/``; ``mask`` and ``confounder_mask`` are relative to
``M/<key>/`` and empty where there is none (e.g. normal cases); ``label`` is a class name of the
card; ``group`` is the patient or lesion id (empty = the image's own id); ``split`` is empty or one
of train / val / test, or ``decorrelated`` (a second test split, never trained on: the shortcut
suite's, where a confounder is independent of the class). An image's id is its ``image`` path
without the extension.

Mask rule: a mask is a single-channel image (PNG recommended; an RGB mask is accepted when its three
channels are equal) of the same size as its image whose values are all in {0, 1} or all in
{0, 255}; 0 is background. Anything else (grey levels, 0/65535, an all-zero mask) is a problem.
A size mismatch is a problem unless ``resize_masks=True`` (then the mask is resized with nearest).

Problems are collected, never raised one at a time: :func:`validate` returns them all and the loader
raises one :class:`ManifestError` listing them all, each with its file and line.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.paths import MANIFEST

COLUMNS = ("image", "label", "mask", "group", "split")
OPTIONAL_COLUMNS = ("mask_source", "confounder", "confounder_mask")
SPLITS = ("", "train", "val", "test", "decorrelated")  # decorrelated: the shortcut suite's second test split
MASK_SOURCES = ("", "reference", "derived")
MASK_RULE = (
    "a mask must be single-channel (RGB only with equal channels), the size of its image, with values "
    "all in {0, 1} or all in {0, 255} (0 = background), and not all 0 (leave the mask column empty "
    "for an image without a lesion)"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a prepared dataset: the file, the manifest line (1 = header) and what."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class ManifestError(ValueError):
    """A prepared dataset has problems; ``problems`` lists every one of them."""

    def __init__(self, key: str, problems: list[Problem], *, shown: int = 20) -> None:
        self.key = key
        self.problems = list(problems)
        lines = [str(p) for p in self.problems[:shown]]
        more = len(self.problems) - shown
        if more > 0:
            lines.append(f"... and {more} more (run `bench validate {key}` to list them all)")
        super().__init__(f"dataset {key!r} has {len(self.problems)} problem(s):\n  " + "\n  ".join(lines))


@dataclass
class Row:
    """One manifest row; ``line`` is its line number in the file (the header is line 1)."""

    line: int
    image: str
    label: str
    mask: str = ""
    group: str = ""
    split: str = ""
    mask_source: str = ""
    confounder: str = ""
    confounder_mask: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The image's id: its path relative to the dataset folder, without the extension."""
        p = Path(self.image)
        return str(p.with_suffix("")).replace(os.sep, "/")


def read_manifest(path: str | os.PathLike) -> tuple[list[Row], list[Problem]]:
    """Parse ``manifest.csv``; returns its rows and the problems of form (missing file or columns)."""
    path = Path(path)
    if not path.is_file():
        return [], [Problem(str(path), None, "no manifest.csv (is the dataset prepared? see `bench prepare`)")]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        return [], [Problem(str(path), line, f"the manifest is not UTF-8 text ({exc.reason} at byte {exc.start}: "
                                             f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8")]
    except OSError as exc:
        return [], [Problem(str(path), None, f"cannot read the manifest: {exc}")]
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        return [], [Problem(str(path), 1, f"missing column(s) {', '.join(missing)}; "
                                          f"expected {', '.join(COLUMNS)} (+ optional {', '.join(OPTIONAL_COLUMNS)})")]
    reader.fieldnames = header
    rows = []
    known = set(COLUMNS) | set(OPTIONAL_COLUMNS)
    for i, rec in enumerate(reader, start=2):
        rec = {k: (v or "").strip() for k, v in rec.items() if k is not None}
        rows.append(Row(line=i, **{k: rec.get(k, "") for k in (*COLUMNS, *OPTIONAL_COLUMNS)},
                        extra={k: v for k, v in rec.items() if k not in known}))
    return rows, []


def write_manifest(path: str | os.PathLike, rows: Iterable[dict], *, columns: Iterable[str] | None = None) -> Path:
    """Write a manifest from dicts (missing optional columns are left out unless named in ``columns``)."""
    rows = list(rows)
    cols = list(columns) if columns is not None else list(COLUMNS) + [
        c for c in OPTIONAL_COLUMNS if any(c in r for r in rows)
    ]
    path = Path(path)
    bad = [v for r in rows for v in (str(r.get(c, "")) for c in cols) if not _is_utf8(v)]
    if bad:  # file names the OS gave us as bytes that are not UTF-8 (surrogate-escaped)
        shown = ", ".join(repr(os.fsencode(v)) for v in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise ValueError(f"{len(bad)} file name(s) are not valid UTF-8 and cannot be listed in {path.name}: {shown}; "
                         "rename them to UTF-8 (e.g. `convmv -f latin1 -t utf8 -r --notest RAW_DIR`) and prepare again")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    return path


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def check_rows(rows: list[Row], classes: Iterable[str], manifest: str) -> list[Problem]:
    """Checks that need no file access: label, split, mask_source, confounder, duplicate ids."""
    classes = tuple(classes)
    problems = []
    first_line: dict[str, int] = {}
    for r in rows:
        def bad(msg: str, r=r) -> None:
            problems.append(Problem(manifest, r.line, msg))

        if not r.image:
            bad("empty image path")
            continue
        if r.id in first_line:
            bad(f"duplicate id {r.id!r} (first on line {first_line[r.id]})")
        else:
            first_line[r.id] = r.line
        if r.label not in classes:
            bad(f"label {r.label!r} is not a class of the card; classes: {', '.join(classes)}")
        if r.split not in SPLITS:
            bad(f"split {r.split!r} must be empty or one of train, val, test, decorrelated")
        if r.mask_source not in MASK_SOURCES:
            bad(f"mask_source {r.mask_source!r} must be empty, 'reference' or 'derived'")
        if r.confounder not in ("", "0", "1"):
            bad(f"confounder {r.confounder!r} must be empty, 0 or 1")
    return problems


def _mask_values_ok(arr: np.ndarray) -> bool:
    vals = np.unique(arr)
    return set(vals.tolist()) <= {0, 1} or set(vals.tolist()) <= {0, 255}


def read_image(path: Path) -> Image.Image:
    """Open and decode an image as RGB (grey replicated; 16-bit scaled by 1/257; float min-max)."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            arr = np.asarray(im, dtype=np.float32) / 257.0
            return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
        if im.mode in ("I", "F"):
            arr = np.asarray(im, dtype=np.float32)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) * 255 if hi > lo else arr * 0
            return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
        return im.convert("RGB")


def read_mask(path: Path) -> tuple[np.ndarray | None, str]:
    """Decode a mask; returns (bool array (H, W), "") or (None, what is wrong) under :data:`MASK_RULE`."""
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - any decoder error means "unreadable"
        return None, f"unreadable mask {path}: {exc}"
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[..., :3]
        if not (arr == arr[..., :1]).all():
            return None, f"mask {path} is a colour image with different channels ({MASK_RULE})"
        arr = arr[..., 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not _mask_values_ok(arr):
        vals = np.unique(arr)
        shown = ", ".join(str(v) for v in vals[:6]) + (", ..." if len(vals) > 6 else "")
        return None, f"mask {path} is not binary: values {{{shown}}} ({MASK_RULE})"
    m = arr > 0
    if not m.any():
        return None, f"mask {path} is all 0 ({MASK_RULE})"
    return m, ""
