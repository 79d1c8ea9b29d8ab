"""Benchmarks (pytest-benchmark), run by ``make perf`` only (``make test`` ignores this folder).

Every benchmark pins the model, the image size, the batch size, torch's threads (2) and the seeds
(0); ``extra_info`` records them with the time per image. The side-by-side comparison with the peers,
with ratios measured round by round in one process, is ``python -m bench.perf.report``.
"""

from __future__ import annotations

import pytest
import torch

from bench.perf import tasks as T
from bench.perf.timing import pin

THREADS = 2
SEED = 0


@pytest.fixture(autouse=True)
def _pinned():
    pin(THREADS, SEED)
    yield


@pytest.fixture(scope="session")
def quick_model():
    pin(THREADS, SEED)
    return T.quick_model(SEED)


@pytest.fixture(scope="session")
def full_model():
    pin(THREADS, SEED)
    return T.full_model(SEED)


@pytest.fixture(scope="session")
def quick_inputs():
    return T.random_inputs(32, 64, SEED)


@pytest.fixture(scope="session")
def full_inputs():
    return T.random_inputs(2, 224, SEED)


@pytest.fixture
def timed(benchmark):
    """``timed(fn, images, rounds=, **info)``: benchmark ``fn`` (one warm-up, ``rounds`` timed calls)
    and record the settings and milliseconds per image in ``extra_info``."""

    def run(fn, images: int, *, rounds: int = 3, warmup: int = 1, **info):
        benchmark.extra_info.update({"images": images, "threads": torch.get_num_threads(), "seed": SEED, **info})
        out = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup)
        stats = getattr(benchmark, "stats", None)
        if stats is not None and getattr(stats, "stats", None) is not None:
            benchmark.extra_info["ms_per_image_min"] = 1000 * stats.stats.min / images
            benchmark.extra_info["ms_per_image_median"] = 1000 * stats.stats.median / images
        return out

    return run
