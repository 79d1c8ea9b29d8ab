"""What the jobs of a sweep load: the dataset, a train job's checkpoint and evaluation, the explained images.

Datasets and checkpoints are cached per process: a sweep reads one dataset and one checkpoint many times.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from bench.config import RunConfig, from_dict
from bench.data.selection import pick_per_class
from bench.device import set_threads
from bench.sweep.cache import stable_json


@functools.lru_cache(maxsize=4)
def _dataset(dataset: str, root: str, image_size: int, phantom: str):  # phantom: its options, for the cache key
    from bench.data import load_dataset

    data = load_dataset(dataset, root=root, image_size=image_size)
    return data, {i: n for n, i in enumerate(data.ids)}


def dataset_for(cfg: RunConfig):
    """``(ImageSet, id -> index)`` for a training configuration (phantoms generated on demand)."""
    from bench.train import ensure_prepared, phantom_options

    ensure_prepared(cfg)
    return _dataset(cfg.data.dataset, cfg.data.root, cfg.data.image_size, stable_json(phantom_options(cfg)))


@functools.lru_cache(maxsize=2)
def checkpoint(path: str, device: str):
    """``(model, info)`` of the checkpoint at ``path`` on ``device`` (cached: do not modify the model)."""
    from bench.train import load_checkpoint

    return load_checkpoint(path, device=device)


def train_outputs(train_dir: Path, *, device: str | None = None):
    """``(RunConfig, model, info, eval.npz)`` of the done train job in ``train_dir``; torch's threads set as in
    training (a resumed run must compute as an uninterrupted one), and on CUDA its deterministic mode.

    ``device``: where to load the model (default: the training device, ``train.device``); a job that only
    reads the model's configuration (a localisation score job) passes ``"cpu"``, so it runs on a CPU-only
    worker too."""
    from bench.device import resolve_device, set_deterministic

    spec = json.loads((train_dir / "done.json").read_text())["spec"]
    cfg = from_dict(RunConfig, spec["config"], source=str(train_dir))
    set_threads(cfg.train.threads)
    dev = resolve_device(device or cfg.train.device)
    if dev.type == "cuda":
        set_deterministic(cfg.train.deterministic)
    model, info = checkpoint(str(train_dir / "checkpoint.pt"), str(dev))
    ev = np.load(train_dir / "eval.npz")
    return cfg, model, info, ev


def select_images(data, index: dict[str, int], test_ids, max_images: int) -> list[int]:
    """Test images with a lesion mask, round-robin over classes in id order, at most ``max_images``
    (indices into ``data``; ``index`` maps an image id to its index)."""
    with_mask = [index[str(t)] for t in sorted(test_ids) if bool(data.has_mask[index[str(t)]])]
    return pick_per_class(data.labels, with_mask, total=max_images)


def chosen_images(cfg: RunConfig, data, index: dict[str, int], train_dir: Path, ev, max_images: int):
    """``(indices of data to explain, image id -> predicted probabilities)``: the first extension's own choice
    (e.g. the shortcut suite's cue-carrying decorrelated images), else :func:`select_images` on the test split.
    The explain jobs explain these images, and the verify job of the same trained model checks them."""
    from bench.sweep.extensions import extensions

    for ext in extensions():
        chosen = ext.select_images(cfg, data, index, train_dir, max_images)
        if chosen is not None:
            return chosen
    picked = select_images(data, index, ev["test_ids"], max_images)
    return picked, {str(t): p for t, p in zip(ev["test_ids"], ev["test_probs"])}


__all__ = ["checkpoint", "chosen_images", "dataset_for", "select_images", "train_outputs"]
