"""Faults: ``bench run smoke`` killed with SIGKILL at six moments across the stages and re-run each time
ends with the same results as an uninterrupted run (bit for bit: the determinism check too), with no
duplicate and no missing row and no stored job lost or recomputed; a second run on the same folder
meanwhile exits at once with the RunLocked message.

One chain, in subprocesses, with its own data root (so the phantoms are generated, and killed, here)
beside the reference run started by ``conftest.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reliability_helpers import bench_env, bench_run_cmd

pytestmark = pytest.mark.slow

KEY_COLUMNS = ["dataset", "model", "seed", "fold", "method", "metric", "image_id"]
TABLES = ("results.parquet", "classification.parquet", "curves.parquet", "sanity.parquet")


def _tmp_dirs(out: Path, stage: str) -> list[Path]:
    return list((out / "cache" / stage).glob(".tmp-*"))


def _done(out: Path, stage: str = "*") -> dict[str, str]:
    """Completion markers: ``{stage/key: marker text}``."""
    return {str(p.parent.relative_to(out / "cache")): p.read_text() for p in (out / "cache").glob(f"{stage}/*/done.json")}


def _generating(root: Path, dataset: str) -> bool:
    return any(root.glob(f".{dataset}.tmp-*")) and not (root / dataset / "manifest.csv").is_file()


class Chain:
    def __init__(self, base: Path, code: Path) -> None:
        self.code = code
        self.root = base / "data" / "datasets"
        self.root.mkdir(parents=True)
        self.out = base / "out"
        self.logs = base / "logs"
        self.logs.mkdir()
        self.kills: list[tuple[str, str]] = []  # (aimed at, observed just after the kill)
        self.snapshots: list[dict[str, str]] = []
        self.concurrent: dict = {}
        self.final_rc: int | None = None
        self.final_log = ""

    def start(self, n: int) -> tuple[subprocess.Popen, Path]:
        log = self.logs / f"run{n}.txt"
        fh = open(log, "wb")
        proc = subprocess.Popen(bench_run_cmd(self.out, self.root), cwd=self.code, env=bench_env(self.code),
                                stdout=fh, stderr=subprocess.STDOUT)
        fh.close()
        return proc, log

    def observe(self) -> str:
        """Which stage the killed run was in, from what it left behind."""
        if any(_generating(self.root, d) for d in ("synthetic-lidc_idri", "synthetic-cov_ct")):
            return "phantom generation"
        for stage in ("train", "explain", "score", "sanity"):
            if _tmp_dirs(self.out, stage):
                return stage
        if (self.out / "results.parquet").is_file() and not (self.out / "scorecard.html").is_file():
            return "assembly/report"
        return "between jobs"

    def kill_when(self, aim: str, ready, *, during=None, timeout: float = 400) -> None:
        n = len(self.kills)
        proc, log = self.start(n)
        if during is not None:
            during(proc)
        t0 = time.time()
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"run {n} ended (rc {proc.returncode}) before the kill point {aim!r}:\n"
                                     f"{log.read_text()[-3000:]}")
            if time.time() - t0 > timeout:
                proc.kill()
                raise AssertionError(f"kill point {aim!r} not reached in {timeout} s")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.kills.append((aim, self.observe()))
        self.snapshots.append(_done(self.out))

    def finish(self) -> None:
        proc, log = self.start(len(self.kills))
        self.final_rc = proc.wait(timeout=600)
        self.final_log = log.read_text()


def _second_run_meanwhile(chain: Chain):
    """Once the running sweep holds its lock, pause it (SIGSTOP: it keeps the lock, and the kill points
    stay ahead of it however slowly the second process starts), run a second sweep on the same folder
    to its end, and let the first go on (SIGCONT)."""

    def run(first: subprocess.Popen) -> None:
        lock = chain.out / ".lock"
        t0 = time.time()
        while not (lock.is_file() and f"pid {first.pid}" in lock.read_text()):
            assert first.poll() is None and time.time() - t0 < 120, "the first run never took its lock"
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)
        try:
            before = _done(chain.out)
            second = subprocess.run(bench_run_cmd(chain.out, chain.root), cwd=chain.code, env=bench_env(chain.code),
                                    capture_output=True, text=True, timeout=300)
            chain.concurrent = {"rc": second.returncode, "stderr": second.stderr, "stdout": second.stdout,
                                "unchanged": _done(chain.out) == before}
        finally:
            first.send_signal(signal.SIGCONT)
        chain.concurrent["first_alive"] = first.poll() is None

    return run


@pytest.fixture(scope="module")
def chain(tmp_path_factory, code_snapshot, note) -> Chain:
    c = Chain(tmp_path_factory.mktemp("killed"), code_snapshot)
    out, root = c.out, c.root
    c.kill_when("phantom generation", lambda: _generating(root, "synthetic-lidc_idri"))
    seen: dict[str, float] = {}

    def training() -> bool:  # a train job under way for a second past generating its phantom
        if not (_tmp_dirs(out, "train") and (root / "synthetic-lidc_idri" / "manifest.csv").is_file()):
            return False
        return time.time() - seen.setdefault("train", time.time()) > 1.0

    c.kill_when("train", training)
    c.kill_when("explain", lambda: len(_done(out, "explain")) >= 1 and bool(_tmp_dirs(out, "explain")))
    c.kill_when("score", lambda: len(_done(out, "score")) >= 8 and bool(_tmp_dirs(out, "score")),
                during=_second_run_meanwhile(c))
    c.kill_when("sanity", lambda: bool(_tmp_dirs(out, "sanity")))
    c.kill_when("assembly/report", lambda: (out / "results.parquet").is_file())
    c.finish()
    note["kill points survived"] = [observed for _, observed in c.kills]
    return c


def test_killed_six_times_across_the_stages_then_resumed_to_the_uninterrupted_results(chain, smoke_reference):
    assert chain.final_rc == 0, chain.final_log[-3000:]
    observed = [o for _, o in chain.kills]
    assert [a for a, _ in chain.kills] == observed, chain.kills  # each kill landed in the stage it aimed at
    assert len(set(observed)) >= 5
    got = pd.read_parquet(chain.out / "results.parquet")
    ref = pd.read_parquet(smoke_reference / "results.parquet")
    assert not got.duplicated(KEY_COLUMNS).any()
    missing = set(map(tuple, ref[KEY_COLUMNS].to_numpy())) - set(map(tuple, got[KEY_COLUMNS].to_numpy()))
    assert not missing and len(got) == len(ref)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)


def test_no_stored_job_was_lost_or_recomputed(chain):
    final = _done(chain.out)
    for i, snap in enumerate(chain.snapshots):
        assert set(snap) <= set(final), f"jobs stored before kill {i} are gone"
        changed = [k for k in snap if final[k] != snap[k]]
        assert not changed, f"jobs stored before kill {i} were recomputed: {changed[:3]}"
    stats = json.loads((chain.out / "run.json").read_text())["stats"]
    assert stats["failed"] == 0 and stats["skipped_done"] == len(chain.snapshots[-1])
    assert stats["skipped_done"] + sum(stats["ran"].values()) == stats["jobs"] == len(final)
    assert not list((chain.out / "cache").glob("*/.tmp-*"))  # the killed runs' partial outputs were swept
    assert not list(chain.root.glob(".*.tmp-*")) and not list(chain.root.parent.glob("reference_masks/.*.tmp-*"))
    errors = chain.out / "errors.jsonl"
    assert not errors.is_file() or errors.read_text().strip() == ""


def test_a_second_run_on_the_same_folder_exits_with_the_run_locked_message(chain):
    c = chain.concurrent
    assert c["rc"] == 1, c
    assert "another bench run is using" in c["stderr"] and "pass another --out" in c["stderr"]
    assert "Traceback" not in c["stderr"]
    assert c["first_alive"] and c["unchanged"]


def test_smoke_twice_with_one_seed_is_bit_identical_on_cpu(chain, smoke_reference):
    """Two runs from scratch (own data roots, own processes): the same phantoms byte for byte, and every
    table and gallery array identical."""
    ref_root = smoke_reference.parent / "data" / "datasets"
    for dataset in ("synthetic-lidc_idri", "synthetic-cov_ct"):
        a, b = chain.root / dataset, ref_root / dataset
        files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
        assert files and files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
        assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
        assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    for name in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(chain.out / name), pd.read_parquet(smoke_reference / name),
                                      check_exact=True, obj=name)
    for g in sorted((smoke_reference / "gallery").glob("*.npz")):
        with np.load(g) as x, np.load(chain.out / "gallery" / g.name) as y:
            assert sorted(x.files) == sorted(y.files)
            for k in x.files:
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"{g.name}:{k}")
