"""Datasets: cards, the on-disk format, one loader, converters from public layouts, phantoms.

Public API (see docs/CONTRACTS.md and docs/datasets.md):

- ``load_card(key)`` -> :class:`DatasetCard`; ``list_cards()``; ``canonical_key(key)``
- ``load_dataset(key, *, root="", image_size=64, split=None)`` -> :class:`ImageSet`
- ``validate_dataset(key, *, root="")`` -> list of :class:`Problem` (all of them)
- ``prepare(key, *, raw=None, root="", seed=0, scale=0.2, min_per_class=60, max_per_class=200, min_images=0,
  confounder="", confounder_p=0.0)`` -> Path; ``is_prepared(key, root="")``
- ``data_root``, ``dataset_dir``, ``masks_dir``, ``masks_root``
- reading: :mod:`bench.data.cache` (the decoded cache: uint8 on disk, one per manifest and size),
  :mod:`bench.data.arrays` (``ImageSet.images`` / ``masks``, read on demand), :mod:`bench.data.batches`
  (a torch ``Dataset`` and ``DataLoader`` of an image set's rows, with workers)
- ``register_converter(name, fn, *, masks="", description="", version="0")`` (:mod:`bench.data.converters`)
"""

from bench.data.cards import CardError, DatasetCard, canonical_key, list_cards, load_card
from bench.data.loader import ImageSet, load_dataset, validate_dataset
from bench.data.manifest import ManifestError, Problem
from bench.data.paths import data_root, dataset_dir, masks_dir, masks_root
from bench.data.prepare import is_prepared, prepare

__all__ = [
    "CardError",
    "DatasetCard",
    "ImageSet",
    "ManifestError",
    "Problem",
    "canonical_key",
    "data_root",
    "dataset_dir",
    "is_prepared",
    "list_cards",
    "load_card",
    "load_dataset",
    "masks_dir",
    "masks_root",
    "prepare",
    "register_converter",
    "validate_dataset",
]


def __getattr__(name: str):  # lazy: the converters import scikit-image; `import bench.data` need not
    if name in ("register_converter", "CONVERTERS"):
        from bench.data import converters

        return getattr(converters, name)
    raise AttributeError(f"module 'bench.data' has no attribute {name!r}")
