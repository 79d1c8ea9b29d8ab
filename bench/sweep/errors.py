"""The run folder's error log, ``errors.jsonl``: one JSON object per failed or skipped job and per excluded image.

Fields: ``stage``, ``job`` (its label), ``key``, ``dataset``, ``image_id`` ("" for a whole job), ``error``,
and for a failed job ``time`` and ``traceback``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.sweep.cache import JobStore, write_atomic

ERRORS_FILE = "errors.jsonl"


def log_error(out: Path, job, error: str, tb: str = "", image_id: str = "") -> None:
    """Append one record about ``job`` (a :class:`bench.sweep.jobs.Job`) to ``<out>/errors.jsonl``."""
    rec = {"stage": job.stage, "job": job.label, "key": job.key, "dataset": job.spec.get("dataset", ""),
           "image_id": image_id, "error": error, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    if tb:
        rec["traceback"] = tb
    with open(Path(out) / ERRORS_FILE, "a") as fh:
        fh.write(json.dumps(rec) + "\n")


def rewrite_errors(jobs: list, store: JobStore, out: Path) -> None:
    """Make ``errors.jsonl`` describe the plan ``jobs`` only: jobs that are still failed (or skipped), once
    each, and every image a stored explanation excluded (from its ``images.json``)."""
    path = Path(out) / ERRORS_FILE
    by_key = {j.key: j for j in jobs}
    latest: dict[tuple[str, str], dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            job = by_key.get(rec.get("key", ""))
            if job is not None and not rec.get("image_id") and not store.done(job.stage, job.key):
                latest[(job.key, "")] = rec
    for job in jobs:
        if job.stage == "explain" and store.done(job.stage, job.key):
            meta = json.loads((store.path(job.stage, job.key) / "images.json").read_text())
            for image_id, error in meta.get("errors", {}).items():
                latest[(job.key, image_id)] = {"stage": job.stage, "job": job.label, "key": job.key,
                                               "dataset": job.spec["dataset"], "image_id": image_id, "error": error}
    text = "".join(json.dumps(r) + "\n" for r in latest.values())
    if text or path.exists():
        write_atomic(path, lambda tmp: tmp.write_text(text))


__all__ = ["ERRORS_FILE", "log_error", "rewrite_errors"]
