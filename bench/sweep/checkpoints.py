"""Evaluating a model that is already trained: the checkpoint a suite names (its ``[checkpoint]`` table, or
``bench run SUITE --checkpoint PATH``), read and checked, and what each of the model jobs that load it in place
of training uses.

Two kinds of file are accepted, both read with ``torch.load(weights_only=True)`` (a file that carries pickled
code is refused, as :func:`bench.train.load_checkpoint` refuses it):

- ``"bench"``: bench's own checkpoint (:func:`bench.train.save_checkpoint`; ``bench train`` and every sweep's
  train job, ``<out>/cache/train/<key>/checkpoint.pt``, write one). It records the model's name and options,
  the class names and the whole run configuration.
- ``"state_dict"``: a plain PyTorch state dict, ``{parameter name: tensor}`` (or such a dict under the key
  ``state_dict``; a ``module.`` prefix on every key, left by ``nn.DataParallel``, is removed), given with the
  model's registered name (``checkpoint.model``; default: the suite's one model) and its class names in the
  order of the model's outputs (``checkpoint.classes``, required). The model's options (``width``,
  ``head_units``, ...) come from the suite's preset and ``[model]`` table, as for training.

What a job that loads the checkpoint uses, for each dataset of the suite:

- the model, its options and classes: a bench checkpoint's own; for a plain state dict ``checkpoint.model``, the
  suite's preset and ``[model]`` table, and ``checkpoint.classes``;
- the data options (image size, phantom options, split fractions, folds): a bench checkpoint's own (the model
  sees images as in training); the suite's for a plain state dict;
- the test split (the images explained and scored, and Table 2's): a bench checkpoint's, from its data options
  (split fractions, folds, split seed; with ``data.folds`` > 1, the fold the suite names: ``folds = [k]``); for a
  plain state dict the dataset's test split in the suite's first fold, as the suite's train job would split it
  (a manifest's own split column, where it has one, in both cases). The job's seed is the checkpoint's training
  seed, or the suite's first seed for a plain state dict;
- the dataset, data root, device, threads, deterministic mode and autocast: always the suite's.

The classes of the checkpoint must be the dataset's (same names, same order), else a ``ValueError`` names both
lists. One job per dataset loads the model; its cache key holds the file's SHA-256 (not its path), so a changed
file re-runs the jobs and a moved one does not. Where the split came from is in each such job's ``spec``
(``checkpoint.split``) and the run folder's ``run.json`` (``checkpoints``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import ConfigError, RunConfig, from_dict

BENCH, STATE_DICT = "bench", "state_dict"
# data and train options that say where and how to compute, not what: the suite's, also for a bench checkpoint
RUN_HERE = {"data": ("dataset", "root"), "train": ("device", "threads", "deterministic", "autocast")}


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint file, read and checked (:func:`inspect_checkpoint`).

    ``path`` absolute; ``sha256`` of its bytes; ``kind`` ``"bench"`` or ``"state_dict"``; ``model`` the
    registered model name; ``class_names`` the model's output classes in order; ``config`` the recorded run
    configuration (a bench checkpoint's, as a plain dict; None for a plain state dict); ``shapes`` the (key,
    shape) of a plain state dict's tensors (checked against the model before anything runs)."""

    path: str
    sha256: str
    kind: str
    model: str
    class_names: tuple[str, ...]
    config: dict | None = None
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # a plain state dict's (key, shape) of every tensor


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the bytes of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_weights(path: str | Path, *, where: str = "checkpoint.path") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a missing file is a ``FileNotFoundError`` and a file
    that is not plain tensors and data a ``ValueError``, each naming the file and ``where`` it was given."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} ({where}) not found; pass the path of a bench checkpoint "
                                "(e.g. runs/<run>/checkpoint.pt) or of a plain PyTorch state dict")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for code, RuntimeError for a corrupt zip, EOFError
        why = (str(exc).strip().splitlines() or ["an empty or truncated file"])[0]
        raise ValueError(f"checkpoint {p} ({where}): refused to load: {type(exc).__name__}: {why} (a checkpoint "
                         "must hold only tensors and plain data, saved with torch.save)") from None


def is_bench_checkpoint(blob: Any) -> bool:
    """Whether a loaded file is bench's own checkpoint (a dict with ``state_dict``, ``config``, ``class_names``)."""
    return isinstance(blob, dict) and {"state_dict", "config", "class_names"} <= set(blob)


def plain_state_dict(blob: Any, *, source: str) -> dict:
    """The ``{name: tensor}`` of a plain state dict file's contents ``blob`` (also one nested under the key
    ``state_dict``), without a ``module.`` prefix that every key has. ``ValueError`` naming ``source`` otherwise."""
    import torch

    if isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict):
        blob = blob["state_dict"]
    if not isinstance(blob, dict) or not blob:
        raise ValueError(f"{source}: not a state dict (expected a dict of parameter name -> tensor, got "
                         f"{type(blob).__name__}{' (empty)' if isinstance(blob, dict) else ''})")
    bad = [str(k) for k, v in blob.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise ValueError(f"{source}: not a state dict: {len(bad)} entries are not parameter name -> tensor "
                         f"(e.g. {bad[:3]}); save model.state_dict(), or a bench checkpoint")
    if all(k.startswith("module.") for k in blob):
        blob = {k.removeprefix("module."): v for k, v in blob.items()}
    return blob


_INSPECTED: dict[tuple, CheckpointFile] = {}


def inspect_checkpoint(path: str | Path, *, model: str = "", classes: tuple[str, ...] | list[str] = (),
                       default_model: str = "", where: str = "checkpoint.path") -> CheckpointFile:
    """Read and check the checkpoint at ``path`` (cached per file path, size and modification time).

    ``model`` and ``classes``: a plain state dict's model name (else ``default_model``) and output classes (both
    required for one); given for a bench checkpoint, they must equal what it records. Raises
    ``FileNotFoundError`` (no such file) or ``ValueError`` (unsafe or unreadable content, not a state dict, a model
    or class list missing or contradicting the file's), each naming the file and ``where`` (the suite key or
    option it came from)."""
    from bench.models import MODELS

    p = Path(path).expanduser().resolve()
    if not p.is_file():
        read_weights(p, where=where)  # raises the FileNotFoundError
    st = p.stat()
    cache_key = (str(p), st.st_size, st.st_mtime_ns, model, tuple(classes), default_model)
    if cache_key in _INSPECTED:
        return _INSPECTED[cache_key]
    blob = read_weights(p, where=where)
    sha = file_sha256(p)
    if is_bench_checkpoint(blob):
        cfg = from_dict(RunConfig, blob["config"], source=str(p))
        names = tuple(str(c) for c in blob["class_names"])
        if model and model != cfg.model.name:
            raise ValueError(f"checkpoint {p} is bench's and records model {cfg.model.name!r}, but "
                             f"{model!r} was given (checkpoint.model / --model): drop it or give the recorded one")
        if classes and tuple(classes) != names:
            raise ValueError(f"checkpoint {p} is bench's and records classes {list(names)}, but {list(classes)} "
                             "were given (checkpoint.classes / --classes): drop them or give the recorded ones")
        info = CheckpointFile(str(p), sha, BENCH, cfg.model.name, names, dataclasses.asdict(cfg))
    else:
        state = plain_state_dict(blob, source=f"checkpoint {p} ({where})")
        model = model or default_model
        if not model or not classes:
            raise ValueError(f"checkpoint {p} is a plain state dict (not a bench checkpoint): give the model's "
                             "name and its classes in the order of its outputs (--model NAME --classes A,B,...; "
                             "in a suite: [checkpoint] model = ..., classes = [...])")
        info = CheckpointFile(str(p), sha, STATE_DICT, model, tuple(classes), None,
                              tuple((k, tuple(v.shape)) for k, v in state.items()))
    if info.model not in MODELS:
        raise ValueError(f"checkpoint {p}: unknown model {info.model!r}; registered: {', '.join(MODELS.names())}")
    if len(set(info.class_names)) != len(info.class_names) or len(info.class_names) < 2:
        raise ValueError(f"checkpoint {p}: classes {list(info.class_names)} must be two or more distinct names")
    _INSPECTED[cache_key] = info
    return info


def check_classes(checkpoint: str, classes, dataset: str, dataset_classes, *, hint: str = "") -> None:
    """``ValueError`` naming both lists unless ``classes`` (the checkpoint's) are ``dataset_classes`` (same names,
    same order); ``hint`` (what to do) ends the message."""
    if tuple(classes) != tuple(dataset_classes):
        raise ValueError(
            f"checkpoint {checkpoint} has classes {list(classes)} but dataset {dataset} has {list(dataset_classes)}: "
            "they must be the same names in the same order (the model's output i is class i)"
            + (f"; {hint}" if hint else ""))


def checkpoint_models(suite, dataset: str) -> list[tuple[dict[str, Any], RunConfig, dict[str, Any]]]:
    """The model(s) ``suite``'s checkpoint gives on ``dataset``: ``[(ident, run configuration, spec)]`` with
    ``ident`` = ``{dataset, model, seed, fold}`` and ``spec`` the job's ``checkpoint`` entry: ``path``, ``sha256``,
    ``kind``, ``model``, ``classes``, ``split`` (where the test split comes from, in words), ``trained_on`` (the
    dataset the checkpoint records; "" for a plain state dict). One model per dataset (see the module
    docstring for what comes from where). Raises as :func:`inspect_checkpoint`, and a ``ValueError`` when the
    classes are not the dataset's."""
    from bench.data import load_card

    c = suite.checkpoint
    models = tuple(suite.models)
    info = inspect_checkpoint(c.path, model=c.model, classes=c.classes,
                              default_model=models[0] if len(models) == 1 else "")
    here = suite.run_config(dataset, info.model if info.kind == STATE_DICT else models[0], suite.seeds[0])

    def classes_of(key: str) -> tuple[str, ...]:
        return tuple(load_card(key, here.data.root).classes)

    if classes_of(dataset) != info.class_names:
        fits = [d for d in suite.datasets if classes_of(d) == info.class_names]
        hint = (f"of the suite's datasets, {' and '.join(fits)} {'has' if len(fits) == 1 else 'have'} them: --set "
                f"'datasets={json.dumps(fits)}'" if fits else
                "evaluate it on a dataset with its classes: --set 'datasets=[\"KEY\"]'")
        if info.kind == STATE_DICT:
            hint += "; or give the classes as the model's outputs are ordered (--classes / checkpoint.classes)"
        check_classes(info.path, info.class_names, dataset, classes_of(dataset), hint=hint)
    if info.kind == BENCH:
        cfg = _run_here(from_dict(RunConfig, info.config, source=info.path), here)
        fold = _bench_fold(suite, cfg, info.path)
        split = f"the checkpoint's split: its data options ({_split_options(cfg)}), fold {fold}; {MANIFEST_SPLIT}"
        trained_on = info.config["data"]["dataset"]
    else:
        cfg = here
        check_fits(info, cfg)
        fold = suite.fold_indices(cfg)[0]
        split = (f"the dataset's test split as the suite's train job would split it ({_split_options(cfg)}), fold "
                 f"{fold}; a plain state dict records no split: make sure the model never saw these test images; "
                 f"{MANIFEST_SPLIT}")
        trained_on = ""
    ident = {"dataset": dataset, "model": info.model, "seed": cfg.train.seed, "fold": fold}
    spec = {"path": info.path, "sha256": info.sha256, "kind": info.kind, "model": info.model,
            "classes": list(info.class_names), "split": split, "trained_on": trained_on}
    return [(ident, cfg, spec)]


MANIFEST_SPLIT = "a manifest's own split column where it has one (and data.folds=1)"


def _split_options(cfg: RunConfig) -> str:
    """The data options that make a computed split, in words (``bench.train.resolve_split``)."""
    d = cfg.data
    seed = f"split_seed={d.split_seed}" if hasattr(d, "split_seed") else f"train.seed={cfg.train.seed}"
    return f"data.folds={d.folds}, test_fraction={d.test_fraction}, val_fraction={d.val_fraction}, {seed}"


def check_fits(info: CheckpointFile, cfg: RunConfig) -> None:
    """``ValueError`` naming the missing, unexpected and mis-shaped keys unless the plain state dict ``info`` fits
    the model ``cfg.model`` describes with ``len(info.class_names)`` outputs (built on the ``meta`` device: no
    memory, no weights computed)."""
    import torch

    from bench.train import build_model, check_state_dict

    with torch.device("meta"):
        model = build_model(cfg, len(info.class_names), pretrained="")
    where = f"checkpoint {info.path} (a plain state dict)"
    try:
        check_state_dict(model, {k: torch.empty(shape, device="meta") for k, shape in info.shapes}, source=where)
    except ValueError as exc:
        raise ValueError(f"{exc}. {fit_hint(cfg, len(info.class_names))}") from None


def fit_hint(cfg: RunConfig, num_classes: int) -> str:
    """What a plain state dict that does not fit is loaded into, and how to change it."""
    options = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(cfg.model).items() if k != "name")
    return (f"The model is {cfg.model.name!r} with {num_classes} outputs and the suite's model options (its preset "
            f"and [model] table: {options}); set them as the weights were trained, e.g. --set model.width=... or "
            "--set 'model.options={...}'")


def _run_here(cfg: RunConfig, here: RunConfig) -> RunConfig:
    """``cfg`` (a checkpoint's configuration) with the dataset, data root and device options of ``here``."""
    sections = {}
    for section, keys in RUN_HERE.items():
        mine = getattr(here, section)
        sections[section] = dataclasses.replace(getattr(cfg, section), **{k: getattr(mine, k) for k in keys})
    return dataclasses.replace(cfg, **sections)


def _bench_fold(suite, cfg: RunConfig, path: str) -> int:
    """The fold a bench checkpoint was trained on: 0 with ``data.folds`` = 1, else the one the suite names."""
    if cfg.data.folds == 1:
        return 0
    if len(suite.folds) != 1 or not 0 <= suite.folds[0] < cfg.data.folds:
        raise ConfigError(f"checkpoint {path} was trained on one fold of data.folds={cfg.data.folds} and does not "
                          f"record which: name it with --set folds=[k] (0 <= k < {cfg.data.folds}); the suite "
                          f"gives folds={list(suite.folds)}")
    return int(suite.folds[0])


def forget() -> None:
    """Drop the cached inspections (a test that rewrites a file within one clock tick uses it)."""
    _INSPECTED.clear()


__all__ = ["BENCH", "STATE_DICT", "CheckpointFile", "check_classes", "check_fits", "checkpoint_models", "file_sha256",
           "fit_hint", "forget", "inspect_checkpoint", "is_bench_checkpoint", "plain_state_dict", "read_weights"]
