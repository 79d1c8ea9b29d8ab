"""How the cost of the ``quick`` suite's stages grows with test images, methods and image size.

The stage functions are timed directly, as the sweep calls them for one (dataset, model, seed):

- ``train``: :func:`bench.train.fit` with the suite's resolved configuration (estimated, see
  :meth:`Stages.train_seconds`);
- ``explain``: :func:`bench.attribution.explain` for every method of the suite, in batches of the
  suite's ``explain.batch_size``, on the N test images;
- ``score``: for every method's maps, each localisation metric as its own call (as the sweep's score
  jobs do) and :func:`bench.metrics.deletion_insertion` at the suite's steps and batch size;
- ``sanity``: :func:`bench.sweep.scoring.sanity` for each of the suite's ``sanity_methods``.

The model is the quick FF-VGG19 trained on one phantom (``synthetic-pet_ct`` by default) with the
suite's configuration for 2 epochs (the training stage's full time is estimated from them);
the same weights are used at every image size (FF-VGG19 pools globally, so it
runs at any size >= 32 px; the cost of a pass does not depend on the weights).

Devices: everything runs on the trained model's device (``train.device`` of the suite); inputs are
moved there, maps come back with ``.cpu()``, and on CUDA every timed span ends with a synchronisation
(kernels run asynchronously). ``tests/perf/test_device_placement.py`` runs this module on an emulated
accelerator, so a tensor left on the wrong device fails there without a GPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs kernels asynchronously); a no-op elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def slope(xs, ys) -> float:
    """Least-squares slope of log(y) on log(x)."""
    x, y = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])


class Stages:
    """The quick suite's stage functions on one dataset, with a model trained as the suite trains it
    (for fewer epochs: :meth:`train_seconds` estimates the full training's time from 1 and 2 epochs)."""

    def __init__(self, suite, dataset: str, root: str, log: Callable[[str], None] = print) -> None:
        from bench.sweep.loading import dataset_for, select_images
        from bench.train import ensure_prepared

        self.suite = suite
        self.log = log
        cfg = suite.run_config(dataset, suite.models[0], suite.seeds[0])
        self.cfg = replace(cfg, data=replace(cfg.data, root=root))
        t0 = time.perf_counter()
        ensure_prepared(self.cfg)
        self.prepare_s = time.perf_counter() - t0
        self.data, _ = dataset_for(self.cfg)
        self.epochs = self.cfg.train.epochs
        self.train_s, res = self.train_seconds(self.data.images.shape[-1], keep=True)
        self.model = res.model.eval()
        self.device = next(self.model.parameters()).device
        self.train_result = res
        n_train = len(res.split.train)
        self.steps_per_epoch = math.ceil(n_train / self.cfg.train.batch_size)
        self.train_steps = self.steps_per_epoch * self.epochs
        index = {i: n for n, i in enumerate(self.data.ids)}
        self.test = select_images(self.data, index, res.test_ids, 10**9)
        self.methods = list(suite.methods)
        log(f"  {dataset}: prepared in {self.prepare_s:.0f} s; training estimated at {self.train_s:.1f} s "
            f"({self.epochs} epochs of {self.steps_per_epoch} steps, no early stop); {len(self.test)} test "
            "images with masks")

    # ---------------------------------------------------------------------------------------------

    def inputs(self, n: int, size: int) -> tuple[torch.Tensor, np.ndarray, list[int]]:
        """N test images (cycled if the test split is smaller) on the model's device, their masks (numpy)
        and targets, at ``size`` px."""
        idx = [self.test[i % len(self.test)] for i in range(n)]
        x = self.data.images[idx]
        m = self.data.masks[idx]
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            m = F.interpolate(m[:, None].float(), size=(size, size), mode="nearest")[:, 0] > 0.5
        return x.to(self.device), m.numpy(), [int(self.data.labels[i]) for i in idx]

    def explain_and_score(self, n: int, size: int, methods=None) -> dict[str, dict[str, float]]:
        """Seconds per method: ``{method: {"explain": s, "score": s}}`` on N images at ``size``."""
        from bench.attribution import METHODS, explain
        from bench.metrics import METRICS, deletion_insertion, localisation_metrics

        ex, sc = self.suite.explain, self.suite.score
        x, masks, targets = self.inputs(n, size)
        tg = torch.as_tensor(targets, device=self.device)
        out: dict[str, dict[str, float]] = {}
        for method in self.methods if methods is None else methods:
            opts = dict(ex.options.get(method, {}))
            if METHODS.meta(method).get("stochastic") and "seed" not in opts:
                opts["seed"] = ex.seed
            t0 = time.perf_counter()
            parts = [explain(self.model, x[s : s + ex.batch_size], tg[s : s + ex.batch_size], method,
                             layer=ex.layer or None, **opts) for s in range(0, n, ex.batch_size)]
            maps = torch.cat(parts).cpu().numpy()  # waits for the device: explain's time includes the copy
            t_explain = time.perf_counter() - t0
            t0 = time.perf_counter()
            for metric in localisation_metrics():
                options = {"pointing_game": {"tolerance": sc.pointing_tolerance},
                           "iou": {"threshold": sc.iou_threshold}}.get(metric, {})
                METRICS.get(metric)(maps, masks, return_degenerate=True, **options)
            deletion_insertion(self.model, x, torch.from_numpy(maps).to(self.device), tg, steps=sc.deletion_steps,
                               batch_size=sc.deletion_batch_size)
            synchronize(self.device)
            out[method] = {"explain": t_explain, "score": time.perf_counter() - t0}
        return out

    def sanity(self, size: int, n_images: int | None = None, methods=None) -> float:
        """Seconds of the sanity stage (every sanity method, or ``methods``) on ``n_images`` (default: the
        suite's)."""
        from bench.sweep import scoring

        n = n_images or self.suite.score.sanity_images
        x, _, targets = self.inputs(n, size)
        t0 = time.perf_counter()
        for method in self.suite.score.sanity_methods if methods is None else methods:
            scoring.sanity(self.model, x, targets, method, layer=self.suite.explain.layer or None,
                           options=dict(self.suite.explain.options.get(method, {})), seed=self.suite.explain.seed)
        synchronize(self.device)
        return time.perf_counter() - t0

    def cam_channels(self, size: int) -> int:
        """Channels of the model's default CAM layer (Score-CAM's forward passes per image, less one)."""
        from bench.attribution.base import activations

        _, a = activations(self.model, self.inputs(1, size)[0], self.model.default_cam_layer)
        return int(a.shape[1])

    def train_seconds(self, size: int, keep: bool = False):
        """Estimated seconds of the suite's training at ``size`` px: ``fit`` for 2 epochs (same data, at
        that size), plus (epochs - 2) x the second epoch's training-loop seconds: all the suite's epochs
        without an early stop (an upper bound), not counting the validation pass of the extra epochs
        (a forward pass over the validation split, a few % of an epoch). With ``keep``, also the
        ``TrainResult``."""
        from bench.train import fit

        data = self.data if size == self.data.images.shape[-1] else _resized(self.data, size)
        cfg = replace(self.cfg, data=replace(self.cfg.data, image_size=size),
                      train=replace(self.cfg.train, epochs=2, patience=3))
        t0 = time.perf_counter()
        res = fit(cfg, data=data, progress=False)
        t = time.perf_counter() - t0
        est = t + max(0, self.epochs - len(res.history)) * res.history[-1]["seconds"]
        return (est, res) if keep else est


def _resized(data, size: int):
    """A shallow copy of an ImageSet with images and masks resized (what load_dataset(image_size=size) gives)."""
    import copy

    d = copy.copy(data)
    d.images = F.interpolate(data.images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    d.masks = F.interpolate(data.masks[:, None].float(), size=(size, size), mode="nearest")[:, 0] > 0.5
    return d


def measure(
    *,
    dataset: str = "synthetic-pet_ct",
    root: str,
    n_images: tuple[int, ...] = (2, 4, 8),
    sizes: tuple[int, ...] = (48, 64, 96),
    n_at_size: int = 4,
    method_counts: tuple[int, ...] = (3, 6, 12, 18),
    sanity_images: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Any], Stages]:
    """Stage seconds vs test images, methods and image size for the quick suite (one dataset), and
    the :class:`Stages` (with the trained model)."""
    from bench.sweep.suite import load_suite

    if n_at_size not in n_images:
        raise ValueError(f"n_at_size ({n_at_size}) must be one of n_images {n_images}")
    suite = load_suite("quick")
    st = Stages(suite, dataset, root, log)
    base_size = st.cfg.data.image_size
    res: dict[str, Any] = {
        "dataset": dataset, "methods": st.methods, "base_size": base_size, "train_s": st.train_s,
        "train_steps": st.train_steps, "prepare_s": st.prepare_s, "n_test": len(st.test),
        "suite": {"max_images": suite.explain.max_images, "deletion_steps": suite.score.deletion_steps,
                  "deletion_batch_size": suite.score.deletion_batch_size,
                  "sanity_methods": list(suite.score.sanity_methods), "sanity_images": suite.score.sanity_images,
                  "datasets": len(suite.datasets)},
    }
    # Method by method, every point of a method back to back (load from other processes drifts; this
    # keeps a method's points close in time). A method is first run untimed at each image size: the
    # first call at a new shape pays for oneDNN's kernel selection, which the suite pays once per
    # process, not per image.
    other_sizes = [s for s in sizes if s != base_size]
    by_n: dict[int, dict] = {n: {} for n in n_images}
    by_size_m: dict[int, dict] = {s: {} for s in other_sizes}
    for method in st.methods:
        st.explain_and_score(min(n_images), base_size, [method])  # warm-up
        for n in n_images:
            by_n[n].update(st.explain_and_score(n, base_size, [method]))
        for s in other_sizes:
            st.explain_and_score(n_at_size, s, [method])  # warm-up
            by_size_m[s].update(st.explain_and_score(n_at_size, s, [method]))
        log(f"  {method}: explain " + ", ".join(f"N={n} {by_n[n][method]['explain']:.2f} s" for n in n_images)
            + "; " + ", ".join(f"{s} px {by_size_m[s][method]['explain']:.2f} s" for s in other_sizes))
    for n in n_images:
        per = by_n[n]
        log(f"  N={n}: explain {sum(v['explain'] for v in per.values()):.1f} s, "
            f"score {sum(v['score'] for v in per.values()):.1f} s")
    res["by_images"] = {str(k): v for k, v in by_n.items()}
    # sanity (independent of N and of the suite's methods), each method at every size back to back
    res["sanity_images_timed"] = sanity_images or suite.score.sanity_images
    sanity_by_size = {s: 0.0 for s in sizes}
    for method in suite.score.sanity_methods:
        for s in sizes:
            sanity_by_size[s] += st.sanity(s, sanity_images, [method])
    res["sanity_s"] = sanity_by_size[base_size]
    log("  sanity: " + ", ".join(f"{s} px {v:.1f} s" for s, v in sanity_by_size.items()))
    # vs image size
    by_size = {}
    for s in sizes:
        per = by_n[n_at_size] if s == base_size else by_size_m[s]
        # every size re-timed here, the base size too: the estimate made first in the process (Stages)
        # paid for oneDNN's first-call kernel selection and measured up to 3x the warm time
        step = st.train_seconds(s)
        by_size[s] = {"methods": per, "train_s": step, "sanity_s": sanity_by_size[s]}
        log(f"  size {s}: explain {sum(v['explain'] for v in per.values()):.1f} s, "
            f"score {sum(v['score'] for v in per.values()):.1f} s, train {step:.1f} s (estimated), "
            f"sanity {sanity_by_size[s]:.1f} s")
    res["by_size"] = {str(k): v for k, v in by_size.items()}
    res["train_s_first"], res["train_s"] = res["train_s"], by_size[base_size]["train_s"]
    res["n_at_size"] = n_at_size
    res["cam_channels"] = st.cam_channels(base_size)
    res["method_options"] = {m: dict(suite.explain.options.get(m, {})) for m in st.methods}
    res["method_counts"] = sorted({m for m in method_counts if m < len(st.methods)} | {len(st.methods)})
    return res, st


def stage_table(res: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Stage seconds per axis: ``{axis: {"x": [...], stage: [...], "total": [...]}}``.

    Per dataset of the suite: train (constant in N and methods), explain, score, sanity (constant in N
    and methods). ``train`` vs size is estimated by :meth:`Stages.train_seconds` at every size.
    """
    train_s, sanity_s = res["train_s"], res["sanity_s"]
    scale_sanity = res["suite"]["sanity_images"] / res["sanity_images_timed"]
    out: dict[str, dict[str, list[float]]] = {}
    ns = sorted(int(k) for k in res["by_images"])
    rows = {"x": ns, "train": [], "explain": [], "score": [], "sanity": []}
    for n in ns:
        per = res["by_images"][str(n)]
        rows["train"].append(train_s)
        rows["explain"].append(sum(v["explain"] for v in per.values()))
        rows["score"].append(sum(v["score"] for v in per.values()))
        rows["sanity"].append(sanity_s * scale_sanity)
    out["images"] = rows
    n_ref = max(ns)
    per = res["by_images"][str(n_ref)]
    ms = res["method_counts"]
    rows = {"x": ms, "train": [], "explain": [], "score": [], "sanity": []}
    for m in ms:
        chosen = res["methods"][:m]
        rows["train"].append(train_s)
        rows["explain"].append(sum(per[k]["explain"] for k in chosen))
        rows["score"].append(sum(per[k]["score"] for k in chosen))
        rows["sanity"].append(sanity_s * scale_sanity)
    out["methods"] = rows
    sizes = sorted(int(k) for k in res["by_size"])
    rows = {"x": sizes, "train": [], "explain": [], "score": [], "sanity": []}
    for s in sizes:
        v = res["by_size"][str(s)]
        rows["train"].append(v["train_s"])
        rows["explain"].append(sum(p["explain"] for p in v["methods"].values()))
        rows["score"].append(sum(p["score"] for p in v["methods"].values()))
        rows["sanity"].append(v["sanity_s"] * scale_sanity)
    out["size"] = rows
    for rows in out.values():
        stages = ("train", "explain", "score", "sanity")
        rows["total"] = [sum(rows[k][i] for k in stages) for i in range(len(rows["x"]))]
    return out


def plot(table: dict[str, dict[str, list[float]]], path, labels: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(5 * len(table), 4))
    for ax, (axis, rows) in zip(np.atleast_1d(axes), table.items()):
        for stage in ("train", "explain", "score", "sanity", "total"):
            ys = rows[stage]
            ax.loglog(rows["x"], ys, marker="o", ls="-" if stage == "total" else "--",
                      label=f"{stage} (slope {slope(rows['x'], ys):.2f})")
        ax.set_xlabel(labels.get(axis, axis))
        ax.set_ylabel("seconds per dataset")
        ax.set_xticks(rows["x"])
        ax.set_xticklabels([str(v) for v in rows["x"]])
        ax.minorticks_off()
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
