"""Run a suite locally: plan the jobs, run those not yet stored, assemble the results, build the report.

Re-running skips every job whose key is stored, so an interrupted sweep (Ctrl-C, ``kill -9``)
finishes with nothing lost or duplicated: results tables are always rebuilt from the stored job
outputs, never appended to. A lock on the output folder keeps two runs from writing it at once.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.config import RunConfig, from_dict, to_dict
from bench.data.paths import source_checkout
from bench.data.selection import pick_per_class
from bench.results import CLASSIFICATION_COLUMNS, IDENT, RESULT_COLUMNS, RESULT_TYPES
from bench.sweep.cache import JobStore, digest, run_lock, write_atomic, write_json
from bench.sweep.driver import LocalBackend, drive
from bench.sweep.errors import rewrite_errors
from bench.sweep.extensions import extensions
from bench.sweep.jobs import Job, plan, runner_of
from bench.sweep.loading import dataset_for
from bench.sweep.repeatability import repeatability_table
from bench.sweep.sources import code_version
from bench.sweep.suite import Suite, load_suite
from bench.sweep.tables import read_table, stack, write_parquet
from bench.sweep.trust_tables import add_lesion_use, write_trust_tables


def default_out(suite: Suite) -> Path:
    """``reports/<suite>``; ``reports/<suite>-<checkpoint file stem>`` for a suite that evaluates a checkpoint (so
    it never replaces the tables of the suite's own trained run)."""
    if suite.checkpoint.path:
        return Path("reports") / f"{suite.name}-{Path(suite.checkpoint.path).stem}"
    return Path("reports") / suite.name


def run_suite(
    suite: Suite | str = "quick",
    *,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool | None = None,
    report: bool = True,
    backend: Any = "local",
    address: str | None = None,
) -> pd.DataFrame:
    """Run ``suite`` (a :class:`Suite`, a built-in name or a TOML path) into ``out``; return the results table.

    Writes ``results.parquet``, ``classification.parquet``, ``curves.parquet``, ``sanity.parquet``,
    ``verified.parquet``, ``class_sensitivity.parquet`` (:mod:`bench.sweep.trust_tables`),
    ``gallery/*.npz``, ``errors.jsonl``, ``run.json`` and (``report=True``) the leaderboards and
    ``scorecard.html``. Failed jobs are recorded in ``errors.jsonl`` and their dependents skipped;
    the other jobs still run. ``RunSummary``-like counts are in ``run.json``.

    ``backend``: ``"local"`` (this process, one job at a time) or ``"ray"`` (each job a Ray task; on the
    cluster at ``address``, else a local Ray instance; or a :class:`bench.sweep.ray_backend.RayBackend`
    with more options). Both use the same store and give the same results.
    """
    ray_backend = _ray_backend(backend, address)
    if not isinstance(suite, Suite):
        suite = load_suite(suite, overrides)
    out = Path(out) if out is not None else default_out(suite)
    check_prepared(suite)
    t_start = time.perf_counter()
    with run_lock(out):
        store = JobStore(out)
        store.sweep_partials()
        jobs = plan(suite)
        if ray_backend is None:
            stats = drive(jobs, store, out, LocalBackend(store), progress)
        else:
            from bench.sweep.ray_backend import run_jobs

            stats = run_jobs(jobs, store, out, progress, ray_backend)
        t_jobs = time.perf_counter() - t_start
        stored = [j for j in jobs if store.done(j.stage, j.key)]
        stamp, key = out / OUTPUTS_STAMP, outputs_key(suite, stored)
        up_to_date = (report and not stats["ran"] and not stats["failed"] and stamp.is_file()
                      and stamp.read_text() == key and all((out / f).is_file() for f in KEY_OUTPUTS))
        if up_to_date:  # nothing ran and nothing it is built from changed: the tables and report stand
            results = pd.read_parquet(out / "results.parquet")
        else:
            stamp.unlink(missing_ok=True)  # a rebuild cut short leaves no stamp, so the next run redoes it
            results = assemble(suite, jobs, store, out)
        stats["outputs_rebuilt"] = not up_to_date
        stats["compute_seconds_by_stage"] = stored_seconds(stored, store)
        _write_run_json(suite, out, stats, t_jobs, time.perf_counter() - t_start, checkpoints=loaded_checkpoints(jobs))
        if report and not up_to_date:
            from bench.report import build_report

            r = suite.report
            build_report(out, n_resamples=r.bootstrap, reference=r.reference, baselines=r.baselines,
                         model_blind=r.model_blind)
            write_atomic(stamp, lambda tmp: tmp.write_text(key))
    return results


def stored_seconds(stored: list[Job], store: JobStore) -> dict[str, float]:
    """Seconds each stage's ``stored`` jobs took when they ran (their ``timing.json``), whichever
    invocation ran them: what the results cost to compute, unlike the wall time of a re-run."""
    total: Counter = Counter()
    for job in stored:
        f = store.path(job.stage, job.key) / "timing.json"
        if f.is_file():
            try:
                total[runner_of(job)] += float(json.loads(f.read_text()).get("seconds", 0.0))
            except (ValueError, TypeError, AttributeError):  # a hand-edited or foreign file: not counted
                continue
    return {k: round(v, 1) for k, v in total.items()}


OUTPUTS_STAMP = "outputs.key"
KEY_OUTPUTS = ("results.parquet", "classification.parquet", "leaderboard.csv", "leaderboard.md", "scorecard.html")


def outputs_key(suite: Suite, stored: list[Job]) -> str:
    """What the run folder's tables and report are built from: the stored jobs of this plan, the report
    options and the code that assembles and reports them. Equal keys mean equal outputs."""
    return digest({"suite": suite.name, "jobs": [j.key for j in stored], "report": to_dict(suite.report),
                   "code": code_version("report")}, 32)


def _ray_backend(backend: Any, address: str | None):
    """``None`` for the local backend, else the :class:`RayBackend` to use (Ray imported: it must be installed)."""
    if backend == "local" and address is None:
        return None
    from bench.sweep.ray_backend import RayBackend, import_ray

    if backend == "ray":
        backend = RayBackend(address=address)
    if not isinstance(backend, RayBackend):
        raise ValueError(f"backend must be 'local' or 'ray' (got {backend!r}); --address needs --backend ray")
    import_ray()
    return backend


def check_prepared(suite: Suite) -> None:
    """Raise one ``FileNotFoundError`` naming every real dataset of ``suite`` that is not prepared."""
    from bench.data import is_prepared

    missing = []
    for dataset in suite.datasets:
        cfg = suite.run_config(dataset, suite.models[0], suite.seeds[0])
        if not dataset.startswith("synthetic-") and not is_prepared(dataset, root=cfg.data.root):
            missing.append(dataset)
    if missing:
        how = "; ".join(f"bench prepare {d} --raw DIR" for d in missing)
        raise FileNotFoundError(
            f"suite {suite.name}: dataset(s) not prepared: {', '.join(missing)}. Prepare each from its raw "
            f"download ({how}; README section 'Real datasets' says where to get them), or run the "
            "default suite on the built-in phantoms: bench run quick"
        )


def assemble(suite: Suite, jobs: list[Job], store: JobStore, out: Path) -> pd.DataFrame:
    """Rebuild every results file from the stored job outputs (deterministic order: the plan's)."""
    rows, curves, sanity, classification = [], [], [], []
    for job in jobs:
        if not store.done(job.stage, job.key):
            continue
        d = store.path(job.stage, job.key)
        ident = {k: job.spec[k] for k in IDENT}
        if job.stage == "train":
            m = json.loads((d / "classification.json").read_text())
            key = ident["dataset"].removeprefix("synthetic-")
            classification.append({"run": suite.name, **ident, "n_test": m["n"],
                                   **{k: m[k] for k in ("accuracy", "sensitivity", "specificity", "auc", "f1")},
                                   "average": m["average"], "positive": m.get("positive") or "",
                                   "real": not ident["dataset"].startswith("synthetic-"), "paper_key": key})
        elif job.stage == "score":
            tags = {**ident, "method": job.spec["method"]}
            rows.append((read_table(d / "rows.parquet"), {"run": suite.name, **tags}))
            if (d / "curves.parquet").is_file():
                curves.append((read_table(d / "curves.parquet"), tags))
        elif job.stage == "sanity":
            sanity.append((read_table(d / "sanity.parquet"), {**ident, "method": job.spec["method"]}))
    results = stack(rows)
    results = results.reindex(columns=RESULT_COLUMNS) if results is not None else pd.DataFrame(columns=RESULT_COLUMNS)
    results = results.astype(RESULT_TYPES)
    # verified.parquet, class_sensitivity.parquet; each result row gets its image's lesion_drop and lesion_used
    results = add_lesion_use(results, write_trust_tables(suite, jobs, store, out), suite.report.verified_drop)
    write_parquet(out / "results.parquet", results)
    write_parquet(out / "classification.parquet", pd.DataFrame(classification, columns=CLASSIFICATION_COLUMNS))
    if curves:
        write_parquet(out / "curves.parquet", stack(curves))
    if sanity:
        write_parquet(out / "sanity.parquet", stack(sanity))
    _write_galleries(suite, jobs, store, out)
    _write_repeatability(jobs, store, out)
    rewrite_errors(jobs, store, out)
    for ext in extensions():  # e.g. the shortcut suite's shortcuts.parquet and confounder_results.parquet
        ext.write_tables(suite, jobs, store, out)
    return results


def _write_repeatability(jobs: list[Job], store: JobStore, out: Path) -> None:
    """``repeatability.parquet`` (:mod:`bench.sweep.repeatability`) when some method was explained on the same
    dataset by the models of two or more seeds; references (made from the masks, not the model) are left out."""
    from bench.attribution.references import is_reference

    explained: dict[tuple, dict[int, Path]] = {}
    for job in jobs:
        if job.stage == "explain" and not is_reference(job.spec["method"]) and store.done("explain", job.key):
            group = (job.spec["dataset"], job.spec["model"], job.spec["fold"], job.spec["method"])
            explained.setdefault(group, {})[int(job.spec["seed"])] = store.path("explain", job.key)
    if any(len(d) > 1 for d in explained.values()):
        write_parquet(out / "repeatability.parquet", repeatability_table(explained))


def _write_galleries(suite: Suite, jobs: list[Job], store: JobStore, out: Path) -> None:
    """Per dataset (first model, seed and fold): a few explained images per class with every method's map."""
    per_dataset: dict[str, tuple[str, dict[str, Path]]] = {}
    for job in jobs:
        if job.stage != "explain" or not store.done("explain", job.key):
            continue
        train_key = dict(job.deps)["train"]
        tkey, dirs = per_dataset.setdefault(job.spec["dataset"], (train_key, {}))
        if tkey == train_key:  # the first (model, seed, fold) of each dataset only
            dirs[job.spec["method"]] = store.path("explain", job.key)
    for dataset, (train_key, dirs) in per_dataset.items():
        tdir = store.path("train", train_key)
        spec = json.loads((tdir / "done.json").read_text())["spec"]
        cfg = from_dict(RunConfig, spec["config"], source=str(tdir))
        data, index = dataset_for(cfg)
        meta = json.loads((next(iter(dirs.values())) / "images.json").read_text())
        chosen = sorted(pick_per_class(meta["labels"], per_class=suite.report.gallery_per_class))  # in explain order
        idx = [index[meta["ids"][p]] for p in chosen]
        arrays = {"images": data.images[idx].numpy(), "masks": data.masks[idx].numpy(),
                  "labels": np.asarray([meta["labels"][p] for p in chosen]),
                  "ids": np.asarray([meta["ids"][p] for p in chosen]), "class_names": np.asarray(data.class_names)}
        for method, d in dirs.items():
            arrays[f"map__{method}"] = np.load(d / "maps.npy")[chosen]
        (out / "gallery").mkdir(exist_ok=True)
        write_atomic(out / "gallery" / f"{dataset}.npz", lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))


def _git_revision() -> str:
    try:
        root = source_checkout()  # an installed package has no revision of its own
        if root is None:
            return ""
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def loaded_checkpoints(jobs: list[Job]) -> list[dict[str, Any]]:
    """For ``run.json``: per job that loads a checkpoint instead of training (:mod:`bench.sweep.checkpoints`), its
    ``dataset, model, seed, fold`` and the checkpoint's ``path, sha256, kind, classes, split`` (where the test
    split came from, in words), ``trained_on``; empty for a suite that trains."""
    return [{**{k: j.spec[k] for k in IDENT}, **j.spec["checkpoint"]} for j in jobs
            if j.stage == "train" and "checkpoint" in j.spec]


def _write_run_json(suite: Suite, out: Path, stats: dict, t_jobs: float, t_total: float, *,
                    checkpoints: list[dict[str, Any]] = ()) -> None:
    from bench.train import environment

    try:
        import resource

        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:  # not on Windows
        peak_mb = float("nan")
    finished = time.strftime("%Y-%m-%d %H:%M:%S")
    this = {"seconds_total": t_total, "seconds_jobs": t_jobs, "peak_rss_mb": peak_mb, "finished": finished,
            "ran": stats.get("ran", {})}
    if stats.get("ran"):
        computing = this
    else:  # nothing ran: keep the record of the invocation that computed (some of) the stored results
        try:
            computing = json.loads((out / "run.json").read_text()).get("computing_run")
        except (OSError, ValueError, AttributeError):
            computing = None
    write_json(out / "run.json", {
        "suite": to_dict(suite), "seeds": list(suite.seeds), "versions": environment(),
        "hardware": {"machine": platform.machine(), "cpus": os.cpu_count()}, "git_revision": _git_revision(),
        "stats": stats, "seconds_jobs": t_jobs, "seconds_total": t_total, "peak_rss_mb": peak_mb,
        "finished": finished, "command": " ".join(sys.argv), "computing_run": computing,
        **({"checkpoints": list(checkpoints)} if checkpoints else {}),
    })
