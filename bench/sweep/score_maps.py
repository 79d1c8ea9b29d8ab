"""Score explanation maps made anywhere, as a sweep scores its own: ``bench score`` and :func:`score_maps`.

Maps come in any of these forms (mixed freely, one method each unless said otherwise):

- what ``bench explain`` writes: a folder with ``explain.json`` and one ``<method>.npy`` (N, H, W) per method,
  rows in the order of the json's ``ids``. Its dataset, split, fold, image size, targets, predictions, layer
  and method options come along;
- a folder of per-image files ``<image_id>.npy`` or ``<image_id>.npz`` (one 2-D array each): one method, named
  after the folder (or ``method=`` / ``--method``);
- one ``.npz`` per method, ``{image_id: map}``, named after the file (or ``method=`` / ``--method``);
- in Python, ``{method: (N, H, W) array}`` with ``ids=`` naming the rows, or ``{method: {image_id: (h, w) array}}``
  (numpy arrays or torch tensors).

Resolution: every map is resized to the masks' H x W with :func:`bench.attribution.postprocess.upsample`, the
resize every bench method's map goes through (bilinear interpolation, ``align_corners=False``, no
anti-aliasing, in float32; a map already at H x W is left as it is). The masks are the dataset's, loaded at
``image_size`` x ``image_size`` (nearest; ``bench.data.load_dataset``): with a checkpoint, the size it was
trained at; else the size in ``explain.json``; else the maps' own size when they all share one square size;
else ``image_size`` must be given. Maps are never normalised (the metrics are scale-free or say otherwise).

Scoring is the sweep's: each metric computation goes through the score stage
(:func:`bench.sweep.stages.score.score_images`), with the options of a suite's ``[score]`` table, so the rows
are those a sweep writes for the same maps (``bench.results.RESULT_COLUMNS``). The localisation metrics need
the masks only. Deletion / insertion and the sanity check (cascading randomisation, only for maps of a
registered bench method: it re-explains randomised copies of the model) need the model: they run when a bench
checkpoint is given and are skipped with a note otherwise.

Checks, all before any scoring (one ``ValueError`` lists every problem, naming the method, where its maps came
from, the first few image ids and the count):

- a map that is not a real 2-D array (a 3-D map with channels must be reduced to one channel first);
- maps of images that are not in the dataset, or not in the split (``split="all"`` allows every image);
- images of the split that have a lesion mask but no map (``missing="skip"`` / ``--allow-missing`` scores
  only the images that have maps). The split is the checkpoint's training split when the checkpoint was
  trained on this dataset (as ``bench explain``), else the manifest's ``split`` column; a dataset without one
  (the phantoms) and no checkpoint: the maps' images are scored unchecked, with a note;
- maps with NaN or infinite values (counted per map): an error by default; ``nonfinite="exclude"`` scores
  them as the sweep scores an image whose explanation failed: rows with ``value`` NaN and ``excluded`` =
  "map has K non-finite value(s)", counted in the leaderboard's ``n_excluded``.

Columns that the maps cannot tell: ``target`` is the explained class (``explain.json``'s targets, ``targets=``,
else the image's label); ``correct`` (nullable boolean) is NA unless predictions are known (``explain.json``
or the checkpoint's); ``cell_area`` is one cell of the grid the map was computed on: for maps written by
``bench explain`` with the checkpoint given, the explained layer's grid (as the sweep), else 1 / (h w) of the
map as given; ``run``/``model``/``seed``/``fold`` default to ``"score"``, the checkpoint's model name (else
``"unknown"``), its training seed (else 0) and the fold. Give the sweep's values to rank these maps with a
sweep's rows in one table (``pd.concat`` the two results tables, then :func:`bench.report.leaderboard`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.data.arrays import take_rows
from bench.results import IDENT, RESULT_COLUMNS, RESULT_TYPES
from bench.sweep.suite import Suite, load_suite, metric_options, score_jobs

MISSING = ("error", "skip")
NONFINITE = ("error", "exclude")
SPLITS = ("train", "val", "test", "decorrelated", "all")
RESIZE = "bilinear, align_corners=False (bench.attribution.postprocess.upsample)"
SHOWN = 5  # image ids named in a message


@dataclass
class MethodMaps:
    """One method's maps as given: ``maps`` image id -> 2-D array at any size; ``source`` where they came from
    (for messages); ``record`` what ``bench explain`` wrote with them (``targets``, ``predictions``: image id
    -> class; ``layer``, ``options``, ``split``, ``fold``, ``image_size``, ``dataset``, ``checkpoint``), or {}."""

    name: str
    maps: dict[str, np.ndarray]
    source: str
    record: dict = field(default_factory=dict)


@dataclass
class MaskSet:
    """Masks given without a dataset: ``masks`` bool (N, H, W), ``ids`` (N,); labels unknown (-1), no images."""

    masks: Any
    ids: list[str]
    labels: Any
    has_mask: Any
    images: Any = None
    class_names: tuple[str, ...] = ()
    splits: list[str] = field(default_factory=list)
    key: str = "masks"


# ----------------------------------------------------------------------------------------------
# reading maps


def read_maps(paths: str | Path | Sequence[str | Path], *, method: str | None = None) -> list[MethodMaps]:
    """The maps at ``paths`` (one path or several; see the module docstring for the three layouts).

    ``method`` names the maps of a single per-image folder or ``.npz`` (default: the folder's name or the
    file's stem). Raises ``FileNotFoundError`` / ``ValueError`` naming the file and the layout expected.
    """
    items = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not items:
        raise ValueError("no maps given: pass bench explain's folder, a folder of per-image .npy/.npz files, "
                         "or one .npz per method")
    if method is not None and len(items) > 1:
        raise ValueError(f"--method names the maps of one folder or .npz, but {len(items)} were given; "
                         "name each folder or file after its method instead")
    out: list[MethodMaps] = []
    for p in items:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder (expected bench explain's folder, a folder of "
                                    "per-image .npy/.npz files named by image id, or an .npz {image_id: map})")
        if p.is_dir() and (p / "explain.json").is_file():
            if method is not None:
                raise ValueError(f"{p}: bench explain's folder names its own methods; --method is for a folder "
                                 "of per-image files or one .npz")
            out += _read_explain(p)
        elif p.is_dir():
            out.append(MethodMaps(method or p.name, _read_folder(p), str(p)))
        elif p.suffix == ".npz":
            out.append(MethodMaps(method or p.stem, _read_npz(p), str(p)))
        elif p.suffix == ".npy":
            raise ValueError(f"{p}: a lone .npy holds no image ids. Give bench explain's folder (the .npy with its "
                             "explain.json), a folder of per-image files <image_id>.npy, or an .npz "
                             "{image_id: map}")
        else:
            raise ValueError(f"{p}: not a folder or an .npz file")
    _no_duplicate_names(out)
    return out


def _no_duplicate_names(methods: list[MethodMaps]) -> None:
    seen: dict[str, str] = {}
    for m in methods:
        if m.name in seen:
            raise ValueError(f"two sets of maps are named {m.name!r} ({seen[m.name]} and {m.source}); "
                             "rename one (--method, or the folder / file name)")
        seen[m.name] = m.source


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot be read as a numpy array: {exc}") from None


def _read_explain(folder: Path) -> list[MethodMaps]:
    path = folder / "explain.json"
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    record = record if isinstance(record, dict) else {}
    ids, methods = record.get("ids"), record.get("methods")
    if not isinstance(ids, list) or not isinstance(methods, dict):
        raise ValueError(f"{path}: not the explain.json bench explain writes (expected keys 'ids' and 'methods')")
    ids = [str(i) for i in ids]

    def per_image(key: str) -> dict[str, int]:
        values = record.get(key)
        return {i: int(v) for i, v in zip(ids, values)} if isinstance(values, list) and len(values) == len(ids) else {}

    common = {"targets": per_image("targets"), "predictions": per_image("predictions"),
              **{k: record.get(k) for k in ("split", "fold", "image_size", "dataset", "checkpoint")}}
    out = []
    for name, info in methods.items():
        info = info if isinstance(info, dict) else {}
        f = folder / str(info.get("file", f"{name}.npy"))
        if not f.is_file():
            raise FileNotFoundError(f"{f}: listed for method {name!r} in {path} but not there")
        arr = _load_array(f)
        if arr.ndim != 3:
            raise ValueError(f"{f}: shape {arr.shape}; bench explain writes (N, H, W), one row per id of {path}")
        if len(arr) != len(ids):
            raise ValueError(f"{f} has {len(arr)} rows but {path} lists {len(ids)} ids")
        out.append(MethodMaps(str(name), {i: arr[k] for k, i in enumerate(ids)}, str(f),
                              {**common, "layer": info.get("layer"), "options": dict(info.get("options") or {})}))
    if not out:
        raise ValueError(f"{path} lists no methods")
    return out


def _read_folder(folder: Path) -> dict[str, np.ndarray]:
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in (".npy", ".npz"))
    if not files:
        subs = sorted(d.name for d in folder.iterdir() if d.is_dir())
        hint = (f"; it has sub-folders ({', '.join(subs[:SHOWN])}): pass each method's folder" if subs else "")
        raise ValueError(f"{folder}: no .npy or .npz files (expected one map per image, named <image_id>.npy)"
                         + hint)
    maps: dict[str, np.ndarray] = {}
    for f in files:
        if f.stem in maps:
            raise ValueError(f"{folder}: image {f.stem!r} has both a .npy and a .npz file; keep one")
        if f.suffix == ".npy":
            maps[f.stem] = _load_array(f)
            continue
        with _open_npz(f) as z:
            if len(z.files) != 1:
                raise ValueError(
                    f"{f}: holds {len(z.files)} arrays ({', '.join(z.files[:SHOWN])}); a per-image .npz holds one "
                    f"map. If it is one .npz per method ({{image_id: map}}), pass the file itself: bench score {f}")
            maps[f.stem] = z[z.files[0]]
    return maps


def _open_npz(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot be read as an .npz file: {exc}") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with _open_npz(path) as z:
        maps = {k: z[k] for k in z.files}
    if not maps:
        raise ValueError(f"{path}: holds no arrays (expected {{image_id: map}})")
    return maps


def _array(value, where: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not an array: {exc}") from None


def _from_python(maps, ids) -> list[MethodMaps]:
    """``{method: array (N, H, W) or {image_id: map}}`` (+ ``ids`` for arrays) as :class:`MethodMaps`."""
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps must be a non-empty {method: maps} dict (maps: an (N, H, W) array with ids=, or "
                         "{image_id: (H, W) array}), or the path(s) of map files")
    if ids is not None:
        ids = [str(i) for i in ids]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"ids name {len(dup)} image(s) more than once: {_some(dup)}")
    out = []
    for name, value in maps.items():
        where = f"maps[{name!r}]"
        if isinstance(value, Mapping):
            out.append(MethodMaps(str(name), {str(k): _array(v, f"{where}[{k!r}]") for k, v in value.items()}, where))
            continue
        arr = _array(value, where)
        if ids is None:
            raise ValueError(f"{where} is an array of shape {arr.shape}: pass ids= (one image id per row), or give "
                             "{image_id: map}")
        if arr.ndim != 3:
            hint = (" (N, C, H, W)? reduce the channels to one first (bench's gradient methods sum |.| over them)"
                    if arr.ndim == 4 else "")
            raise ValueError(f"{where} has shape {arr.shape}; expected (N, H, W), one map per id{hint}")
        if len(arr) != len(ids):
            raise ValueError(f"{where} has {len(arr)} maps but ids names {len(ids)} images")
        out.append(MethodMaps(str(name), {i: arr[k] for k, i in enumerate(ids)}, where))
    return out


# ----------------------------------------------------------------------------------------------
# checks


def _some(ids: Sequence[str]) -> str:
    ids = list(ids)
    shown = ", ".join(map(str, ids[:SHOWN]))
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > SHOWN else "")


def _check_arrays(m: MethodMaps) -> tuple[list[str], dict[str, int]]:
    """``(problems, {image id: number of non-finite values})``; maps become float32 in place."""
    bad_type, bad_shape, nonfinite = [], [], {}
    for i, a in list(m.maps.items()):
        if a.dtype.kind not in "biuf":
            bad_type.append(f"{i} ({a.dtype})")
            continue
        if a.ndim != 2 or a.size == 0:
            bad_shape.append(f"{i} {tuple(a.shape)}")
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            a = m.maps[i] = np.asarray(a, dtype=np.float32)
        k = int(a.size - np.isfinite(a).sum())
        if k:
            nonfinite[i] = k
    problems = []
    where = f"{m.name} ({m.source})"
    if bad_type:
        problems.append(f"{where}: {len(bad_type)} map(s) are not real numbers: {_some(bad_type)}")
    if bad_shape:
        problems.append(f"{where}: {len(bad_shape)} map(s) are not 2-D (H, W): {_some(bad_shape)}; a map with "
                        "channels must be reduced to one first (bench's gradient methods sum |.| over them)")
    return problems, nonfinite


# ----------------------------------------------------------------------------------------------
# the dataset, the split, the model


def _masks_only(dataset, ids) -> MaskSet:
    import torch

    if isinstance(dataset, Mapping):
        names = [str(k) for k in dataset]
        arrays = [_array(v, f"masks[{k!r}]") for k, v in dataset.items()]
    else:
        arr = _array(dataset, "masks")
        if arr.ndim != 3:
            raise ValueError(f"masks have shape {arr.shape}; expected (N, H, W) with ids=, or {{image_id: mask}}")
        if ids is None or len(ids) != len(arr):
            raise ValueError(f"masks are an array of {len(arr)}: pass ids= with one image id per mask")
        names, arrays = [str(i) for i in ids], list(arr)
    shapes = sorted({tuple(a.shape) for a in arrays})
    if not arrays or len(shapes) != 1 or len(shapes[0]) != 2:
        raise ValueError(f"masks must be 2-D and all of one size, got sizes {shapes[:SHOWN]}")
    masks = np.stack(arrays) > 0
    return MaskSet(masks=torch.from_numpy(masks), ids=names, labels=np.full(len(names), -1, dtype=np.int64),
                   has_mask=masks.reshape(len(names), -1).any(axis=1))


def _image_size(image_size, cfg, methods: list[MethodMaps]) -> int:
    if cfg is not None:
        own = int(cfg.data.image_size)
        if image_size is not None and int(image_size) != own:
            raise ValueError(f"image_size {image_size} differs from the {own} px the checkpoint was trained at; "
                             "the model is scored on images of its own size: leave image_size out")
        return own
    if image_size is not None:
        if int(image_size) < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        return int(image_size)
    for m in methods:
        size = m.record.get("image_size")
        if size:
            return int(size[0] if isinstance(size, (list, tuple)) else size)
    shapes = sorted({tuple(a.shape) for m in methods for a in m.maps.values()})
    if len(shapes) == 1 and shapes[0][0] == shapes[0][1]:
        return int(shapes[0][0])
    raise ValueError(f"the maps are of sizes {', '.join('x'.join(map(str, s)) for s in shapes[:SHOWN])}: pass "
                     "image_size (--image-size N): the masks are loaded at N x N (nearest) and each map resized to "
                     "it (bilinear)")


def _load_data(dataset, *, ids, root: str, image_size, cfg, methods):
    """``(data, {image id: row}, same)``; ``same``: the checkpoint was trained on this dataset."""
    if hasattr(dataset, "masks") and hasattr(dataset, "ids"):  # an ImageSet (or alike): its split is its manifest's
        return dataset, {str(n): i for i, n in enumerate(dataset.ids)}, False
    if isinstance(dataset, (str, os.PathLike)):
        from bench.data import canonical_key, load_dataset

        key = str(dataset)
        if cfg is not None:
            root = root or cfg.data.root
        ckey = canonical_key(key, root)
        if cfg is not None and ckey == cfg.data.dataset and root == cfg.data.root:
            from bench.sweep.loading import dataset_for

            data, index = dataset_for(cfg)  # the sweep's loading: a phantom is generated as in training
            return data, index, True
        data = load_dataset(ckey, root=root, image_size=_image_size(image_size, cfg, methods))
    else:
        data = _masks_only(dataset, ids)
    return data, {str(n): i for i, n in enumerate(data.ids)}, False


def _split_rows(data, split: str, cfg, fold: int, same: bool) -> tuple[set[int] | None, str]:
    """The rows of ``split`` (None: unknown) and a note when unknown."""
    if isinstance(data, MaskSet) or split == "all":
        return set(range(len(data.ids))), ""
    if same and split in ("train", "val", "test"):
        from bench.train import resolve_split

        return {int(i) for i in getattr(resolve_split(data, cfg, fold), split)}, ""
    splits = list(getattr(data, "splits", []) or [])
    if any(splits):
        return {i for i, s in enumerate(splits) if s == split}, ""
    key = getattr(data, "key", "the dataset")
    return None, (f"dataset {key} assigns no splits in its manifest (its {split} split is the one a training run "
                  "computes): the maps' images are scored without a check for missing ones; pass the checkpoint "
                  f"to check against its run's {split} split")


def _check_ids(m: MethodMaps, data, index, rows: set[int] | None, split: str,
               missing: str) -> tuple[list[str], list[str]]:
    """``(problems, ids of the images with a lesion mask that have no map)`` of one method's maps."""
    where = f"{m.name} ({m.source})"
    key = getattr(data, "key", "masks")
    problems = []
    unknown = [i for i in m.maps if i not in index]
    if unknown:
        problems.append(f"{where}: {len(unknown)} map(s) of images that are not in {key}: {_some(unknown)}")
    if rows is None:
        return problems, []
    outside = [i for i in m.maps if i in index and index[i] not in rows]
    if outside:
        problems.append(f"{where}: {len(outside)} map(s) of images outside the {split} split: {_some(outside)}; "
                        "remove them, or pass split='all' (--split all)")
    has_mask = _has_mask(data)
    lacking = [data.ids[r] for r in sorted(rows) if has_mask[r] and str(data.ids[r]) not in m.maps]
    if lacking and missing == "error":
        what = "images with a lesion mask" if isinstance(data, MaskSet) else \
            f"images of the {split} split with a lesion mask"
        problems.append(f"{where}: {len(lacking)} {what} have no map: {_some(lacking)}; give maps for them, or "
                        "pass missing='skip' (--allow-missing) to score only the images that have maps")
    return problems, lacking


def _has_mask(data) -> np.ndarray:
    """bool (N,): which images have a lesion mask (``data.has_mask``, else a non-empty mask)."""
    given = getattr(data, "has_mask", None)
    if given is not None:
        return np.asarray(given, dtype=bool)
    return np.asarray(data.masks).reshape(len(data.ids), -1).any(axis=1)


def _resize(maps: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """``(n, H, W)`` float32: each map resized to ``size`` (bilinear, align_corners=False), grouped by shape."""
    import torch

    from bench.attribution.postprocess import upsample

    out = np.empty((len(maps), *size), dtype=np.float32)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for k, a in enumerate(maps):
        by_shape.setdefault(tuple(a.shape), []).append(k)
    for rows in by_shape.values():
        stacked = torch.from_numpy(np.stack([maps[k] for k in rows]).astype(np.float32, copy=False))
        out[rows] = upsample(stacked, size).numpy()
    return out


# ----------------------------------------------------------------------------------------------
# the Python API


def score_maps(
    maps,
    dataset,
    *,
    ids: Sequence[str] | None = None,
    split: str | None = None,
    root: str = "",
    image_size: int | None = None,
    checkpoint: str | Path | None = None,
    fold: int | None = None,
    targets: Mapping[str, int] | None = None,
    suite: Suite | str | None = None,
    metrics: Sequence[str] | None = None,
    sanity_methods: Sequence[str] | None = None,
    missing: str = "error",
    nonfinite: str = "error",
    run: str = "score",
    model_name: str | None = None,
    seed: int | None = None,
    device: str = "auto",
    out: str | Path | None = None,
    report: bool = True,
) -> pd.DataFrame:
    """Score explanation maps made anywhere against a dataset's lesion masks; the sweep's results rows.

    Args:
        maps: ``{method: maps}`` with maps an ``(N, H, W)`` array (``ids`` names its rows) or ``{image_id:
            (h, w) array}`` (numpy or torch, any size, any real dtype); or the path (or paths) of map files:
            ``bench explain``'s folder, a folder of ``<image_id>.npy``/``.npz`` files, an ``.npz`` per method;
            or what :func:`read_maps` returns.
        dataset: a dataset key (loaded with ``root``), a loaded :class:`bench.data.ImageSet`, or masks alone:
            ``{image_id: (H, W) mask}`` or an ``(N, H, W)`` array with ``ids`` (non-zero = lesion; labels
            unknown: -1; no images, so localisation metrics only). None: ``explain.json``'s dataset.
        ids: the image ids of the rows of array maps (and of array masks).
        split: the images the maps must cover: "test" (default, or ``explain.json``'s split), "train", "val",
            "decorrelated" or "all". See the module docstring for where the split comes from.
        image_size: the masks' side in pixels (default: see the module docstring).
        checkpoint: a bench checkpoint (``bench train`` / a sweep's ``cache/train/<key>/checkpoint.pt``): runs
            deletion / insertion and the sanity check, fills ``correct``; without it they are skipped (a note).
        fold: the checkpoint's cross-validation fold (default: ``explain.json``'s, else 0).
        targets: ``{image_id: class index}`` the maps explain (default: ``explain.json``'s, else the label).
        suite: a :class:`Suite`, a built-in suite name or a TOML path, for its ``metrics``, ``[score]`` options,
            ``explain.layer`` / ``explain.options`` / ``explain.seed`` (the sanity check's), ``score.sanity_methods``
            and ``[report]`` (default: the defaults of :class:`Suite`, every metric).
        metrics: the metrics to compute (default: the suite's, or every registered metric).
        sanity_methods: the methods given the sanity check (needs ``checkpoint``; default: the suite's
            ``score.sanity_methods`` when ``suite`` names a built-in suite or a TOML file, else every set of maps;
            maps not named after a registered bench method are skipped with a note).
        missing: "error" (default) or "skip": split images with a lesion mask but no map.
        nonfinite: "error" (default) or "exclude": maps with NaN / infinite values (see the module docstring).
        run, model_name, seed: the ``run``, ``model`` and ``seed`` columns (defaults in the module docstring).
        device: for the model ("auto", "cpu", "cuda[:i]").
        out: a folder to write ``results.parquet`` (and ``curves.parquet``, ``sanity.parquet``,
            ``gallery/<dataset>.npz``, ``run.json``) into, and with ``report`` the leaderboards and
            ``scorecard.html`` (:func:`bench.report.build_report`). None: write nothing.

    Returns:
        the results table (``bench.results.RESULT_COLUMNS``, one row per image x method x metric).
        ``attrs["notes"]``: what was skipped and why (one line each).

    Raises:
        ValueError: bad maps (shape, type, missing / extra images, non-finite values), an unknown metric or
            option; one message lists every problem. FileNotFoundError: a path that is not there.
    """
    t0 = time.perf_counter()
    if missing not in MISSING:
        raise ValueError(f"missing={missing!r}: expected one of {', '.join(MISSING)}")
    if nonfinite not in NONFINITE:
        raise ValueError(f"nonfinite={nonfinite!r}: expected one of {', '.join(NONFINITE)}")
    if out is not None and (Path(out) / "cache").is_dir():
        raise ValueError(f"{out} is a sweep's run folder (it has cache/); bench score writes a folder of its own: "
                         "pass another out (--out)")
    if isinstance(maps, (str, os.PathLike)):
        methods = read_maps(maps)
    elif isinstance(maps, Sequence) and maps and all(isinstance(m, MethodMaps) for m in maps):
        methods = [MethodMaps(m.name, dict(m.maps), m.source, m.record) for m in maps]  # checks convert, not yours
    elif isinstance(maps, Sequence) and maps and all(isinstance(m, (str, os.PathLike)) for m in maps):
        methods = read_maps(maps)
    else:
        methods = _from_python(maps, ids)
    _no_duplicate_names(methods)
    record = next((m.record for m in methods if m.record), {})
    if dataset is None:
        dataset = record.get("dataset")
        if not dataset:
            raise ValueError("no dataset: pass the dataset key (--dataset KEY), an ImageSet or the masks")
    split = split or record.get("split") or "test"
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
    fold = int(fold if fold is not None else record.get("fold") or 0)
    suite = _suite(suite)
    if sanity_methods is None and suite.source:  # a suite file's own choice
        sanity_methods = list(suite.score.sanity_methods)
    metric_names = _metrics(metrics, suite)
    notes: list[str] = []

    problems: list[str] = []
    nonfinite_of: dict[str, dict[str, int]] = {}
    for m in methods:
        p, nonfinite_of[m.name] = _check_arrays(m)
        problems += p
    if problems:
        raise ValueError("the maps cannot be scored:\n  " + "\n  ".join(problems))

    model, info, cfg, threads = None, {}, None, None
    if checkpoint is not None:
        import torch

        from bench.device import resolve_device, set_threads
        from bench.train import load_checkpoint

        model, info = load_checkpoint(checkpoint, device=str(resolve_device(device)))
        cfg = info["config"]
        threads = torch.get_num_threads()
        set_threads(cfg.train.threads)  # as the sweep's jobs: the thread count changes float results at the bit level
    try:
        return _score(methods, dataset, ids=ids, split=split, root=root, image_size=image_size, fold=fold,
                      targets=targets, suite=suite, metric_names=metric_names, sanity_methods=sanity_methods,
                      missing=missing, nonfinite=nonfinite, nonfinite_of=nonfinite_of, run=run,
                      model_name=model_name, seed=seed, out=out, report=report, notes=notes, model=model,
                      info=info, cfg=cfg, checkpoint=checkpoint, t0=t0)
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)


def _suite(suite) -> Suite:
    if suite is None:
        return Suite()
    return suite if isinstance(suite, Suite) else load_suite(suite)


def score_suite(name: str | None, overrides: Sequence[str] = ()) -> Suite | None:
    """The suite ``bench score --suite NAME --set KEY=VALUE`` asks for: the named suite with the overrides, the
    defaults of :class:`Suite` with the overrides (no name), or None (neither)."""
    if name:
        return load_suite(name, list(overrides))
    if not overrides:
        return None
    from bench.config import apply_overrides, from_dict

    return from_dict(Suite, apply_overrides({}, list(overrides)), source="bench score --set")


def _metrics(metrics, suite: Suite) -> list[str]:
    from bench.metrics import METRICS

    names = list(metrics) if metrics is not None else [m for m in suite.metrics if m != "all"]
    if not names:
        return METRICS.names()
    bad = [n for n in names if n not in METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; valid: {', '.join(METRICS.names())}")
    return [METRICS.canonical(n) for n in names]


def _score(methods: list[MethodMaps], dataset, *, ids, split, root, image_size, fold, targets, suite, metric_names,
           sanity_methods, missing, nonfinite, nonfinite_of, run, model_name, seed, out, report, notes, model,
           info, cfg, checkpoint, t0) -> pd.DataFrame:
    data, index, same = _load_data(dataset, ids=ids, root=root, image_size=image_size, cfg=cfg, methods=methods)
    if model is not None and not isinstance(data, MaskSet):
        own = list(info.get("class_names") or [])
        if own and list(data.class_names) != own:
            raise ValueError(f"dataset {data.key!r} has classes {list(data.class_names)} but the checkpoint "
                             f"{checkpoint} was trained on {own}")
    if model is not None and isinstance(data, MaskSet):
        raise ValueError("a checkpoint needs the images (deletion / insertion perturb them): pass a dataset key or "
                         "an ImageSet, not masks alone")
    by_name = [m.name for m in methods]
    if sanity_methods is None or list(sanity_methods) == ["all"]:
        sanity_methods = by_name
    unknown = [n for n in sanity_methods if n not in by_name]
    if unknown:
        raise ValueError(f"sanity_methods {unknown} name no set of maps; the maps are {', '.join(by_name)}")
    rows, note = _split_rows(data, split, cfg, fold, same)
    if note:
        notes.append(note)
    problems = []
    for m in methods:
        p, lacking = _check_ids(m, data, index, rows, split, missing)
        problems += p
        if lacking and missing == "skip":
            part = "" if isinstance(data, MaskSet) else f" of the {split} split"
            notes.append(f"{m.name}: {len(lacking)} image(s){part} with a lesion mask have no map ({_some(lacking)}): "
                         "scored without them (missing='skip')")
    bad = {m.name: nonfinite_of[m.name] for m in methods if nonfinite_of[m.name]}
    if bad and nonfinite == "error":
        problems += [f"{m.name} ({m.source}): {len(v)} map(s) have non-finite values ({sum(v.values())} NaN or "
                     f"infinite pixels in all): {_some([f'{i} ({k})' for i, k in v.items()])}; fix them, or pass "
                     "nonfinite='exclude' (--nonfinite exclude) to record them as excluded rows (value NaN)"
                     for m in methods if (v := bad.get(m.name))]
    if problems:
        raise ValueError("the maps cannot be scored:\n  " + "\n  ".join(problems))
    for name, v in bad.items():
        notes.append(f"{name}: {len(v)} map(s) with non-finite values excluded (value NaN, excluded set)")

    size = tuple(int(s) for s in data.masks.shape[-2:])
    model_col = model_name or (cfg.model.name if cfg is not None else "unknown")
    ident = {"run": run, "dataset": getattr(data, "key", "masks") or "masks", "model": model_col,
             "seed": int(seed if seed is not None else (cfg.train.seed if cfg is not None else 0)), "fold": int(fold)}
    computations = score_jobs(metric_names)
    if model is None:
        from bench.metrics import METRICS

        skipped = [m for c, ms in computations.items() for m in ms if METRICS.meta(m).get("needs_model", False)]
        computations = {c: ms for c, ms in computations.items() if not set(ms) & set(skipped)}
        if skipped:
            notes.append(f"{', '.join(skipped)} skipped: they need the model (pass the checkpoint, --checkpoint"
                         f"{_named_checkpoint(methods)})")
    if not computations:
        raise ValueError(f"nothing to compute: the metrics {metric_names} all need the model; pass the checkpoint")
    labels = np.asarray(data.labels, dtype=np.int64)
    predicted = _predictions(model, data, index, methods) if model is not None else {}

    tables, curves, scored = [], [], {}
    for m in methods:
        order = list(m.maps)  # as given: a computation that draws noise per position (ROAD) draws it as the sweep
        idx = [index[i] for i in order]
        arrays = _resize([m.maps[i] for i in order], size)
        tgt = [int(_target(m, targets, i, labels[index[i]])) for i in order]
        pred = {**predicted, **m.record.get("predictions", {})}
        meta = {"ids": order, "labels": [int(labels[k]) for k in idx], "targets": tgt,
                "correct": [bool(pred[i] == labels[index[i]]) if i in pred else None for i in order],
                "errors": {i: f"map has {k} non-finite value(s)" for i, k in nonfinite_of[m.name].items()},
                "grid": _grid(m, model, data, cfg, suite)}
        for computation, outputs in computations.items():
            table, curve, _ = _score_one(computation, suite, outputs, arrays, meta, data, idx, model)
            if meta["grid"] is None:  # each map's own shape as given
                table["cell_area"] = table["image_id"].map({i: 1.0 / m.maps[i].size for i in order})
            tables.append(table.assign(method=m.name, **ident))
            if curve is not None:
                curves.append(curve.assign(method=m.name, **{k: ident[k] for k in IDENT}))
        scored[m.name] = (order, arrays)
    results = _results_frame(tables)
    sanity = _sanity(methods, model, data, index, labels, suite, sanity_methods, scored, notes, ident)
    results.attrs["notes"] = list(notes)
    if out is not None:
        _write(Path(out), results, curves, sanity, data, index, scored, suite, methods, ident, notes, metric_names,
               split, size, checkpoint, report, t0)
    return results


def _score_one(computation, suite, outputs, arrays, meta, data, idx, model):
    from bench.sweep.stages.score import score_images

    return score_images(computation, metric_options(suite, computation), outputs, maps=arrays, meta=meta,
                        data=data, idx=idx, model=model)


def _named_checkpoint(methods: list[MethodMaps]) -> str:
    named = next((m.record.get("checkpoint") for m in methods if m.record.get("checkpoint")), None)
    return f"; explain.json names {named}" if named else ""


def _target(m: MethodMaps, targets, image_id: str, label: int) -> int:
    if targets is not None and image_id in targets:
        return int(targets[image_id])
    return int(m.record.get("targets", {}).get(image_id, label))


def _predictions(model, data, index, methods) -> dict[str, int]:
    """image id -> the model's predicted class, for the images of maps that carry no predictions."""
    from bench.models import predict_proba

    need = sorted({i for m in methods for i in m.maps if i not in m.record.get("predictions", {})}, key=index.get)
    if not need:
        return {}
    probs = predict_proba(model, take_rows(data.images, [index[i] for i in need]))
    return {i: int(p) for i, p in zip(need, probs.argmax(axis=1))}


def _grid(m: MethodMaps, model, data, cfg, suite) -> list[int] | None:
    """The (h, w) grid of ``m``'s maps for ``cell_area``: the explained layer's for maps bench explain wrote (with
    the model), else None (each map's own shape)."""
    if not m.record or model is None:
        return None
    from bench.attribution import METHODS
    from bench.sweep.stages.explain import map_grid

    if m.name not in METHODS:
        return None
    layer = m.record.get("layer") or suite.explain.layer or None
    device = next(model.parameters()).device
    return list(map_grid(model, m.name, layer, data.images[:1].to(device)))


def _results_frame(tables: list[pd.DataFrame]) -> pd.DataFrame:
    results = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=RESULT_COLUMNS)
    results = results.reindex(columns=RESULT_COLUMNS)
    known = results["correct"].notna().all()
    types = {**RESULT_TYPES, "correct": bool if known else "boolean"}  # NA: no prediction known
    return results.astype(types)


def _sanity(methods, model, data, index, labels, suite, sanity_methods, scored, notes, ident):
    if model is None:
        notes.append("sanity check skipped: it re-explains randomised copies of the model (pass the checkpoint, "
                     f"--checkpoint{_named_checkpoint(methods)})")
        return None
    from bench.attribution import METHODS
    from bench.sweep import scoring
    from bench.sweep.loading import select_images

    by_name = {m.name: m for m in methods}
    chosen = [n for n in sanity_methods if n in METHODS]
    other = [n for n in sanity_methods if n not in METHODS]
    if other:
        notes.append(f"sanity check skipped for {', '.join(other)}: not a registered bench method (the check "
                     "re-explains randomised copies of the model, so it needs the method itself)")
    frames = []
    for name in chosen:
        m = by_name[name]
        picked = select_images(data, index, scored[name][0], suite.score.sanity_images)
        options = {**suite.explain.options.get(name, {}), **m.record.get("options", {})}
        table = scoring.sanity(model, data.images[picked], [int(labels[i]) for i in picked], name,
                               layer=m.record.get("layer") or suite.explain.layer or None, options=options,
                               seed=suite.explain.seed)
        frames.append(table.assign(**{k: ident[k] for k in IDENT}, method=name))
    return pd.concat(frames, ignore_index=True) if frames else None


# ----------------------------------------------------------------------------------------------
# the output folder


def _write(out: Path, results, curves, sanity, data, index, scored, suite, methods, ident, notes, metric_names,
           split, size, checkpoint, report, t0) -> None:
    from bench.sweep.tables import write_parquet

    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "results.parquet", results)
    for name, frame in (("curves.parquet", pd.concat(curves, ignore_index=True) if curves else None),
                        ("sanity.parquet", sanity)):
        if frame is None:
            (out / name).unlink(missing_ok=True)  # nothing stale from an earlier call
        else:
            write_parquet(out / name, frame)
    _write_gallery(out, data, index, scored, suite, ident["dataset"])
    from bench.config import to_dict
    from bench.train import environment

    record = {
        # the suite whose options were used (its [report] roles are the report's), named for what was scored
        "suite": {**to_dict(suite), "name": ident["run"], "description": "bench score: maps scored against "
                  f"{ident['dataset']}'s lesion masks", "datasets": [ident["dataset"]], "models": [ident["model"]],
                  "methods": [m.name for m in methods], "metrics": metric_names},
        "score_maps": {"maps": {m.name: m.source for m in methods}, "split": split, "image_size": list(size),
                       "resize": RESIZE, "checkpoint": str(checkpoint) if checkpoint is not None else None,
                       "notes": notes},
        "versions": environment(), "hardware": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "seconds_total": time.perf_counter() - t0, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv),
    }
    (out / "run.json").write_text(json.dumps(record, indent=1, default=str))
    if report:
        from bench.report import build_report

        build_report(out, n_resamples=suite.report.bootstrap)


def _write_gallery(out: Path, data, index, scored, suite, dataset: str) -> None:
    """``gallery/<dataset>.npz`` as a sweep writes it: a few images per class scored by every method."""
    gdir = out / "gallery"
    if gdir.is_dir():
        shutil.rmtree(gdir)
    if getattr(data, "images", None) is None or not scored:
        return
    common = set.intersection(*(set(order) for order, _ in scored.values()))
    ids = [i for i in next(iter(scored.values()))[0] if i in common]
    labels = np.asarray(data.labels)
    from bench.data.selection import pick_per_class

    chosen = sorted(pick_per_class([int(labels[index[i]]) for i in ids], per_class=suite.report.gallery_per_class))
    if not chosen:
        return
    rows = [index[ids[k]] for k in chosen]
    arrays = {"images": data.images[rows].numpy(), "masks": data.masks[rows].numpy(), "labels": labels[rows],
              "ids": np.asarray([ids[k] for k in chosen]), "class_names": np.asarray(data.class_names)}
    for name, (order, maps) in scored.items():
        pos = {i: k for k, i in enumerate(order)}
        arrays[f"map__{name}"] = maps[[pos[ids[k]] for k in chosen]]
    gdir.mkdir()
    with open(gdir / f"{dataset}.npz", "wb") as fh:
        np.savez_compressed(fh, **arrays)


__all__ = ["MethodMaps", "read_maps", "score_maps", "score_suite"]
