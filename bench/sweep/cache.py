"""The sweep's content-addressed job store: atomic writes, completion markers, and a run lock.

A job's outputs live in ``<out>/cache/<stage>/<key>/``. They are written to a temporary folder
first and renamed into place when complete, so a killed run never leaves a partial result where a
reader would find it; a folder without its ``done.json`` marker is never read (it is swept away on
the next run). Keys are SHA-256 digests of the job's full resolved configuration and the code
version of its stage (:func:`bench.sweep.sources.code_version`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

def stable_json(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces) used for hashing configurations."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(stable_json(obj).encode()).hexdigest()[:n]


class JobStore:
    """Completed job outputs under ``<out>/cache``."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out) / "cache"

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def done(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / "done.json").is_file()

    @contextlib.contextmanager
    def writing(self, stage: str, key: str, meta: dict[str, Any]) -> Iterator[Path]:
        """Yield a temporary folder; on success it is moved to ``path(stage, key)`` with ``done.json``."""
        final = self.path(stage, key)
        tmp = final.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True, exist_ok=False)
        try:
            yield tmp
            write_json(tmp / "done.json", {**meta, "finished": time.time()})
            if final.exists():  # an incomplete leftover (no marker): replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def sweep_partials(self) -> int:
        """Remove temporary folders and folders without a marker left by a killed run."""
        n = 0
        if not self.root.exists():
            return 0
        for stage in self.root.iterdir():
            for d in stage.iterdir() if stage.is_dir() else ():
                if d.name.startswith(".tmp-") or not (d / "done.json").is_file():
                    shutil.rmtree(d, ignore_errors=True)
                    n += 1
        return n


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def write_atomic(path: Path, writer) -> Path:
    """Call ``writer(tmp_path)`` then rename the temporary file to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class RunLocked(RuntimeError):
    """Another run holds the output folder."""


@contextlib.contextmanager
def run_lock(out: str | Path, *, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``<out>/.lock`` (released when the process ends, even by SIGKILL)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ".lock"
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise RunLocked(
                f"another bench run is using {out} ({holder}); wait for it to finish, or pass another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        yield
    finally:
        fh.close()
