"""Training FF-VGG19 (or any registered model) on one prepared dataset, with the paper's metrics.

``fit(cfg)`` loads the dataset named in ``cfg.data`` (phantoms are generated on demand), splits it
(stratified, grouped), trains with Adam and early stopping on validation loss, evaluates the test
split with :func:`bench.metrics.classification_report`, and (with ``out_dir``) writes a checkpoint
and a Table-2-style table. Seeded: on the CPU the same seed gives bit-identical weights and metrics.

CLI: ``bench train --dataset KEY [--preset smoke|quick|paper] [--set section.key=value ...]``.
"""

from __future__ import annotations

import csv
import math
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bench.config import RunConfig, TrainConfig, from_dict, load_run_config, to_dict
from bench.data.splits import DECORRELATED, Split, make_splits, splits_from_column
from bench.device import resolve_device, set_threads
from bench.metrics.classification import TABLE2_COLUMNS, classification_report
from bench.models import create_model

CHECKPOINT_FORMAT = 1


@dataclass
class TrainResult:
    """What :func:`fit` returns. ``model`` is in eval mode on ``device``."""

    model: nn.Module
    config: RunConfig
    class_names: list[str]
    metrics: dict[str, Any]
    split: Split
    test_ids: list[str]
    test_labels: np.ndarray
    test_probs: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    device: str = "cpu"

    @property
    def images_per_second(self) -> float:
        """Mean training throughput over epochs (images / s of forward+backward+step)."""
        rates = [h["train_images_per_s"] for h in self.history]
        return float(np.mean(rates)) if rates else float("nan")


# ---------------------------------------------------------------------------------------------
# augmentation


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor | None, generator: torch.Generator, *, max_degrees: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random horizontal flips and rotations of up to ``max_degrees``, the mask following the image.

    ``images`` (B, C, H, W) float; ``masks`` (B, H, W) bool or None. Images are resampled bilinearly,
    masks with nearest; pixels rotated in from outside are 0 (black, and outside the mask).
    """
    b = images.shape[0]
    flip = torch.rand(b, generator=generator) < 0.5
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(max_degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx = torch.where(flip, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if masks is None:
        return out, None
    m = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out, m[:, 0] > 0.5


# ---------------------------------------------------------------------------------------------
# data


def load_training_data(cfg: RunConfig):
    """The :class:`bench.data.ImageSet` named by ``cfg.data``; phantoms are generated if missing."""
    from bench.data import load_dataset

    ensure_prepared(cfg)
    return load_dataset(cfg.data.dataset, root=cfg.data.root, image_size=cfg.data.image_size)


def phantom_options(cfg: RunConfig) -> dict[str, Any]:
    """The options a phantom named by ``cfg.data`` is generated with ({} for a real dataset)."""
    d = cfg.data
    if not d.dataset.startswith("synthetic-"):
        return {}
    return {"seed": d.phantom_seed, "scale": d.phantom_scale, "min_per_class": d.phantom_min_per_class,
            "max_per_class": d.phantom_max_per_class, "confounder": d.confounder, "confounder_p": d.confounder_p}


def ensure_prepared(cfg: RunConfig) -> None:
    """Generate the phantom ``cfg.data`` names unless it is on disk with the same options.

    Real datasets are prepared by the user (``bench prepare KEY --raw DIR``); loading one that is
    not says so.
    """
    from bench.data import is_prepared, prepare

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
        folds=d.folds, seed=cfg.train.seed,
    )[fold]
    return Split(train=pool[s.train], val=pool[s.val], test=pool[s.test], fold=s.fold)


# ---------------------------------------------------------------------------------------------
# training


def build_model(cfg: RunConfig, num_classes: int, **override: Any) -> nn.Module:
    """The model ``cfg.model`` describes (``override`` replaces options, e.g. ``pretrained=""``)."""
    m = cfg.model
    options = {"width": m.width, "head_units": m.head_units, "pretrained": m.pretrained,
               "freeze_backbone": m.freeze_backbone, "batch_norm": m.batch_norm}
    if m.name == "ff_vgg19":
        options["bn_momentum"] = m.bn_momentum
    return create_model(m.name, num_classes, **{**options, **override})


@torch.no_grad()
def predict_proba(model: nn.Module, images: torch.Tensor, *, batch_size: int = 128, device=None) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` float64 of ``images`` ``(N, 3, H, W)``; model left in eval mode."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [F.softmax(model(images[i : i + batch_size].to(device)), dim=1).double().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.num_classes))


def _evaluate_loss(model, images, labels, device, batch_size) -> tuple[float, float]:
    probs = predict_proba(model, images, batch_size=batch_size, device=device)
    if len(probs) == 0:
        return float("nan"), float("nan")
    p = torch.from_numpy(probs).clamp_min(1e-12)
    loss = F.nll_loss(p.log(), labels).item()
    return loss, float((p.argmax(1) == labels).float().mean())


def _lr_scheduler(opt: torch.optim.Optimizer, train: TrainConfig, *, steps_per_epoch: int):
    """The per-step learning-rate schedule ``train.lr_schedule`` names, or None for a constant rate."""
    if train.lr_schedule == "constant":
        return None
    if train.lr_schedule == "cosine":
        total = train.epochs * steps_per_epoch
        if train.max_steps:
            total = min(total, train.max_steps)
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    raise ValueError(f"train.lr_schedule = {train.lr_schedule!r}: use 'constant' or 'cosine'")


def fit(
    cfg: RunConfig,
    *,
    data=None,
    fold: int = 0,
    out_dir: str | Path | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` and evaluate it on the test split.

    Args:
        cfg: the resolved run configuration (see :func:`bench.config.load_run_config`).
        data: an already loaded :class:`bench.data.ImageSet` (default: load ``cfg.data.dataset``).
        fold: which cross-validation fold to train (``cfg.data.folds`` > 1).
        out_dir: if given, ``checkpoint.pt``, ``classification.csv`` / ``.md`` and ``config.toml``-like
            JSON are written there.
        progress: show a progress bar per epoch (``None`` = only on a terminal).

    Raises:
        RuntimeError: the loss or the model's outputs became NaN or infinite (the message names the
            epoch, and the step where the training loss did).
    """
    set_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    data = data if data is not None else load_training_data(cfg)
    split = resolve_split(data, cfg, fold)
    class_names = list(data.class_names)
    labels = torch.as_tensor(np.asarray(data.labels), dtype=torch.long)
    if len(split.train) == 0 or len(split.test) == 0:
        raise ValueError(f"{cfg.data.dataset}: empty train or test split ({len(split.train)} / {len(split.test)} images)")

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, len(class_names)).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    sched = _lr_scheduler(opt, cfg.train, steps_per_epoch=-(-len(split.train) // cfg.train.batch_size))

    x_train, y_train = data.images[split.train], labels[split.train]
    x_val, y_val = data.images[split.val], labels[split.val]
    bs = cfg.train.batch_size
    best_loss, best_state, bad_epochs, steps = math.inf, None, 0, 0
    history: list[dict[str, float]] = []
    show = sys.stderr.isatty() if progress is None else progress
    for epoch in range(cfg.train.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        if len(order) % bs == 1:  # BatchNorm cannot train on a batch of one
            order = order[:-1]
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        bar = tqdm(range(0, len(order), bs), desc=f"{cfg.data.dataset} epoch {epoch + 1}/{cfg.train.epochs}",
                   disable=not show, leave=False, unit="batch")
        for i in bar:
            idx = order[i : i + bs]
            xb, yb = x_train[idx], y_train[idx]
            if cfg.data.augment:
                xb, _ = augment_batch(xb, None, gen)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"training diverged on {cfg.data.dataset}: loss {loss.item()} at epoch {epoch + 1}, "
                    f"step {steps + 1}; lower train.lr (now {cfg.train.lr})"
                )
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            steps += 1
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if cfg.train.max_steps and steps >= cfg.train.max_steps:
                break
        seconds = time.perf_counter() - t0
        val_loss, val_acc = _evaluate_loss(model, x_val, y_val, device, 4 * bs)
        if len(x_val) and not math.isfinite(val_loss):  # a finite training loss, then weights blown up
            raise RuntimeError(
                f"training diverged on {cfg.data.dataset}: the model's outputs are not finite after epoch "
                f"{epoch + 1} (validation loss {val_loss}); lower train.lr (now {cfg.train.lr})"
            )
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "val_loss": val_loss,
                        "val_accuracy": val_acc, "seconds": seconds, "train_images_per_s": seen / max(seconds, 1e-9)})
        monitor = val_loss if math.isfinite(val_loss) else history[-1]["train_loss"]
        if monitor < best_loss - 1e-6:
            best_loss, bad_epochs = monitor, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
            if cfg.train.patience and bad_epochs >= cfg.train.patience and epoch + 1 >= cfg.train.min_epochs:
                break
        if cfg.train.max_steps and steps >= cfg.train.max_steps:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()

    probs = predict_proba(model, data.images[split.test], batch_size=4 * bs, device=device)
    if not np.isfinite(probs).all():
        raise RuntimeError(
            f"training diverged on {cfg.data.dataset}: the model's test predictions are not finite; "
            f"lower train.lr (now {cfg.train.lr})"
        )
    y_test = labels[split.test].numpy()
    positive = getattr(getattr(data, "card", None), "positive", "") or None
    metrics = classification_report(y_test, probs, positive=positive if len(class_names) == 2 else None,
                                    class_names=class_names)
    result = TrainResult(
        model=model, config=cfg, class_names=class_names, metrics=metrics, split=split,
        test_ids=[data.ids[i] for i in split.test], test_labels=y_test, test_probs=probs,
        history=history, device=str(device),
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result.checkpoint = save_checkpoint(out / "checkpoint.pt", result)
        write_classification_table([table2_row(cfg.data.dataset, cfg.model.name, metrics)], out / "classification")
    return result


# ---------------------------------------------------------------------------------------------
# checkpoints


def environment() -> dict[str, str]:
    """Versions and hardware, saved beside every result."""
    import numpy
    import sklearn

    import bench

    return {
        "bench": bench.__version__, "torch": str(torch.__version__), "numpy": numpy.__version__,
        "sklearn": sklearn.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(), "threads": str(torch.get_num_threads()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }


def save_checkpoint(path: str | Path, result: TrainResult) -> Path:
    """Write ``path`` atomically. Holds only tensors and plain data (loads with ``weights_only=True``)."""
    path = Path(path)
    blob = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "config": to_dict(result.config),
        "class_names": list(result.class_names),
        "metrics": {k: v for k, v in result.metrics.items() if k != "per_class"},
        "versions": environment(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, *, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path``; returns ``(model in eval mode, info)``.

    ``info`` holds ``config`` (a :class:`RunConfig`), ``class_names``, ``metrics``, ``versions``.
    Loads with ``weights_only=True``: a file that carries pickled code is refused.

    Raises:
        ValueError: not a bench checkpoint, unsafe content, or weights that do not fit the model its
            config describes (the message lists the mismatching keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for code, RuntimeError for a corrupt zip
        why = (str(exc).strip().splitlines() or ["an empty or truncated file"])[0]  # EOFError has no message
        raise ValueError(
            f"{path}: refused to load: {type(exc).__name__}: {why} "
            "(checkpoints must hold only tensors and plain data; bench never unpickles code)"
        ) from None
    if not isinstance(blob, dict) or "state_dict" not in blob or "config" not in blob:
        raise ValueError(f"{path}: not a bench checkpoint (expected keys state_dict, config, class_names)")
    cfg = from_dict(RunConfig, blob["config"], source=str(path))
    model = build_model(cfg, len(blob["class_names"]), pretrained="")
    check_state_dict(model, blob["state_dict"], source=str(path))
    model.load_state_dict(blob["state_dict"])
    info = {k: v for k, v in blob.items() if k != "state_dict"}
    info["config"] = cfg
    return model.to(device).eval(), info


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Raise a ``ValueError`` naming every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:3]))
        raise ValueError(f"{source}: checkpoint does not match the model its config describes: " + ", ".join(parts))


# ---------------------------------------------------------------------------------------------
# Table 2


def table2_row(dataset: str, model: str, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One row of the Table-2-style table (fractions; the writers show percentages)."""
    return {"dataset": dataset, "model": model, **extra, "n_test": metrics["n"],
            **{k: metrics[k] for k in TABLE2_COLUMNS}}


def write_classification_table(rows: list[dict[str, Any]], stem: str | Path) -> tuple[Path, Path]:
    """Write ``stem.csv`` (fractions) and ``stem.md`` (percentages, 2 decimals, NaN as '-')."""
    from bench.report.markdown import markdown_table

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0].keys()) if rows else []
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    shown = [{k: (_pct(v) if k in TABLE2_COLUMNS else v) for k, v in r.items()} for r in rows]
    header = {k: (f"{k} %" if k in TABLE2_COLUMNS else k) for k in cols}
    md = markdown_table([{header[k]: v for k, v in r.items()} for r in shown])
    stem.with_suffix(".md").write_text(md)
    return stem.with_suffix(".csv"), stem.with_suffix(".md")


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * float(v):.2f}"


# ---------------------------------------------------------------------------------------------
# CLI


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model on one dataset and print the paper's Table 2 metrics")
    p.add_argument("--dataset", required=True, help="dataset key, e.g. synthetic-lidc_idri or ham10000")
    p.add_argument("--preset", default="quick", help="smoke, quick, paper, or a TOML file (default: quick)")
    p.add_argument("--model", default=None, help="model name (default: the preset's, ff_vgg19)")
    p.add_argument("--fold", type=int, default=0, help="cross-validation fold to train (default 0)")
    p.add_argument("--root", default=None, help="data root (default: BENCH_DATA_ROOT or ./datasets)")
    p.add_argument("--out", default=None, help="output folder (default reports/train/<dataset>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.set_defaults(handler=_cmd_train)


def _cmd_train(args) -> int:
    data = {"dataset": args.dataset}
    if args.root:
        data["root"] = args.root
    model = {"name": args.model} if args.model else {}
    cfg = load_run_config(args.preset, args.overrides, data=data, model=model)
    out = Path(args.out or Path("reports") / "train" / args.dataset)
    t0 = time.perf_counter()
    res = fit(cfg, fold=args.fold, out_dir=out)
    seconds = time.perf_counter() - t0
    print((out / "classification.md").read_text())
    print(f"trained {len(res.history)} epochs in {seconds:.1f} s on {res.device} "
          f"({res.images_per_second:.1f} training images/s); checkpoint: {res.checkpoint}")
    return 0
