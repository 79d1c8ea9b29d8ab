"""Generic layout: one folder per class (``RAW/<folder>/...``), optional parallel mask folder.

Folders map to classes through the card's ``[convert.class_map]`` (folder -> class name); without a
map, a folder whose name equals a class name (ignoring case) is that class. Folders that map to no
class are dropped and counted. Masks (``--masks DIR``) are looked up by ``<folder>/<stem>`` and then
by stem alone (``<stem>_mask``, ``<stem>_segmentation``... accepted); an image without a mask gets
an empty mask column. ``group_pattern`` (option): a regular expression on the file stem whose first
group (or whole match) is the group (e.g. a patient id); default: each image is its own group.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from bench.data.converters.common import (
    MaskIndex,
    binarise_mask,
    image_size,
    is_image,
    match_size,
    place,
    save_mask,
    summary,
)
from bench.data.manifest import write_manifest


def folder_classes(raw: Path, card) -> dict[str, str]:
    """Subfolder name -> class name for the subfolders of ``raw`` that map to a class."""
    lower = {c.lower(): c for c in card.classes}
    out = {}
    for d in sorted(p for p in raw.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if card.convert.class_map:
            cls = card.convert.class_map.get(d.name)
        else:
            cls = lower.get(d.name.lower())
        if cls is not None:
            out[d.name] = cls
    return out


def image_folder(raw: Path, out_dir: Path, masks_out: Path, card, *, masks: Path | None = None,
                 link: str = "copy", group_pattern: str = "", mask_source: str = "reference", **_: object) -> dict:
    raw = Path(raw)
    notes: Counter = Counter()
    mapping = folder_classes(raw, card)
    for d in sorted(p for p in raw.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.name not in mapping and (masks is None or d.resolve() != Path(masks).resolve()):
            n = sum(1 for p in d.rglob("*") if is_image(p))
            notes[f"images in folder {d.name!r} that maps to no class (dropped)"] += n
    if not mapping:
        expected = list(card.convert.class_map) or list(card.classes)
        raise FileNotFoundError(f"{raw}: no class folders found; expected subfolders named {', '.join(expected)}")
    index = MaskIndex(Path(masks) if masks else None)
    rx = re.compile(group_pattern) if group_pattern else None
    rows = []
    for folder, cls in mapping.items():
        for p in sorted(q for q in (raw / folder).rglob("*") if is_image(q)):
            rel = str(p.relative_to(raw)).replace(os.sep, "/")
            place(p, out_dir / rel, link)
            rid = rel.rsplit(".", 1)[0]
            group = ""
            if rx is not None:
                m = rx.search(p.stem)
                group = (m.group(1) if m and m.groups() else m.group(0)) if m else ""
                if not m:
                    notes["images whose name does not match group_pattern (own group)"] += 1
            row = {"image": rel, "label": cls, "mask": "", "group": group, "split": "", "mask_source": ""}
            if masks is not None:
                sub = str(p.parent.relative_to(raw)).replace(os.sep, "/")
                mp = index.find(sub, p.stem)
                if mp is None:
                    notes["images without a mask in --masks (mask left empty)"] += 1
                else:
                    m = binarise_mask(mp, notes)
                    if m is not None:
                        m = match_size(m, image_size(p), notes)
                        save_mask(m, masks_out / f"{rid}.png")
                        row["mask"] = f"{rid}.png"
                        row["mask_source"] = mask_source
            rows.append(row)
    if masks is None and card.mask_kind != "derived":
        notes["images without a mask (no --masks given: localisation metrics are skipped)"] += len(rows)
    write_manifest(out_dir / "manifest.csv", rows)
    return summary(rows, card.classes, notes)
