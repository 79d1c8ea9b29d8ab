"""HAM10000: ``HAM10000_metadata.csv`` + images + Tschandl's lesion segmentations.

Rows whose ``dx`` is not in the card's ``class_map`` (df, vasc) are dropped and counted. The
group is ``lesion_id`` (repeat photos of one lesion must stay in one split). Images are found
anywhere under RAW by ``<image_id>.<ext>``; masks by ``<image_id>_segmentation.png`` under RAW or
``--masks DIR``. An image without a segmentation gets an empty mask column (counted).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from bench.data.converters.common import MaskIndex, binarise_mask, image_size, is_image, match_size, place, save_mask, summary
from bench.data.manifest import write_manifest

METADATA = "HAM10000_metadata.csv"


def ham10000(raw: Path, out_dir: Path, masks_out: Path, card, *, masks: Path | None = None,
             link: str = "copy", **_: object) -> dict:
    raw = Path(raw)
    meta = raw / METADATA
    if not meta.is_file():
        found = sorted(raw.rglob(METADATA))
        if not found:
            raise FileNotFoundError(f"{raw}: no {METADATA} (expected the Dataverse layout, see the ham10000 card)")
        meta = found[0]
    with meta.open(newline="", encoding="utf-8-sig") as fh:
        records = list(csv.DictReader(fh))
    need = {"lesion_id", "image_id", "dx"}
    if not records or not need <= set(records[0]):
        raise ValueError(f"{meta}: expected columns {', '.join(sorted(need))}")
    images: dict[str, Path] = {}
    seg_files: list[Path] = []
    for p in sorted(raw.rglob("*")):
        if not is_image(p):
            continue
        if p.stem.endswith("_segmentation"):
            seg_files.append(p)
        else:
            images.setdefault(p.stem, p)
    seg = MaskIndex(Path(masks)) if masks else None
    seg_by_id = {p.stem[: -len("_segmentation")]: p for p in seg_files}
    notes: Counter = Counter()
    rows = []
    cmap = card.convert.class_map
    for rec in records:
        dx, iid, lid = rec["dx"].strip(), rec["image_id"].strip(), rec["lesion_id"].strip()
        cls = cmap.get(dx)
        if cls is None:
            notes[f"images with dx={dx!r}, not a class of the seed (dropped)"] += 1
            continue
        src = images.get(iid)
        if src is None:
            notes["images listed in the metadata but not found under RAW (skipped)"] += 1
            continue
        rel = f"{iid}{src.suffix.lower()}"
        place(src, out_dir / rel, link)
        row = {"image": rel, "label": cls, "mask": "", "group": lid, "split": "", "mask_source": ""}
        mp = seg.find("", iid) if seg is not None else seg_by_id.get(iid)
        if mp is None:
            notes["images without a segmentation (mask left empty)"] += 1
        else:
            m = binarise_mask(mp, notes)
            if m is not None:
                save_mask(match_size(m, image_size(src), notes), masks_out / f"{iid}.png")
                row["mask"] = f"{iid}.png"
                row["mask_source"] = "reference"
        rows.append(row)
    write_manifest(out_dir / "manifest.csv", rows)
    return summary(rows, card.classes, notes)
