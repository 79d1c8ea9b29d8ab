"""Where prepared datasets, reference masks and dataset cards live.

Data root ``R``: the ``root`` argument, else the environment variable ``BENCH_DATA_ROOT``, else
``<repo>/datasets``. Masks root ``M``: ``BENCH_MASK_ROOT``, else ``<R>/../reference_masks``.
A prepared dataset ``key`` is the folder ``R/<key>/`` (``manifest.csv`` + images); its reference
masks are under ``M/<key>/``. Cards (``<key>.toml``) are read from ``R`` first, then from the
repository's ``datasets/`` folder, so a user with their own data root can keep their cards there.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CARDS_DIR = REPO_ROOT / "datasets"  # the seven seed cards ship here
MANIFEST = "manifest.csv"
INFO = "prepared.json"  # written by ``prepare``: what made this folder, with which options


def data_root(root: str | os.PathLike = "") -> Path:
    """The data root ``R`` (see the module docstring)."""
    if str(root):
        return Path(root).expanduser()
    env = os.environ.get("BENCH_DATA_ROOT", "")
    return Path(env).expanduser() if env else REPO_ROOT / "datasets"


def masks_root(root: str | os.PathLike = "") -> Path:
    """The masks root ``M``: ``BENCH_MASK_ROOT``, else ``<R>/../reference_masks``."""
    env = os.environ.get("BENCH_MASK_ROOT", "")
    if env:
        return Path(env).expanduser()
    return data_root(root).parent / "reference_masks"


def dataset_dir(key: str, root: str | os.PathLike = "") -> Path:
    """``R/<key>``: the prepared folder (manifest.csv + images) of dataset ``key``."""
    return data_root(root) / key


def masks_dir(key: str, root: str | os.PathLike = "") -> Path:
    """``M/<key>``: the reference masks of dataset ``key`` (``mask`` column paths are relative to it)."""
    return masks_root(root) / key


def card_dirs(root: str | os.PathLike = "") -> list[Path]:
    """Folders searched for ``<key>.toml`` cards, first match wins: ``R``, then ``<repo>/datasets``."""
    dirs = [data_root(root), CARDS_DIR]
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out
