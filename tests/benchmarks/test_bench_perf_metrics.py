"""Deletion/insertion and the localisation metrics: ours, the peers (where installed), the floor."""

from __future__ import annotations

import numpy as np
import pytest

from bench.perf import tasks as T

QUICK = {"model": "ff_vgg19 width=0.25 head_units=512 (untrained)", "size": 64}
FULL = {"model": "ff_vgg19 width=1 (untrained)", "size": 224}


@pytest.mark.benchmark(group="deletion+insertion quick 64px, 16 images, 16 steps, batch 256")
@pytest.mark.parametrize("who", ["ours", "torchcam DeletionInsertionMetric", "floor"])
def test_deletion_insertion_quick(timed, quick_model, quick_inputs, who):
    x, t = quick_inputs[0][:16], quick_inputs[1][:16]
    task = T.deletion_task(quick_model, x, t, T.coarse_maps(16, 64), label="quick", steps=16, batch_size=256)
    if who not in task.contenders:
        pytest.skip(f"{who} not installed: {task.missing.get(who, '')}")
    timed(task.contenders[who], x.shape[0], rounds=2, steps=16, batch=256, **QUICK)


@pytest.mark.benchmark(group="deletion+insertion full 224px, 1 image, 8 steps, batch 16")
@pytest.mark.parametrize("who", ["ours", "floor"])
def test_deletion_insertion_full(timed, full_model, full_inputs, who):
    x, t = full_inputs[0][:1], full_inputs[1][:1]
    task = T.deletion_task(full_model, x, t, T.coarse_maps(1, 224), label="full", steps=8, batch_size=16)
    timed(task.contenders[who], 1, rounds=1, warmup=0, steps=8, batch=16, **FULL)


@pytest.fixture(scope="module")
def maps_224():
    from bench.perf.metric_throughput import make_maps

    return make_maps(1000, 224)


@pytest.mark.benchmark(group="localisation, 224x224 maps (per map: see extra_info)")
def test_localisation_scores_all_five(timed, maps_224):
    from bench.metrics import localisation_scores

    sal, masks = maps_224
    timed(lambda: localisation_scores(sal, masks), len(sal), rounds=3, size=224, metrics="all five")


@pytest.mark.benchmark(group="localisation, 224x224 maps (per map: see extra_info)")
@pytest.mark.parametrize("metric", list(T.QUANTUS_PAIRS))
def test_localisation_ours(timed, maps_224, metric):
    from bench.metrics import METRICS

    sal, masks = maps_224
    timed(lambda: METRICS.get(metric)(sal, masks), len(sal), rounds=3, size=224, metric=metric)


@pytest.mark.benchmark(group="localisation, 224x224 maps (per map: see extra_info)")
@pytest.mark.parametrize("metric", list(T.QUANTUS_PAIRS))
def test_localisation_quantus(timed, maps_224, metric):
    pytest.importorskip("quantus")
    sal, masks = maps_224[0][:20], maps_224[1][:20]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = timed(lambda: T.quantus_scores(metric, sal, masks), len(sal), rounds=1, size=224,
                    metric=f"quantus {T.QUANTUS_PAIRS[metric]}")
    assert np.asarray(out).shape == (20,)


@pytest.mark.benchmark(group="ROAD quick 64px, 8 images, 10 steps (9 fractions x 2 orders), batch 256")
@pytest.mark.parametrize("who", ["ours", "pytorch-grad-cam ROAD", "floor"])
def test_road_quick(timed, quick_model, quick_inputs, who):
    x, t = quick_inputs[0][:8], quick_inputs[1][:8]
    task = T.road_task(quick_model, x, t, T.smooth_maps(8, 64), label="quick", steps=10, batch_size=256)
    if who not in task.contenders:
        pytest.skip(f"{who} not installed: {task.missing.get(who, '')}")
    timed(task.contenders[who], x.shape[0], rounds=2, steps=10, batch=256, **QUICK)
