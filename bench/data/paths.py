"""Where prepared datasets, reference masks and dataset cards live.

Data root ``R``: the ``root`` argument, else the environment variable ``BENCH_DATA_ROOT``, else the
default: ``<repo>/datasets`` when ``bench`` is imported from a source checkout (an editable install of
the repository: ``make bench`` writes there), else ``./datasets`` of the current directory (an installed
package must never write into ``site-packages``). Masks root ``M``: ``BENCH_MASK_ROOT``, else
``<R>/../reference_masks``. A prepared dataset ``key`` is the folder ``R/<key>/`` (``manifest.csv`` +
images); its reference masks are under ``M/<key>/``.

Decoded caches (:mod:`bench.data.cache`): ``R/<key>/.cache/``, or ``$BENCH_CACHE_ROOT/<key>-<hash of R/<key>>/``
when that variable is set (a read-only data root, or a faster disk for the caches).

Cards (``<key>.toml``) are read from ``R`` first, then from the seven seed cards shipped inside the
package (``bench/cards/``), so a user keeps their own cards beside their data and a card in ``R``
shadows a packaged card of the same key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the ``bench`` package
CARDS_DIR = PACKAGE_DIR / "cards"  # the seven seed cards ship here (package data)
MANIFEST = "manifest.csv"
INFO = "prepared.json"  # written by ``prepare``: what made this folder, with which options


def source_checkout() -> Path | None:
    """The repository folder when ``bench`` is imported from a source checkout, else ``None``.

    A checkout is recognised by ``pyproject.toml`` beside the package folder; an installed package
    (``site-packages/bench``) has none there.
    """
    repo = PACKAGE_DIR.parent
    return repo if (repo / "pyproject.toml").is_file() else None


def default_data_root() -> Path:
    """``R`` when neither ``root`` nor ``BENCH_DATA_ROOT`` is given (see the module docstring)."""
    repo = source_checkout()
    return repo / "datasets" if repo is not None else Path.cwd() / "datasets"


def data_root(root: str | os.PathLike = "") -> Path:
    """The data root ``R`` (see the module docstring)."""
    if str(root):
        return Path(root).expanduser()
    env = os.environ.get("BENCH_DATA_ROOT", "")
    return Path(env).expanduser() if env else default_data_root()


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


def cache_dir(key: str, root: str | os.PathLike = "") -> Path:
    """Where the decoded caches of dataset ``key`` live: ``R/<key>/.cache``, else (``BENCH_CACHE_ROOT`` set)
    ``$BENCH_CACHE_ROOT/<key>-<first 12 hex digits of the sha1 of the resolved R/<key>>`` (two data roots with
    the same key never share one)."""
    ddir = dataset_dir(key, root)
    env = os.environ.get("BENCH_CACHE_ROOT", "")
    if not env:
        return ddir / ".cache"
    tag = hashlib.sha1(str(ddir.resolve()).encode()).hexdigest()[:12]
    return Path(env).expanduser() / f"{key}-{tag}"


def card_dirs(root: str | os.PathLike = "") -> list[Path]:
    """Folders searched for ``<key>.toml`` cards, first match wins: ``R``, then the packaged ``bench/cards``."""
    dirs = [data_root(root), CARDS_DIR]
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out
