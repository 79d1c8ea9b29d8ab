"""The training loop: Adam with early stopping on the validation loss, then the test-split evaluation.

``fit(cfg)`` loads the dataset named in ``cfg.data`` (phantoms are generated on demand), splits it
(stratified, grouped), trains with Adam and early stopping on validation loss, evaluates the test
split with :func:`bench.metrics.classification_report`, and (with ``out_dir``) writes a checkpoint.
Seeded: on the CPU the same seed gives bit-identical weights and metrics (the order of the random
draws, optimiser steps and scheduler steps below is part of that promise); on CUDA too, on one GPU model,
with ``train.deterministic`` (:func:`bench.device.set_deterministic`, the default). ``train.autocast``
("bf16" | "fp16", CUDA only) runs the forward passes and the loss under ``torch.autocast`` (fp16 with a
``torch.amp.GradScaler``); the weights and the optimiser stay float32.

Images come from the dataset's decoded cache, one batch at a time (:mod:`bench.data.batches`: a DataLoader with
``data.workers`` processes, pinned memory on CUDA), as uint8 made float on the device; the batch order is the
seeded permutation below, so the weights do not depend on the number of workers.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bench.config import RunConfig, TrainConfig
from bench.data.arrays import take_rows, to_float_images
from bench.data.batches import BatchList, ImageRows, batch_loader, ordered_batches
from bench.device import autocast_dtype, resolve_device, set_deterministic, set_threads
from bench.metrics.classification import classification_report
from bench.models.predict import predict_proba
from bench.train.augment import augment_batch
from bench.train.checkpoint import build_model, save_checkpoint
from bench.train.data import load_training_data, resolve_split
from bench.train.result import TrainResult


def lr_scheduler(opt: torch.optim.Optimizer, train: TrainConfig, *, steps_per_epoch: int):
    """The per-step learning-rate schedule ``train.lr_schedule`` names, or None for a constant rate."""
    if train.lr_schedule == "constant":
        return None
    if train.lr_schedule == "cosine":
        total = train.epochs * steps_per_epoch
        if train.max_steps:
            total = min(total, train.max_steps)
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    raise ValueError(f"train.lr_schedule = {train.lr_schedule!r}: use 'constant' or 'cosine'")


def _autocast(device, dtype: torch.dtype | None):
    """``torch.autocast`` on ``device`` in ``dtype``, or a no-op context for ``None`` (float32)."""
    return nullcontext() if dtype is None else torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def validation_loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device, batch_size: int, amp=None
) -> tuple[float, float]:
    """``(cross-entropy, accuracy)`` of ``model`` on ``images`` (a float tensor ``(N, 3, H, W)`` or an image set's
    :class:`bench.data.arrays.ImageArray`) and ``labels`` (N,): batches are moved to ``device`` (made float
    there) and evaluated without gradients, under autocast in ``amp`` if given; both NaN when there are
    none."""
    with _autocast(device, amp):
        probs = predict_proba(model, images, batch_size=batch_size, device=device)
    if len(probs) == 0:
        return float("nan"), float("nan")
    p = torch.from_numpy(probs).clamp_min(1e-12)
    loss = F.nll_loss(p.log(), labels).item()
    return loss, float((p.argmax(1) == labels).float().mean())


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
        out_dir: if given, ``checkpoint.pt`` is written there (``bench train`` adds the Table-2 table,
            :func:`bench.report.classification.write_classification_table`).
        progress: show a progress bar per epoch (``None`` = only on a terminal).

    Raises:
        RuntimeError: the loss or the model's outputs became NaN or infinite (the message names the
            epoch, and the step where the training loss did).
    """
    set_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    amp = autocast_dtype(cfg.train.autocast, device)  # refuses bf16/fp16 off CUDA, before any work
    if device.type == "cuda":
        set_deterministic(cfg.train.deterministic)
    data = data if data is not None else load_training_data(cfg)
    split = resolve_split(data, cfg, fold)
    class_names = list(data.class_names)
    labels = torch.as_tensor(np.asarray(data.labels), dtype=torch.long)
    if len(split.train) == 0 or len(split.test) == 0:
        raise ValueError(
            f"{cfg.data.dataset}: empty train or test split ({len(split.train)} / {len(split.test)} images)"
        )

    run = _Run.start(cfg, len(class_names), len(split.train), device, amp)
    history = run.train(data.images, labels, split.train, split.val,
                        show=sys.stderr.isatty() if progress is None else progress)
    model = run.model
    y_test = labels[split.test].numpy()
    probs, metrics = _evaluate_test(model, data, take_rows(data.images, split.test), y_test, cfg, device, amp)
    result = TrainResult(
        model=model, config=cfg, class_names=class_names, metrics=metrics, split=split,
        test_ids=[data.ids[i] for i in split.test], test_labels=y_test, test_probs=probs,
        history=history, device=str(device),
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result.checkpoint = save_checkpoint(out / "checkpoint.pt", result)
    return result


def _evaluate_test(model: nn.Module, data, x_test: torch.Tensor, y_test: np.ndarray, cfg: RunConfig, device,
                   amp=None):
    """The trained model's test probabilities ``(N, C)`` and :func:`classification_report` of them."""
    with _autocast(device, amp):
        probs = predict_proba(model, x_test, batch_size=4 * cfg.train.batch_size, device=device)
    if not np.isfinite(probs).all():
        raise RuntimeError(
            f"training diverged on {cfg.data.dataset}: the model's test predictions are not finite; "
            f"lower train.lr (now {cfg.train.lr})"
        )
    class_names = list(data.class_names)
    positive = getattr(getattr(data, "card", None), "positive", "") or None
    metrics = classification_report(y_test, probs, positive=positive if len(class_names) == 2 else None,
                                    class_names=class_names)
    return probs, metrics


class _Run:
    """One training run's model, optimiser, scheduler and random generator, and its epochs."""

    def __init__(self, cfg: RunConfig, model: nn.Module, opt, sched, gen: torch.Generator, device,
                 amp: torch.dtype | None = None) -> None:
        self.cfg, self.model, self.opt, self.sched, self.gen, self.device = cfg, model, opt, sched, gen, device
        self.amp = amp  # autocast dtype, None = float32
        # fp16 needs loss scaling (its gradients underflow); bf16 has float32's exponent range and does not
        self.scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
        self.steps = 0  # optimiser steps so far, over all epochs

    @classmethod
    def start(cls, cfg: RunConfig, num_classes: int, n_train: int, device, amp: torch.dtype | None = None) -> _Run:
        """Seed torch, build the model, Adam, the generator of the batch order and the lr schedule (in this order)."""
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg, num_classes).to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        gen = torch.Generator().manual_seed(cfg.train.seed)
        sched = lr_scheduler(opt, cfg.train, steps_per_epoch=-(-n_train // cfg.train.batch_size))
        return cls(cfg, model, opt, sched, gen, device, amp)

    def train(self, images, labels: torch.Tensor, train_rows, val_rows, *, show: bool) -> list[dict[str, float]]:
        """Epochs until ``train.epochs``, early stopping or ``train.max_steps``, on the rows ``train_rows`` of
        ``images`` (an image set's images; ``labels`` (N,) int64 of all rows), validated on ``val_rows``; the
        model ends with the best epoch's weights, in eval mode. Returns the history (one dict per epoch)."""
        cfg, bs = self.cfg, self.cfg.train.batch_size
        best = _BestWeights(cfg.train.patience, cfg.train.min_epochs)
        history: list[dict[str, float]] = []
        x_val, y_val = take_rows(images, val_rows), labels[val_rows]
        batches = BatchList()
        loader = batch_loader(ImageRows(images), batches, workers=cfg.data.workers,
                              pin_memory=self.device.type == "cuda")
        for epoch in range(cfg.train.epochs):
            seen, loss_sum, seconds = self.epoch(loader, batches, train_rows, labels, epoch, show=show)
            val_loss, val_acc = validation_loss(self.model, x_val, y_val, self.device, 4 * bs, self.amp)
            if len(x_val) and not math.isfinite(val_loss):  # a finite training loss, then weights blown up
                raise RuntimeError(
                    f"training diverged on {cfg.data.dataset}: the model's outputs are not finite after epoch "
                    f"{epoch + 1} (validation loss {val_loss}); lower train.lr (now {cfg.train.lr})"
                )
            history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "val_loss": val_loss,
                            "val_accuracy": val_acc, "seconds": seconds,
                            "train_images_per_s": seen / max(seconds, 1e-9)})
            monitor = val_loss if math.isfinite(val_loss) else history[-1]["train_loss"]
            if best.stop_after(epoch, monitor, self.model):
                break
            if self._out_of_steps():
                break
        best.restore(self.model)
        self.model.eval()
        return history

    def epoch(self, loader, batches: BatchList, train_rows, labels: torch.Tensor, epoch: int, *,
              show: bool) -> tuple[int, float, float]:
        """One pass over the training rows in a fresh random order, read by ``loader`` (its batch list
        ``batches`` is set here): ``(images seen, summed loss, seconds)``."""
        cfg, model, bs = self.cfg, self.model, self.cfg.train.batch_size
        model.train()
        order = torch.randperm(len(train_rows), generator=self.gen)
        if len(order) % bs == 1:  # BatchNorm cannot train on a batch of one
            order = order[:-1]
        batches.batches = ordered_batches(train_rows, order, bs)
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        bar = tqdm(loader, total=len(batches), desc=f"{cfg.data.dataset} epoch {epoch + 1}/{cfg.train.epochs}",
                   disable=not show, leave=False, unit="batch")
        for batch in bar:
            rows = batch["rows"]
            loss = self._step(to_float_images(batch["images"], self.device), labels[rows], epoch)
            seen += len(rows)
            loss_sum += loss.item() * len(rows)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if self._out_of_steps():
                break
        return seen, loss_sum, time.perf_counter() - t0

    def _step(self, xb: torch.Tensor, yb: torch.Tensor, epoch: int) -> torch.Tensor:
        """One optimiser (and scheduler) step on a batch (float, on the device; augmented first if
        ``data.augment``); its loss."""
        cfg = self.cfg
        if cfg.data.augment:
            xb, _ = augment_batch(xb, None, self.gen)
        xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
        self.opt.zero_grad(set_to_none=True)
        with _autocast(self.device, self.amp):
            loss = F.cross_entropy(self.model(xb), yb)
        if not torch.isfinite(loss):
            raise RuntimeError(
                f"training diverged on {cfg.data.dataset}: loss {loss.item()} at epoch {epoch + 1}, "
                f"step {self.steps + 1}; lower train.lr (now {cfg.train.lr})"
                + (f" or use train.autocast='bf16' or 'off' (now {cfg.train.autocast!r})" if self.amp else "")
            )
        if self.scaler is None:
            loss.backward()
            self.opt.step()
        else:  # fp16: scaled backward; a step whose gradients overflowed is skipped and the scale lowered
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        if self.sched is not None:
            self.sched.step()
        self.steps += 1
        return loss

    def _out_of_steps(self) -> bool:
        return bool(self.cfg.train.max_steps and self.steps >= self.cfg.train.max_steps)


class _BestWeights:
    """Early stopping: keeps the weights of the epoch with the lowest monitored loss so far."""

    def __init__(self, patience: int, min_epochs: int) -> None:
        self.patience, self.min_epochs = patience, min_epochs
        self.loss, self.state, self.bad_epochs = math.inf, None, 0

    def stop_after(self, epoch: int, monitor: float, model: nn.Module) -> bool:
        """Record epoch ``epoch``'s loss (copying the weights if it is the best); True: stop training."""
        if monitor < self.loss - 1e-6:
            self.loss, self.bad_epochs = monitor, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.bad_epochs += 1
        return bool(self.patience and self.bad_epochs >= self.patience and epoch + 1 >= self.min_epochs)

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's weights into ``model`` (nothing if no epoch was recorded)."""
        if self.state is not None:
            model.load_state_dict(self.state)


__all__ = ["fit", "lr_scheduler", "validation_loss"]
