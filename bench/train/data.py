"""The data a training run uses: the dataset ``cfg.data`` names (phantoms generated on demand) and its split."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from bench.config import RunConfig
from bench.data import is_prepared, load_dataset, prepare
from bench.data.splits import DECORRELATED, Split, make_splits, splits_from_column


def load_training_data(cfg: RunConfig):
    """The :class:`bench.data.ImageSet` named by ``cfg.data``; phantoms are generated if missing."""
    ensure_prepared(cfg)
    return load_dataset(cfg.data.dataset, root=cfg.data.root, image_size=cfg.data.image_size)


def phantom_options(cfg: RunConfig) -> dict[str, Any]:
    """The options a phantom named by ``cfg.data`` is generated with ({} for a real dataset)."""
    d = cfg.data
    if not d.dataset.startswith("synthetic-"):
        return {}
    return {"seed": d.phantom_seed, "scale": d.phantom_scale, "min_per_class": d.phantom_min_per_class,
            "max_per_class": d.phantom_max_per_class, "min_images": d.phantom_min_images,
            "confounder": d.confounder, "confounder_p": d.confounder_p}


def ensure_prepared(cfg: RunConfig) -> None:
    """Generate the phantom ``cfg.data`` names unless it is on disk with the same options.

    Real datasets are prepared by the user (``bench prepare KEY --raw DIR``); loading one that is
    not says so.
    """
    opts = phantom_options(cfg)
    if opts and not is_prepared(cfg.data.dataset, root=cfg.data.root, **opts):
        prepare(cfg.data.dataset, root=cfg.data.root, **opts,
                progress=lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))


def resolve_split(data, cfg: RunConfig, fold: int = 0) -> Split:
    """The manifest's own split when it has one (and ``folds == 1``), else a computed one.

    Rows of the ``decorrelated`` split (the shortcut suite's second test split) are in no part of it.
    """
    d = cfg.data
    if d.folds == 1:
        given = splits_from_column(data.splits)
        if given is not None:
            return given
    if not 0 <= fold < d.folds:
        raise ValueError(f"fold {fold} out of range for folds={d.folds}")
    labels = data.labels.numpy() if torch.is_tensor(data.labels) else np.asarray(data.labels)
    pool = np.flatnonzero(np.asarray(data.splits, dtype=object) != DECORRELATED)
    s = make_splits(
        labels[pool], [data.groups[i] for i in pool], test_fraction=d.test_fraction, val_fraction=d.val_fraction,
        folds=d.folds, seed=d.split_seed,
    )[fold]
    return Split(train=pool[s.train], val=pool[s.val], test=pool[s.test], fold=s.fold)


__all__ = ["ensure_prepared", "load_training_data", "phantom_options", "resolve_split"]
