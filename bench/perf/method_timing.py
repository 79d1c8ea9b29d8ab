"""Wall-clock cost of each attribution method, per image, and Grad-CAM's ratio to its cost floor.

The floor is one forward plus one backward pass of the model to the input (eval mode, gradient of
the summed target logits with respect to the images) — what any gradient method must at least pay.
Run ``python -m bench.perf.method_timing`` for the quick FF-VGG19 (width 0.25, head 512, 64 px,
batch 32, untrained: the cost does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch


def _clock(fn: Callable[[], Any], device: torch.device, repeats: int, *, warmup: bool = True) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` (after one untimed warm-up call)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_methods(
    methods: Sequence[str] | None = None,
    *,
    batch: int = 32,
    size: int = 64,
    width: float = 0.25,
    head_units: int = 512,
    device: str = "cpu",
    repeats: int = 3,
    slow_repeats: int = 1,
    slow_seconds: float = 5.0,
    options: dict[str, dict] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Milliseconds per image of each method on an FF-VGG19 built with ``width``/``head_units``.

    Each method is timed ``repeats`` times, alternating with the floor (forward + backward to the
    input), and its ratio is taken against the floor timed beside it, so that load from other
    processes affects both alike. A method whose first (warm-up) call takes over ``slow_seconds`` is
    timed ``slow_repeats`` times instead. ``options`` maps a method to non-default options.

    Returns a dict: ``setup`` (model, batch, size, device, threads, torch version),
    ``forward_ms`` and ``forward_backward_ms`` (per image), ``methods`` (name -> ms per image),
    ``ratio_to_forward_backward`` (name -> method time / floor) and ``grad_cam_ratio``.
    """
    from bench.attribution import available_methods, explain
    from bench.device import resolve_device

    dev = resolve_device(device)
    model, images, targets = _random_setup(dev, batch=batch, size=size, width=width, head_units=head_units,
                                           seed=seed)
    names = list(methods) if methods is not None else available_methods()
    options = options or {}

    def forward() -> None:
        with torch.no_grad():
            model(images)

    def forward_backward() -> None:
        x = images.detach().requires_grad_(True)
        score = model(x).gather(1, targets[:, None]).sum()
        torch.autograd.grad(score, x)

    fwd = _clock(forward, dev, repeats)
    _clock(forward_backward, dev, 1)  # warm-up
    per_method: dict[str, float] = {}
    ratios: dict[str, float] = {}
    floors: list[float] = []
    for name in names:
        opts = options.get(name, {})
        call = lambda: explain(model, images, targets, name, **opts)  # noqa: E731
        pair_method, pair_floor = _beside_floor(call, forward_backward, dev, repeats=repeats,
                                                slow_repeats=slow_repeats, slow_seconds=slow_seconds)
        floors += pair_floor
        per_method[name] = statistics.median(pair_method)
        ratios[name] = per_method[name] / statistics.median(pair_floor)
        if progress:
            progress(f"{name}: {per_method[name] * 1000 / batch:.2f} ms/image, x{ratios[name]:.2f} of forward+backward")
    floor = statistics.median(floors) if floors else _clock(forward_backward, dev, repeats)
    to_ms = 1000.0 / batch
    return {
        "setup": {
            "model": f"ff_vgg19 width={width} head_units={head_units} (untrained)",
            "batch": batch,
            "size": size,
            "device": str(dev),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "forward_ms": fwd * to_ms,
        "forward_backward_ms": floor * to_ms,
        "methods": {k: v * to_ms for k, v in per_method.items()},
        "ratio_to_forward_backward": ratios,
        "grad_cam_ratio": ratios.get("grad_cam"),
    }


def _random_setup(
    dev: torch.device, *, batch: int, size: int, width: float, head_units: int, seed: int
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """An untrained FF-VGG19 (eval mode) and ``batch`` random images and binary targets from ``seed``."""
    from bench.models import create_model

    g = torch.Generator().manual_seed(seed)
    model = create_model("ff_vgg19", 2, width=width, head_units=head_units).to(dev).eval()
    images = torch.rand((batch, 3, size, size), generator=g).to(dev)
    targets = torch.randint(0, 2, (batch,), generator=g).to(dev)
    return model, images, targets


def _beside_floor(
    call: Callable[[], Any], floor: Callable[[], Any], device: torch.device, *, repeats: int, slow_repeats: int,
    slow_seconds: float,
) -> tuple[list[float], list[float]]:
    """Seconds of ``call`` and of ``floor``, timed alternately (so that load from other processes hits
    both alike): ``repeats`` pairs, or ``slow_repeats`` where the untimed warm-up call of ``call`` took
    over ``slow_seconds``. Returns (call's times, floor's times)."""
    t0 = time.perf_counter()
    call()  # warm-up, also decides how often to repeat
    first = time.perf_counter() - t0
    n = slow_repeats if first > slow_seconds else repeats
    pair_floor, pair_method = [], []
    for _ in range(n):
        pair_floor.append(_clock(floor, device, 1, warmup=False))
        pair_method.append(_clock(call, device, 1, warmup=False))
    return pair_method, pair_floor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="", help="comma-separated names (default: all)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m] or None
    result = time_methods(methods, batch=args.batch, size=args.size, device=args.device, repeats=args.repeats,
                          progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
