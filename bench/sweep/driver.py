"""The job driver: one loop of bookkeeping (what is done, failures and the jobs they block, the error log,
progress, the stats) over a backend that executes ready jobs.

A backend is any object with ``run(todo, failed, progress) -> iterator of (job, Outcome)``: it executes the
jobs of ``todo`` (in plan order: every job after its dependencies) and yields each one's outcome as it
finishes. ``failed`` is the driver's live set of failed or skipped job keys, so a backend can skip a job
whose dependency failed without running it. :class:`LocalBackend` runs them here, one at a time;
:class:`bench.sweep.ray_backend.RayExecutor` runs them as Ray tasks.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench.sweep.cache import JobStore
from bench.sweep.errors import log_error
from bench.sweep.jobs import Job, execute, runner_of


@dataclass(frozen=True)
class Outcome:
    """How one job ended: ``status`` "ok", "failed", "skipped" (a job it depends on failed: ``blocked``
    names that job's key) or "cached" (another process stored it meanwhile: nothing ran); ``seconds`` it
    ran; ``error`` and ``traceback`` of a failure."""

    status: str
    seconds: float = 0.0
    error: str = ""
    traceback: str = ""
    blocked: str = ""


class Progress:
    """The progress bar (on a terminal) or one line per finished job (elsewhere)."""

    def __init__(self, total: int, show: bool | None) -> None:
        self.tty = sys.stderr.isatty() if show is None else show
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.bar = tqdm(total=total, disable=not self.tty, unit="job", dynamic_ncols=True)

    def started(self, job: Job) -> None:
        self.bar.set_description(job.label[:60])

    def waiting(self, status: str) -> None:
        """Between completions: refresh the backend's status (e.g. "2 running, 5 queued")."""
        self.bar.set_postfix_str(status)

    def finished(self, job: Job, status: str = "") -> None:
        self.n += 1
        if status:
            self.bar.set_description(job.label[:60])
            self.bar.set_postfix_str(status, refresh=False)
        self.bar.update(1)
        if not self.tty:
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / self.n * (self.total - self.n)
            extra = f"; {status}" if status else ""
            print(f"[{self.n}/{self.total}] {job.label} ({elapsed:.0f} s elapsed, ~{eta:.0f} s left{extra})",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def drive(jobs: list[Job], store: JobStore, out: Path, backend, progress: bool | None) -> dict[str, Any]:
    """Run the jobs of ``jobs`` that ``store`` does not hold on ``backend``; failures are logged to
    ``errors.jsonl`` and block their dependents, the other jobs still run.

    Returns the stats of ``run.json``: ``jobs``, ``ran`` (per stage; a job that loads a checkpoint in a train
    slot counts as ``load``), ``skipped_done`` (already stored), ``failed`` (failed or skipped), ``seconds_by_stage``.
    """
    todo = [j for j in jobs if not store.done(j.stage, j.key)]
    failed: set[str] = set()
    seconds: Counter = Counter()
    ran: Counter = Counter()
    shown = Progress(len(todo), progress)
    try:
        for job, res in backend.run(todo, failed, shown):
            if res.status == "ok":
                ran[runner_of(job)] += 1
            elif res.status == "cached":
                pass
            elif res.status == "skipped":
                failed.add(job.key)
                log_error(out, job, f"skipped: a job it depends on failed ({res.blocked})")
            else:
                failed.add(job.key)
                log_error(out, job, res.error, tb=res.traceback)
                print(f"bench: job failed: {job.label}: {res.error}", file=sys.stderr, flush=True)
            if res.status in ("ok", "failed"):
                seconds[runner_of(job)] += res.seconds
            shown.finished(job, backend.status())
    finally:
        shown.close()
    return {"jobs": len(jobs), "ran": dict(ran), "skipped_done": len(jobs) - len(todo), "failed": len(failed),
            "seconds_by_stage": dict(seconds)}


class LocalBackend:
    """Run each job in this process, one at a time, in plan order."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def run(self, todo: list[Job], failed: set[str], progress: Progress) -> Iterator[tuple[Job, Outcome]]:
        for job in todo:
            progress.started(job)
            blocked = [k for _, k in job.deps if k in failed]
            if blocked:
                yield job, Outcome("skipped", blocked=blocked[0])
                continue
            t = time.perf_counter()
            try:
                execute(job, self.store)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one failed job must not stop the sweep
                yield job, Outcome("failed", time.perf_counter() - t, f"{type(exc).__name__}: {exc}",
                                   traceback.format_exc())
                continue
            yield job, Outcome("ok", time.perf_counter() - t)

    def status(self) -> str:
        return ""


__all__ = ["LocalBackend", "Outcome", "Progress", "drive"]
