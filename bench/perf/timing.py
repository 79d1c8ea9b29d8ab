"""Timing helpers for the performance report and the benchmarks: interleaved clocks, machine facts.

The machine these numbers come from is often shared, so absolute times move with other people's load.
:func:`interleave` runs every contender once per round, in a rotating order, so that a change of
load hits all of them alike; the ratio of two contenders is taken round by round (adjacent in time)
and its median reported. Absolute times are reported as the *minimum* over rounds (the least
disturbed run) beside the median.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return math.nan


def pin(threads: int = 2, seed: int = 0) -> None:
    """Fix torch's intra-op threads and the global seeds (what every benchmark and the report start with)."""
    torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass
    os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's ScoreCAM draws progress bars


@dataclass
class Timings:
    """Seconds per call of each contender, round by round (``times[name][r]``)."""

    times: dict[str, list[float]]
    load_before: float = math.nan
    load_after: float = math.nan
    notes: dict[str, Any] = field(default_factory=dict)

    def best(self, name: str) -> float:
        return min(self.times[name])

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratio(self, num: str, den: str) -> float:
        """Median over rounds of ``time[num] / time[den]`` measured in the same round."""
        return statistics.median(a / b for a, b in zip(self.times[num], self.times[den]))

    def ratio_spread(self, num: str, den: str) -> tuple[float, float]:
        """(min, max) over rounds of the per-round ratio."""
        r = [a / b for a, b in zip(self.times[num], self.times[den])]
        return min(r), max(r)

    @property
    def rounds(self) -> int:
        return min((len(v) for v in self.times.values()), default=0)

    def as_dict(self) -> dict[str, Any]:
        return {"times": self.times, "load_before": self.load_before, "load_after": self.load_after,
                "notes": self.notes}


def interleave(
    fns: dict[str, Callable[[], Any]],
    *,
    rounds: int = 5,
    min_rounds: int = 2,
    budget_s: float | None = None,
    warmup: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Timings:
    """Time each of ``fns`` once per round for ``rounds`` rounds, rotating the order every round.

    ``warmup`` runs every function once untimed first (first calls pay for allocations and oneDNN
    kernel selection); the warm-up round's duration also decides the number of rounds when
    ``budget_s`` is given: as many as fit in the budget, between ``min_rounds`` and ``rounds``.
    """
    names = list(fns)
    load0 = load_average()
    if warmup:
        t0 = time.perf_counter()
        for n in names:
            fns[n]()
        per_round = time.perf_counter() - t0
        if budget_s is not None and per_round > 0:
            rounds = max(min_rounds, min(rounds, int(budget_s // per_round)))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
        if progress:
            progress(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names))
    return Timings(times, load0, load_average())


def matmul_peak(n: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """Best achieved GFLOP/s of an ``n x n`` matrix multiply on this machine (``2 n^3`` FLOPs)."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand((n, n), generator=g, dtype=torch.float32).to(dtype)
    b = torch.rand((n, n), generator=g, dtype=torch.float32).to(dtype)
    a @ b  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matrix multiplies and convolutions (forward and backward) that ``fn`` runs, by
    torch's FLOP formulas (``torch.utils.flop_counter.flop_registry``; elementwise work is not counted).

    A plain dispatch mode rather than ``FlopCounterMode``, whose module tracking breaks
    ``torch.autograd.grad`` with respect to a leaf input (torch 2.14)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    total = [0]

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                total[0] += int(formula(*args, **kwargs, out_val=out))
            return out

    with _Count():
        fn()
    return total[0]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return "not installed"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numpy as np

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "peers": {p: package_version(p) for p in ("captum", "torchcam", "grad-cam", "quantus")},
    }
