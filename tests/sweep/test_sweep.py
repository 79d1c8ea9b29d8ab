import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench.sweep import RESULT_COLUMNS, load_results, load_suite, run_suite
from bench.sweep.cache import RunLocked, run_lock

# torch's thread count changes float results at the bit level; pin it so in-process and subprocess
# runs compute alike whatever earlier tests did to the process's thread setting
THREADS = "train.threads=2"

pytestmark = pytest.mark.slow


def _ran(out):
    return json.loads((out / "run.json").read_text())["stats"]["ran"]


def test_smoke_writes_every_file_with_the_documented_columns(smoke_run):
    for name in ("results.parquet", "classification.parquet", "curves.parquet", "sanity.parquet", "run.json",
                 "leaderboard.csv", "leaderboard.md", "classification.md", "scorecard.html"):
        assert (smoke_run / name).is_file(), name
    res = load_results(smoke_run)
    assert list(res.columns) == RESULT_COLUMNS
    suite = load_suite("smoke")
    assert set(res["dataset"]) == set(suite.datasets) and set(res["method"]) == set(suite.methods)
    assert set(res["metric"]) == set(suite.metrics)
    # one row per image x method x metric, no duplicates
    assert not res.duplicated(["dataset", "model", "seed", "fold", "method", "metric", "image_id"]).any()
    per = res.groupby(["dataset", "method", "metric"]).size()
    assert per.nunique() == 1 or per.min() > 0
    cls = pd.read_parquet(smoke_run / "classification.parquet")
    assert len(cls) == 2 and cls["accuracy"].between(0, 1).all()
    info = json.loads((smoke_run / "run.json").read_text())
    assert info["versions"]["torch"] and info["suite"]["name"] == "smoke" and info["seeds"] == [0]
    assert sorted(p.name for p in (smoke_run / "gallery").iterdir()) == sorted(f"{d}.npz" for d in suite.datasets)


def test_second_run_does_no_work_and_gives_the_same_table(smoke_copy, data_root):
    before = load_results(smoke_copy)
    first = json.loads((smoke_copy / "run.json").read_text())["stats"]["compute_seconds_by_stage"]
    assert set(first) == {"train", "explain", "score", "sanity"} and min(first.values()) > 0
    after = run_suite("smoke", out=smoke_copy, overrides=[f"data.root='{data_root}'", THREADS], progress=False)
    assert _ran(smoke_copy) == {}
    pd.testing.assert_frame_equal(before, after)
    # nothing ran and nothing changed: the tables and the report are not rebuilt either
    stats = json.loads((smoke_copy / "run.json").read_text())["stats"]
    assert stats["outputs_rebuilt"] is False
    assert stats["compute_seconds_by_stage"] == first  # what the results cost, not what the re-run did
    info = json.loads((smoke_copy / "run.json").read_text())
    computing = info["computing_run"]  # the run that computed the results, kept through the re-run
    assert computing["ran"] and computing["seconds_total"] > info["seconds_total"]
    card = smoke_copy / "scorecard.html"
    card.unlink()  # a report file gone: the next run rebuilds the outputs
    run_suite("smoke", out=smoke_copy, overrides=[f"data.root='{data_root}'", THREADS], progress=False)
    assert card.is_file() and json.loads((smoke_copy / "run.json").read_text())["stats"]["outputs_rebuilt"] is True
    assert "compute time of these results" in card.read_text()
    assert _ran(smoke_copy) == {}


def test_changing_one_method_option_recomputes_only_that_method(smoke_copy, data_root):
    before = load_results(smoke_copy)
    run_suite("smoke", out=smoke_copy, overrides=[f"data.root='{data_root}'", THREADS, "explain.options={random={seed=7}}"],
              progress=False)
    suite = load_suite("smoke")
    n_score = len(set(m if m not in ("deletion", "insertion") else "di" for m in suite.metrics))
    assert _ran(smoke_copy) == {"explain": len(suite.datasets), "score": len(suite.datasets) * n_score}
    assert json.loads((smoke_copy / "run.json").read_text())["stats"]["outputs_rebuilt"] is True
    after = load_results(smoke_copy)
    same = before["method"] != "random"
    pd.testing.assert_frame_equal(before[same].reset_index(drop=True), after[after["method"] != "random"].reset_index(drop=True))
    assert not before[~same]["value"].equals(after[after["method"] == "random"]["value"].reset_index(drop=True))


def test_killed_run_resumes_to_the_same_results(smoke_run, tmp_path, data_root):
    out = tmp_path / "killed"
    code = ("import sys; from bench.sweep import run_suite; "
            f"run_suite('smoke', out={str(out)!r}, overrides=[\"data.root='{data_root}'\", {THREADS!r}], progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill -9 once a few jobs are stored, mid-sweep
        if len(list((out / "cache").glob("*/*/done.json"))) >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.parquet").exists()
    resumed = run_suite("smoke", out=out, overrides=[f"data.root='{data_root}'", THREADS], progress=False)
    pd.testing.assert_frame_equal(resumed, load_results(smoke_run))


def test_two_runs_on_one_folder_do_not_both_write(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunLocked, match="another bench run is using"):
            run_suite("smoke", out=tmp_path, progress=False)


def test_code_version_follows_the_stage_sources_but_not_their_cli(tmp_path, monkeypatch):
    from bench.sweep import cache

    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "loader.py").write_text("A = 1\n")
    (pkg / "data" / "cli.py").write_text("B = 1\n")
    monkeypatch.setattr(cache, "PACKAGE_ROOT", pkg)
    monkeypatch.setattr(cache, "STAGE_SOURCES", {"train": ("data",)})

    def version():
        monkeypatch.setattr(cache, "_CODE_VERSIONS", {})
        return cache.code_version("train")

    v0 = version()
    (pkg / "data" / "cli.py").write_text("B = 2  # a new sub-command\n")
    assert version() == v0
    (pkg / "data" / "loader.py").write_text("A = 2\n")
    assert version() != v0
