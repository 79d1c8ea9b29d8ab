"""Throughput of the localisation metrics (not a test; speed is measured, never asserted).

    .venv/bin/python -m bench.metrics._benchmark [--n 10000] [--size 224] [--quantus 200]

Builds Grad-CAM-like maps (a random 7 x 7 map, ReLU, bilinearly upsampled: many exact zeros, so
plenty of ties) and elliptical lesion masks of 1-30 % of the image, then times each metric on all of
them, and optionally Quantus's equivalents on a subset (if Quantus is importable).
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args()

    from bench.metrics import METRICS, localisation_metrics

    sal, masks = make_maps(args.n, args.size)
    print(f"{args.n} maps of {args.size}x{args.size}; {platform.processor() or platform.machine()}, "
          f"torch threads {torch.get_num_threads()}")
    total = 0.0
    for name in localisation_metrics():
        fn = METRICS.get(name)
        t0 = time.perf_counter()
        v, d = fn(sal, masks, return_degenerate=True)
        dt = time.perf_counter() - t0
        total += dt
        print(f"  {name:26s} {dt:7.2f} s  ({args.n / dt:9.0f} maps/s)  mean {np.nanmean(v):.4f}  degenerate {d.sum()}")
    print(f"  {'all five':26s} {total:7.2f} s")
    if args.quantus:
        time_quantus(sal[: args.quantus], masks[: args.quantus], args.n)


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
        "auprc": quantus.AUC(disable_warnings=True, display_progressbar=False),  # ROC AUC: its nearest
    }
    for name, metric in cases.items():
        t0 = time.perf_counter()
        metric(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s, batch_size=256)
        dt = time.perf_counter() - t0
        print(f"  quantus {name:18s} {dt:7.2f} s for {n} maps -> {dt * n_full / n:8.1f} s per {n_full}")


if __name__ == "__main__":
    main()
