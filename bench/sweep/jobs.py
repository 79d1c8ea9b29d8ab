"""The sweep's job graph: plan jobs from a suite, and execute one job into the store.

Stages and what each job's key covers (its full resolved configuration + its stage's code version,
:func:`bench.sweep.sources.code_version`: the modules the stage's runner imports, and the ``version`` of the
method, metric or model it runs when that comes from outside the package, a plugin):

- ``train``  (dataset, model, seed, fold): the resolved :class:`RunConfig` and the fold. A suite with a
  ``checkpoint`` (:mod:`bench.sweep.checkpoints`) trains nothing: in the train slot of each dataset stands one
  job that loads the checkpoint (its spec has a ``checkpoint`` entry, its runner is ``load``, its key covers the
  file's SHA-256 and the ``load`` code version) and writes what a train job writes.
- ``explain`` (+ method): the train key, the method, its options, the layer, the image selection.
- ``score``   (+ metric): the explain key, the metric, its options and the metrics it publishes
  (``outputs``). ``deletion`` and ``insertion`` share one computation, stored by one job under the metric
  name ``deletion_insertion``; it publishes those of the two the suite asks for.
- ``sanity``  (train, method): the cascading randomisation test of one method.
- ``verify``  (train): the lesion drop of each image the explain jobs explain (model-verified ground truth),
  once per trained model; the run folder joins it to the result rows.
- ``class_sensitivity`` (train, method): two-lesion composites explained for both classes, on the datasets the
  suite's ``[class_sensitivity]`` names.

Jobs are plain data (:class:`Job`); :func:`execute` runs one of them given the store, reading its
dependencies' outputs from there. A local loop and a cluster backend call the same function. Each stage's
code is its own module, :mod:`bench.sweep.stages` (``train``, ``explain``, ``score``, ``sanity``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pathlib import Path

from bench.config import to_dict
from bench.results import IDENT
from bench.sweep.cache import JobStore, digest, write_json
from bench.sweep.checkpoints import checkpoint_models
from bench.sweep.sources import code_version
from bench.sweep.stages import explain as explain_stage
from bench.sweep.stages import load as load_stage
from bench.sweep.stages import sanity as sanity_stage
from bench.sweep.stages import score as score_stage
from bench.sweep.stages import train as train_stage
from bench.sweep.stages import verify as verify_stage
from bench.sweep.stages import class_sensitivity as class_sensitivity_stage
from bench.sweep.suite import Suite, metric_options, score_jobs

# runner name -> its runner, ``run(spec, inputs, out, label)`` (see bench.sweep.stages); a job's runner is its
# stage's, but for a train-slot job that loads a checkpoint (:func:`runner_of`)
RUNNERS = {"train": train_stage.run, "explain": explain_stage.run, "score": score_stage.run, "sanity": sanity_stage.run,
           "load": load_stage.run, "verify": verify_stage.run, "class_sensitivity": class_sensitivity_stage.run}


@dataclass(frozen=True)
class Job:
    stage: str
    key: str
    spec: dict = field(compare=False)
    deps: tuple[tuple[str, str], ...] = ()  # (stage, key) of the jobs whose outputs it reads
    label: str = ""


# ---------------------------------------------------------------------------------------------
# planning


def model_jobs(suite: Suite, dataset: str) -> list[Job]:
    """The jobs that give ``dataset``'s models (stage ``train``): one per (model, seed, fold) that trains, or, when
    the suite names a ``checkpoint``, the one that loads it (its key: the file's SHA-256, not its path)."""
    if suite.checkpoint.path:
        jobs = []
        for ident, cfg, source in checkpoint_models(suite, dataset):
            tspec = {**ident, "config": to_dict(cfg), "checkpoint": source}
            keyed = {**tspec, "checkpoint": {k: v for k, v in source.items() if k != "path"}}
            tkey = digest({"spec": keyed, "code": code_version("load", ("models", ident["model"]))})
            label = f"load {dataset} {ident['model']} from {Path(source['path']).name}"
            jobs.append(Job("train", tkey, tspec, (), label))
        return jobs
    jobs = []
    for model in suite.models:
        for seed in suite.seeds:
            cfg = suite.run_config(dataset, model, seed)
            for fold in suite.fold_indices(cfg):
                ident = {"dataset": dataset, "model": model, "seed": seed, "fold": fold}
                tspec = {**ident, "config": to_dict(cfg)}
                tkey = digest({"spec": tspec, "code": code_version("train", ("models", model))})
                jobs.append(Job("train", tkey, tspec, (), f"train {dataset} {model} seed={seed} fold={fold}"))
    return jobs


def plan(suite: Suite) -> list[Job]:
    """All jobs of ``suite`` in an order where every job comes after its dependencies."""
    jobs: list[Job] = []
    ex = suite.explain
    for dataset in suite.datasets:
        for model_job in model_jobs(suite, dataset):
            tkey = model_job.key
            ident = {k: model_job.spec[k] for k in IDENT}
            jobs.append(model_job)
            for method in (*suite.methods, *suite.references):  # references: scored, never ranked
                espec = {
                    **ident, "method": method, "options": dict(ex.options.get(method, {})),
                    "layer": ex.layer, "max_images": ex.max_images, "batch_size": ex.batch_size,
                    "seed_explain": ex.seed,
                }
                ekey = digest({"train": tkey, "spec": espec, "code": code_version("explain", ("methods", method))})
                jobs.append(Job("explain", ekey, espec, (("train", tkey),), f"explain {dataset} {method}"))
                for metric, outputs in score_jobs(suite.metrics).items():
                    sspec = {**espec, "metric": metric, "metric_options": metric_options(suite, metric),
                             "outputs": outputs}
                    skey = digest({"explain": ekey, "spec": sspec,
                                   "code": code_version("score", *(("metrics", m) for m in outputs))})
                    jobs.append(Job("score", skey, sspec, (("train", tkey), ("explain", ekey)),
                                    f"score {dataset} {method} {metric}"))
            jobs += trust_jobs(suite, dataset, ident, tkey)
            for method in suite.score.sanity_methods:
                qspec = {**ident, "method": method, "options": dict(ex.options.get(method, {})),
                         "layer": ex.layer, "n_images": suite.score.sanity_images, "seed_explain": ex.seed}
                qkey = digest({"train": tkey, "spec": qspec, "code": code_version("sanity", ("methods", method))})
                jobs.append(Job("sanity", qkey, qspec, (("train", tkey),), f"sanity {dataset} {method}"))
    return jobs


def trust_jobs(suite: Suite, dataset: str, ident: dict, tkey: str) -> list[Job]:
    """The jobs of one trained model (``tkey``) that say how far to trust its maps: ``verify`` (the lesion drop of
    every image its explain jobs explain; ``[verify]``) and one ``class_sensitivity`` job per method on the
    datasets ``[class_sensitivity]`` names (two-lesion composites explained for both classes)."""
    ex, jobs = suite.explain, []
    if suite.verify.enabled:
        vspec = {**ident, "max_images": ex.max_images, "dilate": suite.verify.dilate, "batch_size": ex.batch_size}
        vkey = digest({"train": tkey, "spec": vspec, "code": code_version("verify")})
        jobs.append(Job("verify", vkey, vspec, (("train", tkey),), f"verify {dataset}"))
    cs = suite.class_sensitivity
    if cs.composites > 0 and (not cs.datasets or dataset in cs.datasets):
        for method in cs.methods or suite.methods:
            cspec = {**ident, "method": method, "options": dict(ex.options.get(method, {})), "layer": ex.layer,
                     "composites": cs.composites, "dilate": cs.dilate, "seed_pairs": cs.seed,
                     "batch_size": ex.batch_size, "seed_explain": ex.seed}
            ckey = digest({"train": tkey, "spec": cspec,
                           "code": code_version("class_sensitivity", ("methods", method))})
            jobs.append(Job("class_sensitivity", ckey, cspec, (("train", tkey),),
                            f"class sensitivity {dataset} {method}"))
    return jobs


# ---------------------------------------------------------------------------------------------
# execution


def runner_of(job: Job) -> str:
    """The name of ``job``'s runner in :data:`RUNNERS` (and of its code version): its stage's, ``load`` for a
    train-slot job that loads a checkpoint."""
    return "load" if job.stage == "train" and "checkpoint" in job.spec else job.stage


def execute(job: Job, store: JobStore) -> None:
    """Run ``job`` and store its outputs atomically. Its dependencies must be done."""
    for stage, key in job.deps:
        if not store.done(stage, key):
            raise RuntimeError(f"{job.label}: its {stage} job {key} has not completed")
    inputs = {stage: store.path(stage, key) for stage, key in job.deps}
    t0 = time.perf_counter()
    with store.writing(job.stage, job.key, {"label": job.label, "spec": job.spec}) as out:
        RUNNERS[runner_of(job)](job.spec, inputs, out, job.label)
        write_json(out / "timing.json", {"seconds": time.perf_counter() - t0})


__all__ = ["RUNNERS", "Job", "execute", "model_jobs", "plan", "runner_of", "trust_jobs"]
