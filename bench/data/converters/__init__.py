"""Converters from public raw layouts to the on-disk format (``bench prepare KEY --raw DIR``).

A converter is ``fn(raw, out_dir, masks_out, card, *, masks=None, link="copy", **options) -> dict``:
it writes the images and ``manifest.csv`` under ``out_dir`` and the binary masks under ``masks_out``
and returns a summary (``counts`` per class, ``notes``: what was dropped or derived, and how many).
The card's ``[convert]`` section names the converter and its ``class_map`` / ``options``.
"""

from __future__ import annotations

from bench.data.converters.cells import cells
from bench.data.converters.ham10000 import ham10000
from bench.data.converters.image_folder import image_folder
from bench.data.converters.lidc_idri import lidc_idri
from bench.registry import Registry

CONVERTERS: Registry = Registry("converter")
CONVERTERS.register("image_folder", image_folder, masks="optional parallel mask folder (--masks)")
CONVERTERS.register("ham10000", ham10000, masks="Tschandl segmentations (under RAW or --masks)")
CONVERTERS.register("cells", cells, masks="derived: the central cell (Otsu on stain)")
CONVERTERS.register("lidc_idri", lidc_idri, masks="50% consensus of the readers' contours (pylidc)")

__all__ = ["CONVERTERS"]
