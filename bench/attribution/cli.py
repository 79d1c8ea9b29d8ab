"""``bench explain`` and ``bench figure``: attribution maps from a trained checkpoint and a dataset split.

``bench explain --checkpoint C --out DIR`` writes ``DIR/<method>.npy`` ``(N, H, W)`` float32 per
method (rows in the order of ``explain.json``'s ``ids``) and ``DIR/explain.json`` (ids, labels,
targets, predictions, the methods with their options and cost, the checkpoint, dataset, split,
versions and seconds per method). ``bench figure --checkpoint C --out F.png`` renders a Fig. 1-style
gallery: per class a few images (lesion images first), the reference-mask outline and each method.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT_FIGURE_METHODS = "grad_cam,fused_grad_cam,score_cam,integrated_gradients,rise,edge"


def add_commands(sub) -> None:
    """Add ``explain`` and ``figure`` to the ``bench`` sub-parsers."""
    p = sub.add_parser("explain", help="write attribution maps (.npy per method) for a dataset split")
    _common(p, default_methods="grad_cam")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--limit", type=int, default=0, help="explain only the first N images (0 = all)")
    p.set_defaults(handler=_cmd_explain)

    f = sub.add_parser("figure", help="render a Fig. 1-style gallery (PNG) of methods on a dataset")
    _common(f, default_methods=DEFAULT_FIGURE_METHODS)
    f.add_argument("--out", required=True, help="output PNG file")
    f.add_argument("--per-class", type=int, default=2, help="images per class (default 2)")
    f.set_defaults(handler=_cmd_figure)


def _common(p: argparse.ArgumentParser, *, default_methods: str) -> None:
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by bench train")
    p.add_argument("--dataset", default=None, help="dataset key (default: the checkpoint's)")
    p.add_argument("--split", default="test",
                   help="train, val, test or all (default test: the training run's test split)")
    p.add_argument("--fold", type=int, default=0, help="cross-validation fold the checkpoint was trained on")
    p.add_argument("--root", default=None, help="data root (default: the checkpoint's, else BENCH_DATA_ROOT)")
    p.add_argument("--methods", default=default_methods,
                   help=f"comma-separated method names, or 'all' (default {default_methods})")
    p.add_argument("--layer", default=None, help="layer for the layer methods (default: the model's)")
    p.add_argument("--target", default="label",
                   help="class to explain: 'label' (true class), 'pred' (predicted) or a class index/name")
    p.add_argument("--option", dest="options", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a method option, e.g. rise.n_masks=2000 (repeatable)")
    p.add_argument("--batch-size", type=int, default=32, help="images per explain call (default 32)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i] (default auto)")


# ----------------------------------------------------------------------------------------------
# shared steps


def _cfg(cfg: Any, section: str, key: str, default: Any = None) -> Any:
    """A value of a RunConfig, given as the dataclass or as its dict."""
    part = cfg.get(section, {}) if isinstance(cfg, dict) else getattr(cfg, section, None)
    if part is None:
        return default
    return part.get(key, default) if isinstance(part, dict) else getattr(part, key, default)


def _methods(text: str) -> list[str]:
    from bench.attribution import METHODS, available_methods

    if text.strip() == "all":
        return available_methods()
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise ValueError("--methods is empty; give comma-separated names or 'all'")
    return [METHODS.canonical(m) for m in names]


def _options(items: list[str], methods: list[str]) -> dict[str, dict[str, Any]]:
    """``["rise.n_masks=2000"]`` -> ``{"rise": {"n_masks": 2000}}`` (values read as TOML literals)."""
    import tomllib

    from bench.attribution import METHODS

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--option {item!r}: expected METHOD.KEY=VALUE, e.g. rise.n_masks=2000")
        method = METHODS.canonical(method)
        if method not in methods:
            raise ValueError(f"--option {item!r}: method {method!r} is not among --methods {','.join(methods)}")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out.setdefault(method, {})[name.strip()] = value
    return out


def _load(args) -> tuple[torch.nn.Module, dict, Any, list[str], torch.device]:
    """The checkpoint's model on the device, its info, the dataset split, the class names, the device.

    For the checkpoint's own dataset, ``--split train/val/test`` is the split the training run used
    (``bench.train.resolve_split``: the manifest's split column, else the seeded grouped split of
    ``--fold``); for another dataset it is the manifest's split column.
    """
    from bench.data import load_dataset
    from bench.device import resolve_device
    from bench.train import load_checkpoint, resolve_split

    if args.split not in ("train", "val", "test", "all"):
        raise ValueError(f"--split {args.split!r}: expected train, val, test or all")
    device = resolve_device(args.device)
    model, info = load_checkpoint(args.checkpoint)
    model = model.to(device).eval()
    cfg = info["config"]
    own = _cfg(cfg, "data", "dataset")
    key = args.dataset or own
    if not key:
        raise ValueError(f"{args.checkpoint}: no dataset in its config; pass --dataset")
    root = args.root if args.root is not None else (_cfg(cfg, "data", "root", "") or "")
    size = int(_cfg(cfg, "data", "image_size", 64))
    if args.split == "all":
        data = load_dataset(key, root=root, image_size=size, split=None)
    elif key == own and not isinstance(cfg, dict):
        data = load_dataset(key, root=root, image_size=size, split=None)
        data = data.subset(getattr(resolve_split(data, cfg, args.fold), args.split))
    else:
        data = load_dataset(key, root=root, image_size=size, split=args.split)
    if len(data.labels) == 0:
        raise ValueError(f"dataset {key!r} has no images in split {args.split!r}")
    class_names = list(info.get("class_names") or data.class_names)
    if list(data.class_names) != class_names:
        raise ValueError(
            f"dataset {key!r} has classes {list(data.class_names)} but the checkpoint was trained on "
            f"{class_names}"
        )
    return model, info, data, class_names, device


def _targets(spec: str, labels: np.ndarray, probs: np.ndarray, class_names: list[str]) -> np.ndarray:
    if spec == "label":
        return labels.astype(np.int64)
    if spec == "pred":
        return probs.argmax(axis=1).astype(np.int64)
    if spec in class_names:
        return np.full(len(labels), class_names.index(spec), dtype=np.int64)
    try:
        k = int(spec)
    except ValueError:
        raise ValueError(
            f"--target {spec!r}: expected 'label', 'pred', a class index or one of {class_names}"
        ) from None
    if not 0 <= k < len(class_names):
        raise ValueError(f"--target {k} is out of range: the model has {len(class_names)} classes")
    return np.full(len(labels), k, dtype=np.int64)


def _explain_all(
    model, images: torch.Tensor, targets: np.ndarray, methods: list[str], options: dict, layer, device, bs: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    from bench.attribution import explain

    maps: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    h, w = images.shape[-2:]
    for method in methods:
        out = np.empty((len(images), h, w), dtype=np.float32)
        t0 = time.perf_counter()
        for s in range(0, len(images), bs):
            x = images[s : s + bs].to(device)
            t = torch.as_tensor(targets[s : s + bs])
            out[s : s + len(x)] = explain(model, x, t, method, layer=layer, **options.get(method, {})).cpu().numpy()
        seconds[method] = time.perf_counter() - t0
        maps[method] = out
    return maps, seconds


def _versions() -> dict[str, str]:
    import captum

    from bench.version import VERSION

    return {"bench": VERSION, "torch": torch.__version__, "captum": captum.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


# ----------------------------------------------------------------------------------------------
# commands


def _cmd_explain(args) -> int:
    from bench.attribution import METHODS, method_cost
    from bench.data.arrays import take_rows
    from bench.models import predict_proba

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    methods = _methods(args.methods)
    options = _options(args.options, methods)
    model, info, data, class_names, device = _load(args)
    n = len(data.labels) if args.limit <= 0 else min(args.limit, len(data.labels))
    images = take_rows(data.images, slice(0, n))
    labels = np.asarray(data.labels[:n], dtype=np.int64)
    probs = predict_proba(model, images, batch_size=args.batch_size, device=device)
    targets = _targets(args.target, labels, probs, class_names)
    maps, seconds = _explain_all(model, images, targets, methods, options, args.layer, device, args.batch_size)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for method, m in maps.items():
        np.save(out / f"{method}.npy", m)
    layer = args.layer or getattr(model, "default_cam_layer", None)
    record = {
        "checkpoint": str(args.checkpoint),
        "dataset": args.dataset or _cfg(info["config"], "data", "dataset"),
        "split": args.split,
        "fold": args.fold,
        "image_size": list(images.shape[-2:]),
        "class_names": class_names,
        "target": args.target,
        "layer": layer,
        "ids": list(data.ids[:n]),
        "labels": labels.tolist(),
        "targets": targets.tolist(),
        "predictions": probs.argmax(axis=1).tolist(),
        "probabilities": probs.astype(np.float32).round(6).tolist(),  # rounded in float32, the softmax's dtype
        "methods": {
            m: {
                "file": f"{m}.npy",
                "options": {**METHODS.meta(m)["options"], **options.get(m, {})},
                "layer": layer if METHODS.meta(m)["uses_layer"] else None,
                "cost": method_cost(m, **options.get(m, {})),
                "seconds": round(seconds[m], 4),
            }
            for m in methods
        },
        "device": str(device),
        "versions": _versions(),
    }
    (out / "explain.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {len(methods)} map file(s) for {n} images to {out}")
    return 0


def _cmd_figure(args) -> int:
    from bench.data.selection import pick_per_class
    from bench.models import predict_proba
    from bench.report.gallery import gallery_figure

    if args.per_class < 1:
        raise ValueError(f"--per-class must be >= 1, got {args.per_class}")
    methods = _methods(args.methods)
    options = _options(args.options, methods)
    model, info, data, class_names, device = _load(args)
    labels = np.asarray(data.labels, dtype=np.int64)
    has_mask = getattr(data, "has_mask", None)
    has_mask = None if has_mask is None else np.asarray(has_mask, dtype=bool)
    if has_mask is None:
        has_mask = np.asarray(data.masks).reshape(len(labels), -1).any(axis=1)
    mask_first = np.argsort(~has_mask, kind="stable")  # within each class: images with a mask first
    idx = pick_per_class(labels, mask_first, per_class=args.per_class)
    images = data.images[idx]
    probs = predict_proba(model, images, batch_size=args.batch_size, device=device)
    targets = _targets(args.target, labels[idx], probs, class_names)
    maps, _ = _explain_all(model, images, targets, methods, options, args.layer, device, args.batch_size)
    key = args.dataset or _cfg(info["config"], "data", "dataset")
    model_name = _cfg(info["config"], "model", "name", "model")
    layer = args.layer or getattr(model, "default_cam_layer", "")
    gallery = {  # the layout of a sweep's gallery/<dataset>.npz (one renderer for both)
        "images": np.asarray(images, dtype=np.float32), "masks": np.asarray(data.masks)[idx].astype(bool),
        "labels": labels[idx], "class_names": list(class_names),
        "ids": [f"{data.ids[i]} p={probs[j, targets[j]]:.2f}" for j, i in enumerate(idx)],
        "maps": {m: np.asarray(v, dtype=np.float32) for m, v in maps.items()},
    }
    fig = gallery_figure(gallery, max_rows=len(idx), methods=list(maps),
                         title=f"{key} ({args.split}) - {model_name}, layer {layer}, target: {args.target}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0
