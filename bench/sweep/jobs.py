"""The sweep's job graph: plan jobs from a suite, and execute one job into the store.

Stages and what each job's key covers (its full resolved configuration + its stage's code version,
:func:`bench.sweep.sources.code_version`: the modules the stage's runner imports):

- ``train``  (dataset, model, seed, fold): the resolved :class:`RunConfig` and the fold.
- ``explain`` (+ method): the train key, the method, its options, the layer, the image selection.
- ``score``   (+ metric): the explain key, the metric, its options and the metrics it publishes
  (``outputs``). ``deletion`` and ``insertion`` share one computation, stored by one job under the metric
  name ``deletion_insertion``; it publishes those of the two the suite asks for.
- ``sanity``  (train, method): the cascading randomisation test of one method.

Jobs are plain data (:class:`Job`); :func:`execute` runs one of them given the store, reading its
dependencies' outputs from there. A local loop and a cluster backend call the same function. Each stage's
code is its own module, :mod:`bench.sweep.stages` (``train``, ``explain``, ``score``, ``sanity``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bench.config import to_dict
from bench.sweep.cache import JobStore, digest, write_json
from bench.sweep.sources import code_version
from bench.sweep.stages import explain as explain_stage
from bench.sweep.stages import sanity as sanity_stage
from bench.sweep.stages import score as score_stage
from bench.sweep.stages import train as train_stage
from bench.sweep.suite import Suite, metric_options, score_jobs

# stage -> its runner, ``run(spec, inputs, out, label)`` (see bench.sweep.stages)
RUNNERS = {"train": train_stage.run, "explain": explain_stage.run, "score": score_stage.run, "sanity": sanity_stage.run}


@dataclass(frozen=True)
class Job:
    stage: str
    key: str
    spec: dict = field(compare=False)
    deps: tuple[tuple[str, str], ...] = ()  # (stage, key) of the jobs whose outputs it reads
    label: str = ""


# ---------------------------------------------------------------------------------------------
# planning


def plan(suite: Suite) -> list[Job]:
    """All jobs of ``suite`` in an order where every job comes after its dependencies."""
    jobs: list[Job] = []
    ex = suite.explain
    for dataset in suite.datasets:
        for model in suite.models:
            for seed in suite.seeds:
                cfg = suite.run_config(dataset, model, seed)
                for fold in suite.fold_indices(cfg):
                    ident = {"dataset": dataset, "model": model, "seed": seed, "fold": fold}
                    tspec = {**ident, "config": to_dict(cfg)}
                    tkey = digest({"spec": tspec, "code": code_version("train")})
                    jobs.append(Job("train", tkey, tspec, (), f"train {dataset} {model} seed={seed} fold={fold}"))
                    for method in (*suite.methods, *suite.references):  # references: scored, never ranked
                        espec = {
                            **ident, "method": method, "options": dict(ex.options.get(method, {})),
                            "layer": ex.layer, "max_images": ex.max_images, "batch_size": ex.batch_size,
                            "seed_explain": ex.seed,
                        }
                        ekey = digest({"train": tkey, "spec": espec, "code": code_version("explain")})
                        jobs.append(Job("explain", ekey, espec, (("train", tkey),), f"explain {dataset} {method}"))
                        for metric, outputs in score_jobs(suite.metrics).items():
                            sspec = {**espec, "metric": metric, "metric_options": metric_options(suite, metric),
                                     "outputs": outputs}
                            skey = digest({"explain": ekey, "spec": sspec, "code": code_version("score")})
                            jobs.append(Job("score", skey, sspec, (("train", tkey), ("explain", ekey)),
                                            f"score {dataset} {method} {metric}"))
                    for method in suite.score.sanity_methods:
                        qspec = {**ident, "method": method, "options": dict(ex.options.get(method, {})),
                                 "layer": ex.layer, "n_images": suite.score.sanity_images, "seed_explain": ex.seed}
                        qkey = digest({"train": tkey, "spec": qspec, "code": code_version("sanity")})
                        jobs.append(Job("sanity", qkey, qspec, (("train", tkey),), f"sanity {dataset} {method}"))
    return jobs


# ---------------------------------------------------------------------------------------------
# execution


def execute(job: Job, store: JobStore) -> None:
    """Run ``job`` and store its outputs atomically. Its dependencies must be done."""
    for stage, key in job.deps:
        if not store.done(stage, key):
            raise RuntimeError(f"{job.label}: its {stage} job {key} has not completed")
    inputs = {stage: store.path(stage, key) for stage, key in job.deps}
    t0 = time.perf_counter()
    with store.writing(job.stage, job.key, {"label": job.label, "spec": job.spec}) as out:
        RUNNERS[job.stage](job.spec, inputs, out, job.label)
        write_json(out / "timing.json", {"seconds": time.perf_counter() - t0})


__all__ = ["RUNNERS", "Job", "execute", "plan"]
