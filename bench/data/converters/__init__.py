"""Converters from public raw layouts to the on-disk format (``bench prepare KEY --raw DIR``).

A converter is ``fn(raw, out_dir, masks_out, card, *, masks=None, link="copy", **options) -> dict``:
it writes the images and ``manifest.csv`` under ``out_dir`` and the binary masks under ``masks_out``
and returns a summary (``counts`` per class, ``notes``: what was dropped or derived, and how many).
The card's ``[convert]`` section names the converter and its ``class_map`` / ``options``.

Your own converter: :func:`register_converter` (also ``bench.data.register_converter``), or from another
distribution an entry point in the group ``bench.converters`` (:mod:`bench.registry`).
"""

from __future__ import annotations

from collections.abc import Callable

from bench.data.converters.cells import cells
from bench.data.converters.ham10000 import ham10000
from bench.data.converters.image_folder import image_folder
from bench.data.converters.lidc_idri import lidc_idri
from bench.registry import Registry

CONVERTERS: Registry = Registry("converter", plugins=True)


def register_converter(name: str, fn: Callable | None = None, *, masks: str = "", description: str = "",
                       version: str = "0") -> Callable:
    """Register a converter ``fn(raw, out_dir, masks_out, card, *, masks=None, link="copy", **options) -> dict``
    (see the module docstring): ``register_converter(name, fn)``, or as a decorator. A card uses it with
    ``[convert] converter = "<name>"``; ``bench prepare KEY --raw DIR`` runs it.

    Args:
        masks: one line on where its masks come from (``bench list``).
        description: one line on the layout it reads.
        version: bump it when its code changes (recorded with the converter's name; ``bench prepare --force``
            re-converts).

    Raises:
        ValueError: the name is already registered. TypeError: ``fn`` is not callable.
    """

    def _add(f: Callable) -> Callable:
        if not callable(f):
            raise TypeError(f"converter {name!r}: expected a function fn(raw, out_dir, masks_out, card, *, masks, "
                            f"link, **options), got {type(f).__name__}")
        CONVERTERS.register(name, f, masks=str(masks), description=str(description), version=str(version))
        return f

    return _add if fn is None else _add(fn)

CONVERTERS.register("image_folder", image_folder, masks="optional parallel mask folder (--masks)")
CONVERTERS.register("ham10000", ham10000, masks="Tschandl segmentations (under RAW or --masks)")
CONVERTERS.register("cells", cells, masks="derived: the central cell (Otsu on stain)")
CONVERTERS.register("lidc_idri", lidc_idri, masks="50% consensus of the readers' contours (pylidc)")

__all__ = ["CONVERTERS", "register_converter"]
