"""Grad-CAM and Score-CAM: ours, the peers (where installed) and the cost floor, one benchmark each."""

from __future__ import annotations

import pytest

from bench.perf import tasks as T

QUICK = {"model": "ff_vgg19 width=0.25 head_units=512 (untrained)", "size": 64}
FULL = {"model": "ff_vgg19 width=1 (untrained)", "size": 224}
GC_PEERS = ["captum LayerGradCam", "pytorch-grad-cam GradCAM", "torchcam GradCAM"]


@pytest.mark.benchmark(group="grad_cam quick 64px, batch 32")
@pytest.mark.parametrize("who", ["ours", *GC_PEERS, "forward+backward (NCHW)", "forward+backward (channels-last)"])
def test_grad_cam_quick(timed, quick_model, quick_inputs, who):
    x, t = quick_inputs
    task = T.grad_cam_task(quick_model, x, t, label="quick")
    if who not in task.contenders:
        pytest.skip(f"{who} not installed: {task.missing.get(who, '')}")
    timed(task.contenders[who], x.shape[0], rounds=5, batch=x.shape[0], layer=T.LAYER, **QUICK)


@pytest.mark.benchmark(group="grad_cam full 224px, batch 2")
@pytest.mark.parametrize("who", ["ours", "torchcam GradCAM", "forward+backward (NCHW)"])
def test_grad_cam_full(timed, full_model, full_inputs, who):
    x, t = full_inputs
    task = T.grad_cam_task(full_model, x, t, label="full")
    if who not in task.contenders:
        pytest.skip(f"{who} not installed: {task.missing.get(who, '')}")
    timed(task.contenders[who], x.shape[0], rounds=2, batch=x.shape[0], layer=T.LAYER, **FULL)


@pytest.mark.benchmark(group="score_cam quick 64px, 4 images, batch 256")
@pytest.mark.parametrize("who", ["ours", "torchcam ScoreCAM", "pytorch-grad-cam ScoreCAM"])
def test_score_cam_quick(timed, quick_model, quick_inputs, who):
    from bench.perf.report import quiet_pgc

    quiet_pgc()
    x, t = quick_inputs[0][:4], quick_inputs[1][:4]
    task = T.score_cam_task(quick_model, x, t, label="quick", batch_size=256)
    if who not in task.contenders:
        pytest.skip(f"{who} not installed: {task.missing.get(who, '')}")
    timed(task.contenders[who], x.shape[0], rounds=2, batch=256, layer=T.LAYER,
          forwards=task.extra["forwards"].get(who), **QUICK)
