"""Throughput of the localisation metrics (not a test; speed is measured, never asserted).

    .venv/bin/python -m bench.perf.metric_throughput [--n 10000] [--size 224] [--quantus 200]

Builds Grad-CAM-like maps (a random 7 x 7 map, ReLU, bilinearly upsampled: many exact zeros, so
plenty of ties) and elliptical lesion masks of 1-30 % of the image, then times each metric on all of
them, and optionally Quantus's equivalents on a subset (if Quantus is importable).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F


def make_maps(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sal = np.empty((n, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    yy, xx = np.mgrid[0:size, 0:size]
    for lo in range(0, n, 500):
        hi = min(n, lo + 500)
        coarse = torch.from_numpy(rng.normal(size=(hi - lo, 1, 7, 7)).astype(np.float32)).clamp_min(0)
        sal[lo:hi] = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()
        for i in range(lo, hi):
            cy, cx = rng.uniform(0.2, 0.8, 2) * size
            ry, rx = rng.uniform(0.05, 0.3, 2) * size
            masks[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return sal, masks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--quantus", type=int, default=0, help="also time Quantus on this many maps")
    ap.add_argument("--faithfulness", type=int, default=0, help="time deletion/insertion on this many images")
    args = ap.parse_args()
    if args.faithfulness:
        time_faithfulness(args.faithfulness)
        return

    from bench.metrics import METRICS, localisation_metrics, localisation_scores

    sal, masks = make_maps(args.n, args.size)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.n} maps of {args.size}x{args.size}; {platform.machine()}, {os.cpu_count()} CPUs, "
          f"worker threads {torch.get_num_threads()}, load average {load:.1f} at start")
    print(f"  {'metric':26s} {'wall s':>7s} {'cpu s':>7s}")
    wall_total = cpu_total = 0.0
    for name in localisation_metrics():
        fn = METRICS.get(name)
        t0, c0 = time.perf_counter(), time.process_time()
        v, d = fn(sal, masks, return_degenerate=True)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        wall_total, cpu_total = wall_total + dt, cpu_total + dc
        print(f"  {name:26s} {dt:7.2f} {dc:7.2f}  ({args.n / dt:7.0f} maps/s)  mean {np.nanmean(v):.4f}  "
              f"degenerate {d.sum()}")
    print(f"  {'five separate calls':26s} {wall_total:7.2f} {cpu_total:7.2f}")
    t0, c0 = time.perf_counter(), time.process_time()
    localisation_scores(sal, masks)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    print(f"  {'localisation_scores (all)':26s} {dt:7.2f} {dc:7.2f}")
    print(f"  load average {os.getloadavg()[0]:.1f} at end")
    if args.quantus:
        time_quantus(sal[: args.quantus], masks[: args.quantus], args.n)


def time_faithfulness(n_images: int, steps: int = 32, size: int = 64, batch_size: int = 64, reps: int = 3) -> None:
    """deletion_insertion on the quick FF-VGG19 vs the bare forward passes it needs, interleaved."""
    from bench.metrics import deletion_insertion
    from bench.models import create_model

    torch.manual_seed(0)
    model = create_model("ff_vgg19", 2, width=0.25, head_units=512).eval()
    images = torch.rand(n_images, 3, size, size)
    sal = torch.rand(n_images, size // 8, size // 8)  # a coarse map, upsampled inside
    targets = torch.randint(0, 2, (n_images,))
    n_fwd = 2 * (steps + 1) * n_images
    bare_inputs = images.repeat_interleave(2 * (steps + 1), dim=0)

    def bare() -> None:
        with torch.no_grad():
            for lo in range(0, n_fwd, batch_size):
                torch.softmax(model(bare_inputs[lo : lo + batch_size]), dim=1)

    def ours() -> None:
        deletion_insertion(model, images, sal, targets, steps=steps, batch_size=batch_size)

    ours()  # warm-up
    t_bare, t_ours = [], []
    for _ in range(reps):
        for fn, acc in ((bare, t_bare), (ours, t_ours)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    tb, to = min(t_bare), min(t_ours)
    print(f"deletion+insertion, steps={steps}, {n_images} images {size}px, batch {batch_size}, "
          f"{n_fwd} forward passes, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    print(f"  bare forwards      {tb:7.2f} s  ({n_fwd / tb:6.0f} passes/s)")
    print(f"  deletion_insertion {to:7.2f} s  ({n_images / to:6.2f} images/s)  ratio {to / tb:.3f}")


def time_quantus(sal: np.ndarray, masks: np.ndarray, n_full: int) -> None:
    try:
        import quantus
    except Exception as e:  # noqa: BLE001
        print(f"Quantus not importable ({e}); skipped")
        return
    n = len(sal)
    a = sal[:, None]
    s = masks[:, None].astype(float)
    x = np.zeros((n, 1, *sal.shape[1:]), dtype=np.float32)
    y = np.zeros(n, dtype=int)
    cases = {
        "pointing_game": quantus.PointingGame(disable_warnings=True, display_progressbar=False),
        "energy_pointing_game": quantus.RelevanceMassAccuracy(disable_warnings=True, display_progressbar=False),
        "relevance_rank_accuracy": quantus.RelevanceRankAccuracy(disable_warnings=True, display_progressbar=False),
        "auprc (quantus AUC: ROC)": quantus.AUC(disable_warnings=True, display_progressbar=False),
    }
    for name, metric in cases.items():
        t0, c0 = time.perf_counter(), time.process_time()
        metric(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s, batch_size=256)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print(f"  quantus {name:24s} {n} maps: wall {dt:6.2f} s, cpu {dc:6.2f} s -> per {n_full}: "
              f"wall {dt * n_full / n:7.1f} s, cpu {dc * n_full / n:7.1f} s")


if __name__ == "__main__":
    main()
