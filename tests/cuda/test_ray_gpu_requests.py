"""Which Ray jobs ask for a GPU (bench.sweep.ray_backend): checked on the CPU with a stand-in for Ray."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.sweep.jobs import plan
from bench.sweep.ray_backend import RayBackend, RayExecutor, wants_gpu
from bench.sweep.suite import load_suite


def test_score_jobs_that_run_the_model_ask_for_a_gpu_and_mask_only_ones_do_not():
    from bench.sweep.scoring import MODEL_COMPUTATIONS

    jobs = plan(load_suite("smoke"))
    asks = {(j.stage, j.spec.get("metric") if j.stage == "score" else ""): wants_gpu(j) for j in jobs}
    assert asks[("score", "deletion_insertion")] is True and asks[("score", "road")] is True
    assert asks[("train", "")] and asks[("explain", "")] and asks[("sanity", "")]
    mask_only = [m for (stage, m), gpu in asks.items() if stage == "score" and m not in MODEL_COMPUTATIONS]
    assert mask_only and not any(asks[("score", m)] for m in mask_only)


class _FakeRay:
    """Records the resources of every task submitted; runs nothing."""

    def __init__(self) -> None:
        self.submitted: list[tuple[dict, str]] = []

    def remote(self, **opts):
        ray = self

        def decorate(fn):
            class Task:
                def remote(self, *args):
                    if fn.__name__ == "run_job":
                        ray.submitted.append((opts, args[0].key))
                    return object()

            return Task()

        return decorate


def _submitted(gpus_in_cluster: float, backend: RayBackend) -> tuple[dict[str, float], list]:
    jobs = plan(load_suite("smoke"))
    ray = _FakeRay()
    info = {"gpus": gpus_in_cluster}
    ex = RayExecutor(ray, Path("unused"), backend, info, {j.key: 1 for j in jobs})
    ex._submit(jobs)
    by_key = {j.key: j for j in jobs}
    return {key: opts.get("num_gpus", 0) for opts, key in ray.submitted}, by_key


def test_the_executor_requests_a_gpu_exactly_for_those_jobs_when_the_cluster_has_gpus():
    gpus, jobs = _submitted(2, RayBackend())
    assert len(gpus) == len(jobs)
    assert all(gpus[k] == (1 if wants_gpu(j) else 0) for k, j in jobs.items())
    kinds = Counter((j.stage, gpus[k]) for k, j in jobs.items())
    assert kinds[("score", 1)] > 0 and kinds[("score", 0)] > 0
    # no GPU in the cluster, or gpus=False: nothing asks for one
    assert not any(_submitted(0, RayBackend())[0].values())
    assert not any(_submitted(2, RayBackend(gpus=False))[0].values())
