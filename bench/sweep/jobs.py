"""The sweep's job graph: plan jobs from a suite, and execute one job into the store.

Stages and what each job's key covers (its full resolved configuration + its stage's code version):

- ``train``  (dataset, model, seed, fold): the resolved :class:`RunConfig` and the fold.
- ``explain`` (+ method): the train key, the method, its options, the layer, the image selection.
- ``score``   (+ metric): the explain key, the metric and its options. ``deletion`` and
  ``insertion`` share one computation, stored by one job under the metric name ``deletion_insertion``.
- ``sanity``  (train, method): the cascading randomisation test of one method.

Jobs are plain data (:class:`Job`); :func:`execute` runs one of them given the store, reading its
dependencies' outputs from there. A local loop and a cluster backend call the same function.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.config import RunConfig, from_dict, to_dict
from bench.data.selection import pick_per_class
from bench.device import set_threads
from bench.sweep import scoring
from bench.sweep.cache import JobStore, code_version, digest, stable_json, write_json
from bench.sweep.extensions import extensions
from bench.sweep.suite import Suite
from bench.sweep.tables import rows_frame


def computed_by(metric: str) -> str:
    """The computation that yields ``metric`` (deletion and insertion share ``deletion_insertion``)."""
    from bench.metrics import METRICS

    return METRICS.meta(metric).get("computed_by", metric)


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
                    train = Job("train", tkey, tspec, (), f"train {dataset} {model} seed={seed} fold={fold}")
                    jobs.append(train)
                    for method in suite.methods:
                        espec = {
                            **ident, "method": method, "options": dict(ex.options.get(method, {})),
                            "layer": ex.layer, "max_images": ex.max_images, "batch_size": ex.batch_size,
                            "seed_explain": ex.seed,
                        }
                        ekey = digest({"train": tkey, "spec": espec, "code": code_version("explain")})
                        jobs.append(Job("explain", ekey, espec, (("train", tkey),), f"explain {dataset} {method}"))
                        for metric in dict.fromkeys(computed_by(m) for m in suite.metrics):
                            sspec = {**espec, "metric": metric, "metric_options": metric_options(suite, metric)}
                            skey = digest({"explain": ekey, "spec": sspec, "code": code_version("score")})
                            jobs.append(Job("score", skey, sspec, (("train", tkey), ("explain", ekey)),
                                            f"score {dataset} {method} {metric}"))
                    for method in suite.score.sanity_methods:
                        qspec = {**ident, "method": method, "options": dict(ex.options.get(method, {})),
                                 "layer": ex.layer, "n_images": suite.score.sanity_images, "seed_explain": ex.seed}
                        qkey = digest({"train": tkey, "spec": qspec, "code": code_version("sanity")})
                        jobs.append(Job("sanity", qkey, qspec, (("train", tkey),), f"sanity {dataset} {method}"))
    return jobs


def metric_options(suite: Suite, metric: str) -> dict[str, Any]:
    s = suite.score
    if metric == "pointing_game":
        return {"tolerance": s.pointing_tolerance}
    if metric == "iou":
        return {"threshold": s.iou_threshold}
    if metric == "deletion_insertion":
        return {"steps": s.deletion_steps, "batch_size": s.deletion_batch_size}
    return {}


# ---------------------------------------------------------------------------------------------
# shared loading (cached per process: a sweep reads one dataset and one checkpoint many times)


@functools.lru_cache(maxsize=4)
def _dataset(dataset: str, root: str, image_size: int, phantom: str):  # phantom: its options, for the cache key
    from bench.data import load_dataset

    data = load_dataset(dataset, root=root, image_size=image_size)
    return data, {i: n for n, i in enumerate(data.ids)}


def dataset_for(cfg: RunConfig):
    """``(ImageSet, id -> index)`` for a training configuration (phantoms generated on demand)."""
    from bench.train import ensure_prepared, phantom_options

    ensure_prepared(cfg)
    return _dataset(cfg.data.dataset, cfg.data.root, cfg.data.image_size, stable_json(phantom_options(cfg)))


@functools.lru_cache(maxsize=2)
def _checkpoint(path: str, device: str):
    from bench.train import load_checkpoint

    return load_checkpoint(path, device=device)


def _device(cfg: RunConfig) -> torch.device:
    from bench.device import resolve_device

    return resolve_device(cfg.train.device)


# ---------------------------------------------------------------------------------------------
# execution


def execute(job: Job, store: JobStore) -> None:
    """Run ``job`` and store its outputs atomically. Its dependencies must be done."""
    for stage, key in job.deps:
        if not store.done(stage, key):
            raise RuntimeError(f"{job.label}: its {stage} job {key} has not completed")
    run = {"train": _run_train, "explain": _run_explain, "score": _run_score, "sanity": _run_sanity}[job.stage]
    t0 = time.perf_counter()
    with store.writing(job.stage, job.key, {"label": job.label, "spec": job.spec}) as out:
        run(job, store, out)
        write_json(out / "timing.json", {"seconds": time.perf_counter() - t0})


def _cfg(job: Job) -> RunConfig:
    return from_dict(RunConfig, job.spec["config"], source=job.label)


def _train_dir(job: Job, store: JobStore) -> Path:
    return store.path("train", dict(job.deps)["train"])


def _run_train(job: Job, store: JobStore, out: Path) -> None:
    from bench.train import fit

    cfg = _cfg(job)
    data, _ = dataset_for(cfg)
    res = fit(cfg, data=data, fold=job.spec["fold"], out_dir=out, progress=False)
    np.savez(out / "eval.npz", test_ids=np.asarray(res.test_ids), test_labels=res.test_labels,
             test_probs=res.test_probs)
    for ext in extensions():
        ext.after_train(out, cfg, res.model, data)
    write_json(out / "classification.json", res.metrics)
    write_json(out / "history.json", res.history)


def _train_outputs(job: Job, store: JobStore):
    tdir = _train_dir(job, store)
    spec = json.loads((tdir / "done.json").read_text())["spec"]
    cfg = from_dict(RunConfig, spec["config"], source=str(tdir))
    set_threads(cfg.train.threads)  # as in training: a resumed run must compute as an uninterrupted one
    model, info = _checkpoint(str(tdir / "checkpoint.pt"), str(_device(cfg)))
    ev = np.load(tdir / "eval.npz")
    return cfg, model, info, ev


def select_images(data, index: dict[str, int], test_ids, max_images: int) -> list[int]:
    """Test images with a lesion mask, round-robin over classes in id order, at most ``max_images``
    (indices into ``data``; ``index`` maps an image id to its index)."""
    with_mask = [index[str(t)] for t in sorted(test_ids) if bool(data.has_mask[index[str(t)]])]
    return pick_per_class(data.labels, with_mask, total=max_images)


def _chosen_by_extension(cfg: RunConfig, data, index: dict[str, int], train_dir: Path, max_images: int):
    """The first extension's own image selection for this explain job, or None."""
    for ext in extensions():
        chosen = ext.select_images(cfg, data, index, train_dir, max_images)
        if chosen is not None:
            return chosen
    return None


def _run_explain(job: Job, store: JobStore, out: Path) -> None:
    from bench.attribution import explain

    cfg, model, _, ev = _train_outputs(job, store)
    data, index = dataset_for(cfg)
    sp = job.spec
    chosen = _chosen_by_extension(cfg, data, index, _train_dir(job, store), sp["max_images"])
    if chosen is not None:  # e.g. the shortcut suite's cue-carrying decorrelated images
        picked, prob_of = chosen
    else:
        picked = select_images(data, index, ev["test_ids"], sp["max_images"])
        prob_of = {str(t): p for t, p in zip(ev["test_ids"], ev["test_probs"])}
    device = next(model.parameters()).device
    h, w = data.images.shape[-2:]
    maps = np.full((len(picked), h, w), np.nan, dtype=np.float32)
    errors: dict[str, str] = {}
    targets = [int(data.labels[i]) for i in picked]
    options = {**sp["options"]}
    if "seed" not in options and _is_stochastic(sp["method"]):
        options["seed"] = sp["seed_explain"]
    layer = sp["layer"] or None
    bs = sp["batch_size"]
    for s in range(0, len(picked), bs):
        idx = picked[s : s + bs]
        x = data.images[idx].to(device)
        try:
            maps[s : s + len(idx)] = explain(model, x, targets[s : s + bs], sp["method"], layer=layer, **options).cpu().numpy()
        except Exception:  # isolate the image(s) at fault, keep the rest
            for j, i in enumerate(idx):
                try:
                    maps[s + j] = explain(model, x[j : j + 1], targets[s + j], sp["method"], layer=layer, **options).cpu().numpy()
                except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
                    errors[data.ids[i]] = f"{type(exc).__name__}: {exc}"
    np.save(out / "maps.npy", maps)
    ids = [data.ids[i] for i in picked]
    write_json(out / "images.json", {
        "ids": ids, "targets": targets, "labels": [int(data.labels[i]) for i in picked],
        "correct": [bool(np.argmax(prob_of[t]) == int(data.labels[i])) for t, i in zip(ids, picked)],
        "errors": errors,
    })


def _is_stochastic(method: str) -> bool:
    from bench.attribution import METHODS

    return bool(METHODS.meta(method).get("stochastic", False))


def _run_score(job: Job, store: JobStore, out: Path) -> None:
    edir = store.path("explain", dict(job.deps)["explain"])
    meta = json.loads((edir / "images.json").read_text())
    maps = np.load(edir / "maps.npy")
    cfg, model, _, _ = _train_outputs(job, store)
    data, index = dataset_for(cfg)
    idx = [index[i] for i in meta["ids"]]
    rows, curves = scoring.score(job.spec["metric"], job.spec["metric_options"], maps=maps, data=data, idx=idx,
                                 targets=meta["targets"], model=model)
    base = pd.DataFrame({"image_id": meta["ids"], "label": meta["labels"], "target": meta["targets"],
                         "correct": meta["correct"],
                         "excluded": [meta["errors"].get(i, "") for i in meta["ids"]]})
    rows_frame(base, rows).to_parquet(out / "rows.parquet", index=False)
    if curves is not None:
        curves.to_parquet(out / "curves.parquet", index=False)
    for ext in extensions():
        ext.after_score(out, job.spec["metric"], job.spec["metric_options"], maps, data, idx, base)


def _run_sanity(job: Job, store: JobStore, out: Path) -> None:
    cfg, model, _, ev = _train_outputs(job, store)
    data, index = dataset_for(cfg)
    sp = job.spec
    picked = select_images(data, index, ev["test_ids"], sp["n_images"])
    table = scoring.sanity(model, data.images[picked], [int(data.labels[i]) for i in picked], sp["method"],
                           layer=sp["layer"] or None, options=sp["options"], seed=sp["seed_explain"])
    table.to_parquet(out / "sanity.parquet", index=False)
