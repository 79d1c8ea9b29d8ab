"""Run the sweep's job graph on Ray: the same jobs, the same store, the same results as a local run.

The driver (the process that called :func:`bench.sweep.run_suite`) plans the jobs, holds the run
lock, and submits every job not yet stored as one Ray task: ``run_job(job, out, ...)`` calls the
same :func:`bench.sweep.jobs.execute` as the local loop, which writes the job's outputs atomically
into ``<out>/cache`` (so ``--out`` must be a folder every node sees). A job's upstream tasks are
passed as ``ObjectRef`` arguments, so Ray starts it as soon as its inputs are stored, on whichever
node has the resources it asks for; jobs whose inputs are ready run in parallel. Assembling the
results and building the report stay in the driver and reuse the local code.

- Resources: ``cpus_per_task`` CPUs per task (default 1); train, explain, sanity, verify and class_sensitivity
  jobs, and the deletion/insertion score jobs (``2 x steps + 1`` forward passes per image), also ask for one GPU when
  the cluster has any (:func:`wants_gpu`), so they run where a local run on that machine runs them;
  the localisation score jobs (maps against masks, no model) stay on CPUs.
- Threads: Ray sets ``OMP_NUM_THREADS`` to a task's CPU count (1 by default), and torch's CPU
  results change at the bit level with the thread count. Each task therefore sets torch's threads
  to what a local run would use (``train.threads`` of the suite, else torch's default in the driver)
  when Ray runs on this machine alone, so a Ray run reproduces a local run exactly; on a multi-node
  cluster it uses ``train.threads`` or the task's CPU count (pin ``train.threads`` to make runs on
  different machines use the same count).
- Plugins: a worker is a fresh process that imports bench anew; its registries load the same entry-point
  plugins (:mod:`bench.registry`) before their first lookup, and each task checks that its bench sources and
  plugin versions are the driver's (:func:`bench.sweep.sources.sweep_versions`) before it runs.
- Failures: a job that raises is recorded by the driver (``errors.jsonl``, as the local runner does)
  and its dependents are skipped; a worker process that dies (killed, out of memory, node lost) is
  retried by Ray up to ``max_retries`` times, and since outputs are renamed into place only when
  complete, the retry starts from a clean slate. A task finding its job already stored does nothing.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sweep.cache import JobStore
from bench.sweep.driver import Outcome, Progress, drive
from bench.sweep.jobs import Job, execute
from bench.sweep.sources import sweep_versions

GPU_STAGES = ("train", "explain", "sanity", "verify", "class_sensitivity")  # they run the model
INSTALL_HINT = "pip install -e .[ray]  (or: pip install 'ray[default]>=2.9')"


class RayNotInstalled(RuntimeError):
    """``backend="ray"`` without Ray installed."""


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalled(
            f"--backend ray needs Ray, which is not installed ({exc}); install the extra: {INSTALL_HINT}"
        ) from None
    return ray


@dataclass(frozen=True)
class RayBackend:
    """Options of the Ray backend (``run_suite(..., backend=RayBackend(...))``; ``backend="ray"`` = defaults).

    Args:
        address: a running cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); ``None``
            joins the cluster ``RAY_ADDRESS`` names if it is set, else starts a new local Ray instance.
        cpus_per_task: CPUs each job asks for.
        gpus: ``None`` = one GPU for the jobs :func:`wants_gpu` names when the cluster has GPUs; ``False`` = never.
        max_retries: how often Ray re-runs a job whose worker process died.
        threads: torch CPU threads in each task; ``None`` = as described in the module docstring.
        init: extra keyword arguments for ``ray.init`` (e.g. ``{"num_cpus": 2}``).
    """

    address: str | None = None
    cpus_per_task: float = 1
    gpus: bool | None = None
    max_retries: int = 3
    threads: int | None = None
    init: dict = field(default_factory=dict)


def model_metrics() -> set[str]:
    """The score jobs' metric names (``computed_by``: ``deletion_insertion``) of the registered metrics that
    run the model (``needs_model``)."""
    from bench.metrics import METRICS

    return {METRICS.meta(n).get("computed_by", n) for n in METRICS.names() if METRICS.meta(n).get("needs_model")}


def wants_gpu(job: Job) -> bool:
    """Whether ``job`` asks Ray for a GPU (when the cluster has one): train, explain, sanity, verify and
    class_sensitivity jobs, and score jobs whose metric runs the model (:func:`model_metrics`: deletion/insertion, ROAD). A local run
    computes these on its GPU, so a Ray run must too, to give the same results."""
    return job.stage in GPU_STAGES or (job.stage == "score" and job.spec.get("metric") in model_metrics())


# ---------------------------------------------------------------------------------------------
# the task (runs in a Ray worker)


def run_job(job: Job, out: str, threads: int, versions: dict[str, str], tracker, *upstream: dict) -> dict[str, Any]:
    """Run one job into the store at ``out`` unless it is stored; ``upstream`` = its dependencies' results."""
    blocked = [u["key"] for u in upstream if u["status"] in ("failed", "skipped")]
    if blocked:
        return {"key": job.key, "status": "skipped", "blocked": blocked[0]}
    store = JobStore(out)
    if store.done(job.stage, job.key):
        return {"key": job.key, "status": "cached"}
    if tracker is not None:
        tracker.started.remote(job.key)
    t = time.perf_counter()
    try:
        mine = sweep_versions()  # loads the plugins in this (fresh) worker process first
        if mine != versions:
            differ = {k: (mine.get(k, "absent"), versions.get(k, "absent")) for k in sorted({*mine, *versions})
                      if mine.get(k) != versions.get(k)}
            raise RuntimeError(
                f"this worker ({socket.gethostname()}) has other bench sources or plugins than the driver had when it "
                f"planned the sweep (here != driver: {differ}): the sources were edited during the run, or the nodes "
                "have different revisions or plugin distributions; install one revision of bench and the same "
                "plugins on every node and run again"
            )
        import torch

        if threads > 0 and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        execute(job, store)
        return {"key": job.key, "status": "ok", "seconds": time.perf_counter() - t, "node": socket.gethostname()}
    except Exception as exc:  # noqa: BLE001 - one failed job must not stop the sweep
        return {"key": job.key, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - t}


def _tracker_class():
    """Which jobs have started (for the progress display): an actor that needs no CPU.

    Defined in a function so that Ray ships the class by value: the actor's process never imports
    bench (and torch with it).
    """

    class Tracker:
        def __init__(self) -> None:
            self.keys: set[str] = set()

        def started(self, key: str) -> None:
            self.keys.add(key)

        def get(self) -> set[str]:
            return self.keys

    return Tracker


# ---------------------------------------------------------------------------------------------
# the driver


def run_jobs(jobs: list[Job], store: JobStore, out: Path, progress: bool | None,
             backend: RayBackend | None = None) -> dict[str, Any]:
    """Run the jobs of ``jobs`` not yet in ``store`` as Ray tasks; return the same stats as the local loop."""
    ray = import_ray()
    backend = backend or RayBackend()
    owns = not ray.is_initialized()
    t_init = time.perf_counter()
    if owns:
        # no address: RAY_ADDRESS if set (as under `ray job submit`), else a new local instance; never a cluster
        # that happens to run on this machine (ray.init() alone would join the latest one `ray start` began)
        address = backend.address or os.environ.get("RAY_ADDRESS") or "local"
        ctx = ray.init(address=address, **{"log_to_driver": True, **backend.init})
        url = getattr(ctx, "dashboard_url", "") or ""
    else:
        url = ""
    startup = time.perf_counter() - t_init
    try:
        info = _cluster_info(ray)
        if url:
            print(f"bench: Ray dashboard at http://{url.removeprefix('http://')}", file=sys.stderr, flush=True)
        threads = _thread_plan(jobs, backend, info)
        stats = drive(jobs, store, out, RayExecutor(ray, out, backend, info, threads), progress)
    finally:
        if owns:
            ray.shutdown()
    stats.update(backend="ray", threads=sorted(set(threads.values())))
    stats["ray"] = {**info, "startup_seconds": startup, "dashboard": url or "",
                    "cpus_per_task": backend.cpus_per_task, "max_retries": backend.max_retries}
    return stats


def _cluster_info(ray) -> dict[str, Any]:
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    res = ray.cluster_resources()
    here = {socket.gethostname(), "127.0.0.1"}
    try:
        here.add(ray.util.get_node_ip_address())
    except Exception:  # noqa: BLE001 - only used to tell "this machine alone"
        pass
    local = len(nodes) == 1 and (nodes[0].get("NodeManagerAddress") in here or nodes[0].get("NodeManagerHostname") in here)
    return {"nodes": len(nodes), "cpus": res.get("CPU", 0), "gpus": res.get("GPU", 0), "single_local_node": local}


def _thread_plan(jobs: list[Job], backend: RayBackend, info: dict) -> dict[str, int]:
    """torch threads per job key (see the module docstring)."""
    import torch

    if backend.threads is not None:
        return {j.key: backend.threads for j in jobs}
    fallback = torch.get_num_threads() if info["single_local_node"] else max(int(backend.cpus_per_task), 1)
    per_train = {j.key: int(j.spec["config"]["train"].get("threads", 0) or 0) for j in jobs if j.stage == "train"}
    plan = {}
    for j in jobs:
        tkey = j.key if j.stage == "train" else dict(j.deps).get("train", "")
        plan[j.key] = per_train.get(tkey) or fallback
    return plan


class RayExecutor:
    """The driver's backend (:func:`bench.sweep.driver.drive`): every job a Ray task, submitted at once with its
    upstream tasks as arguments, so Ray starts each as soon as its inputs are stored; outcomes in finishing order."""

    def __init__(self, ray, out: Path, backend: RayBackend, info: dict, threads: dict[str, int]) -> None:
        self.ray, self.out, self.backend, self.threads = ray, out, backend, threads
        self.use_gpu = info["gpus"] > 0 if backend.gpus is None else bool(backend.gpus and info["gpus"] > 0)
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.pending: dict[Any, Job] = {}

    def status(self) -> str:
        """"N running, M queued" (running: started by a worker and not yet finished)."""
        running = len(self.started - self.finished)
        return f"{running} running, {max(len(self.pending) - running, 0)} queued"

    def _submit(self, todo: list[Job]) -> tuple[dict[str, Any], Any]:
        ray, backend = self.ray, self.backend
        opts = {"num_cpus": backend.cpus_per_task, "max_retries": backend.max_retries}
        cpu_task = ray.remote(**opts)(run_job)
        gpu_task = ray.remote(num_gpus=1, **opts)(run_job) if self.use_gpu else cpu_task
        try:
            tracker = ray.remote(num_cpus=0)(_tracker_class()).remote()
        except Exception:  # noqa: BLE001 - progress only
            tracker = None
        versions = sweep_versions()
        refs: dict[str, Any] = {}
        for job in todo:  # plan order: every job after its dependencies
            task = gpu_task if wants_gpu(job) else cpu_task
            ups = [refs[k] for _, k in job.deps if k in refs]
            ref = task.remote(job, str(self.out), self.threads[job.key], versions, tracker, *ups)
            refs[job.key] = ref
            self.pending[ref] = job
        return refs, tracker

    def _poll_started(self, tracker) -> None:
        try:
            self.started = self.ray.get(tracker.get.remote(), timeout=5)
        except Exception:  # noqa: BLE001 - progress only
            pass

    def _outcome(self, ref, job: Job, refs: dict[str, Any], failed: set[str]) -> Outcome:
        try:
            res = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the worker died max_retries + 1 times, or a dependency did
            # a dependency that failed or never finished: this job did not run at all
            dep = next((k for _, k in job.deps if k in failed or (k in refs and k not in self.finished)), "")
            if dep:
                return Outcome("skipped", blocked=dep)
            return Outcome("failed", error=f"{type(exc).__name__}: {exc}")
        if res["status"] == "skipped":
            return Outcome("skipped", blocked=res["blocked"])
        if res["status"] == "cached":  # stored by another process meanwhile: nothing ran (not counted)
            return Outcome("cached")
        if res["status"] == "failed":
            return Outcome("failed", res.get("seconds", 0.0), res["error"], res.get("traceback", ""))
        return Outcome("ok", res.get("seconds", 0.0))

    def run(self, todo: list[Job], failed: set[str], progress: Progress) -> Iterator[tuple[Job, Outcome]]:
        refs, tracker = self._submit(todo)
        last_poll = 0.0
        try:
            while self.pending:
                ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=1.0)
                if tracker is not None and time.perf_counter() - last_poll > 1.0:
                    self._poll_started(tracker)
                    last_poll = time.perf_counter()
                    if not ready:  # long jobs: keep the running / queued counts fresh between completions
                        progress.waiting(self.status())
                for ref in ready:
                    job = self.pending.pop(ref)
                    self.finished.add(job.key)
                    yield job, self._outcome(ref, job, refs, failed)
        except BaseException:
            for ref in self.pending:  # Ctrl-C: stop this sweep's tasks (stored jobs stay stored)
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
            raise


__all__ = ["GPU_STAGES", "RayBackend", "RayExecutor", "RayNotInstalled", "import_ray", "model_metrics", "run_job",
           "run_jobs", "wants_gpu"]
