"""The Ray backend: a real local Ray instance (2 CPUs) runs the smoke suite and matches the local backend."""

import json
import os
import shutil
import signal
import sys
import threading
import time

import pandas as pd
import pytest

from bench.sweep import load_results, run_suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _overrides(data_root, *more):
    return [f"data.root='{data_root}'", "train.threads=2", *more]  # as the shared smoke_run


def _stats(out):
    return json.loads((out / "run.json").read_text())["stats"]


def _same_run_folder(a, b):
    """Every table the report reads is identical."""
    pd.testing.assert_frame_equal(load_results(a), load_results(b))
    for name in ("classification.parquet", "curves.parquet", "sanity.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name))


@pytest.fixture(scope="module")
def ray_run(ray_instance, smoke_run, data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray") / "smoke"
    run_suite("smoke", out=out, overrides=_overrides(data_root), progress=False, backend="ray")
    return out


def test_ray_backend_gives_the_local_backends_results(ray_run, smoke_run):
    _same_run_folder(ray_run, smoke_run)
    stats = _stats(ray_run)
    assert stats["backend"] == "ray" and stats["failed"] == 0 and stats["skipped_done"] == 0
    assert sum(stats["ran"].values()) == stats["jobs"] == _stats(smoke_run)["jobs"]
    assert (ray_run / "scorecard.html").is_file()


def test_a_ray_run_is_finished_locally_and_a_local_run_on_ray_without_redoing_work(ray_run, smoke_run, data_root,
                                                                                   tmp_path, ray_instance):
    # Ray -> local: the local backend finds every job stored
    ray_copy = tmp_path / "from_ray"
    shutil.copytree(ray_run, ray_copy)
    run_suite("smoke", out=ray_copy, overrides=_overrides(data_root), progress=False, report=False)
    assert _stats(ray_copy)["ran"] == {}
    # local, interrupted after training and some maps -> Ray runs only what is missing
    local = tmp_path / "from_local"
    shutil.copytree(smoke_run, local)
    shutil.rmtree(local / "cache" / "score")
    explain = sorted((local / "cache" / "explain").iterdir())
    for d in explain[: len(explain) // 2]:
        shutil.rmtree(d)
    run_suite("smoke", out=local, overrides=_overrides(data_root), progress=False, report=False, backend="ray")
    ran = _stats(local)["ran"]
    assert set(ran) == {"explain", "score"} and ran["explain"] == len(explain) // 2
    _same_run_folder(local, smoke_run)


def test_a_killed_ray_worker_loses_only_its_job_and_the_results_are_identical(ray_instance, smoke_run, data_root,
                                                                               tmp_path):
    psutil = pytest.importorskip("psutil")
    killed: list[int] = []
    stop = threading.Event()

    def kill_one_running_job():  # SIGKILL the first worker of *this* Ray instance seen running a job
        me = psutil.Process()
        while not stop.is_set() and not killed:
            for p in me.children(recursive=True):
                try:
                    if p.cmdline()[:1] == ["ray::run_job"]:
                        time.sleep(0.5)  # well inside the job (train jobs take seconds)
                        if p.cmdline()[:1] == ["ray::run_job"]:
                            os.kill(p.pid, signal.SIGKILL)
                            killed.append(p.pid)
                            break
                except (psutil.Error, IndexError):
                    continue
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_running_job, daemon=True)
    killer.start()
    out = tmp_path / "killed"
    one = "synthetic-cov_ct"  # one dataset of the smoke suite: half the work, the same jobs and keys for it
    try:
        run_suite("smoke", out=out, overrides=_overrides(data_root, f"datasets=['{one}']"), progress=False,
                  report=False, backend="ray")
    finally:
        stop.set()
        killer.join(5)
    assert killed, "no Ray worker was seen running a job"
    assert _stats(out)["failed"] == 0  # the killed job was retried
    for name in ("results.parquet", "classification.parquet", "curves.parquet", "sanity.parquet"):
        ref = pd.read_parquet(smoke_run / name)
        ref = ref[ref["dataset"] == one].reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.read_parquet(out / name), ref)


def test_failed_jobs_are_recorded_and_their_dependents_skipped_as_locally(ray_instance, data_root, tmp_path):
    bad = _overrides(data_root, "train.lr=nan", "datasets=['synthetic-cov_ct']")
    records = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        run_suite("smoke", out=out, overrides=bad, progress=False, report=False, backend=backend)
        lines = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
        records[backend] = sorted((r["stage"], r["key"], r["error"].splitlines()[0]) for r in lines)
        assert _stats(out)["failed"] == _stats(out)["jobs"]
    assert records["ray"] == records["local"]
    assert sum(e.startswith("skipped: a job it depends on failed") for _, _, e in records["ray"]) == len(records["ray"]) - 1


def test_without_ray_the_ray_backend_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RuntimeError, match=r"pip install -e \.\[ray\]"):
        run_suite("smoke", out=tmp_path, backend="ray")
    assert not (tmp_path / "cache").exists()


def test_the_cli_passes_backend_and_address(monkeypatch):
    from bench.cli import build_parser

    args = build_parser().parse_args(["run", "smoke", "--backend", "ray", "--address", "auto"])
    assert (args.backend, args.address) == ("ray", "auto")
    assert build_parser().parse_args(["run", "smoke"]).backend == "local"
    with pytest.raises(ValueError, match="--address needs --backend ray"):
        run_suite("smoke", address="auto")
