"""Faults inside a sweep: one image a method fails on is excluded, logged and reported while the sweep goes
on; a job that cannot succeed (training diverges to NaN) fails alone with a clear message; a full disk or
a read-only output folder is a clear error and the results already written stay readable.

A tiny suite (the smoke phantoms, two cheap methods, two metrics, one epoch) run in this process, so
the faults can be injected with monkeypatch.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import bench.attribution
import bench.train
from bench.cli import main as bench_main
from bench.sweep.runner import OUTPUTS_STAMP

pytestmark = pytest.mark.slow

BAD_DATASET, FATAL_DATASET = "synthetic-lidc_idri", "synthetic-cov_ct"
FAILS = "RuntimeError: simulated: the method cannot explain this image"


def _overrides(root: Path) -> list[str]:
    return [f"data.root='{root}'", 'methods=["saliency","centre"]', "references=[]", 'metrics=["pointing_game","iou"]',
            "score.sanity_methods=[]", "class_sensitivity.composites=0", "train.epochs=1", "explain.max_images=6",
            "report.bootstrap=50"]


def _cli(out: Path, root: Path) -> list[str]:
    args = ["run", "smoke", "--out", str(out)]
    for o in _overrides(root):
        args += ["--set", o]
    return args


class Faults:
    """saliency raises on one chosen image of BAD_DATASET; FATAL_DATASET trains with lr=1e30 and diverges."""

    def __init__(self, root: Path) -> None:
        from bench.sweep import load_suite
        from bench.sweep.loading import dataset_for, select_images

        suite = load_suite("smoke", _overrides(root))
        cfg = suite.run_config(BAD_DATASET, suite.models[0], suite.seeds[0])
        data, index = dataset_for(cfg)  # generates the phantom
        split = bench.train.resolve_split(data, cfg, 0)
        picked = select_images(data, index, [data.ids[i] for i in split.test], suite.explain.max_images)
        self.bad = picked[1]
        self.bad_id = data.ids[self.bad]
        self.bad_image = data.images[self.bad].flatten()
        self._explain, self._fit = bench.attribution.explain, bench.train.fit

    def explain(self, model, images, targets, method, **options):
        if method == "saliency":
            same = (images.detach().cpu().flatten(1) == self.bad_image[None]).all(dim=1)
            if bool(same.any()):
                raise RuntimeError("simulated: the method cannot explain this image")
        return self._explain(model, images, targets, method, **options)

    def fit(self, cfg, **kwargs):
        if cfg.data.dataset == FATAL_DATASET:
            cfg = replace(cfg, train=replace(cfg.train, lr=1e30))
        return self._fit(cfg, **kwargs)

    def install(self, mp: pytest.MonkeyPatch) -> None:
        mp.setattr(bench.attribution, "explain", self.explain)
        mp.setattr(bench.train, "fit", self.fit)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(out, root, faults, cli exit code, its stderr)`` of the tiny suite run through ``bench run``."""
    base = tmp_path_factory.mktemp("tiny")
    root, out = base / "data" / "datasets", base / "out"
    root.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("BENCH_MASK_ROOT", raising=False)
        faults = Faults(root)
        faults.install(mp)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = bench_main(_cli(out, root))
    return out, root, faults, rc, err.getvalue()


def _errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines() if line.strip()]


def test_one_bad_image_is_logged_excluded_and_the_sweep_goes_on(tiny):
    out, _, faults, _, _ = tiny
    logged = [e for e in _errors(out) if e["image_id"]]
    assert len(logged) == 1
    (e,) = logged
    assert (e["stage"], e["dataset"], e["image_id"]) == ("explain", BAD_DATASET, faults.bad_id)
    assert e["error"] == FAILS and "saliency" in e["job"]
    res = pd.read_parquet(out / "results.parquet")
    mine = res[(res["dataset"] == BAD_DATASET)]
    hit = (mine["image_id"] == faults.bad_id) & (mine["method"] == "saliency")
    assert hit.sum() == 2  # two metrics
    assert (mine.loc[hit, "excluded"] == FAILS).all() and mine.loc[hit, "value"].isna().all()
    assert not mine.loc[hit, "degenerate"].any()
    others = mine[~hit]
    assert (others["excluded"] == "").all() and others["value"].notna().all()
    assert len(mine[mine["method"] == "saliency"]) == len(mine[mine["method"] == "centre"]) == 12  # 6 images x 2


def test_the_leaderboard_and_the_scorecard_say_how_many_images_were_excluded_and_why(tiny):
    out, _, faults, _, _ = tiny
    board = pd.read_csv(out / "leaderboard.csv")
    sal = board[(board["dataset"] == BAD_DATASET) & (board["method"] == "saliency")]
    assert (sal["n_excluded"] == 1).all() and (sal["n_valid"] == 5).all()
    assert (board.drop(sal.index)["n_excluded"] == 0).all()
    md = (out / "leaderboard.md").read_text()
    assert "## Excluded images" in md and f"| {BAD_DATASET} | ff_vgg19 | saliency | 1 |" in md
    html = (out / "scorecard.html").read_text()  # the reason, and the image
    assert "simulated: the method cannot explain this image" in html and faults.bad_id in html


def test_a_diverging_training_fails_its_job_clearly_and_the_others_still_run(tiny):
    out, _, _, rc, stderr = tiny
    assert rc == 1
    assert f"job failed: train {FATAL_DATASET}" in stderr and "training diverged" in stderr
    assert "lower train.lr (now 1e+30)" in stderr and "Traceback" not in stderr
    errs = _errors(out)
    train = [e for e in errs if e["stage"] == "train"]
    assert len(train) == 1 and train[0]["dataset"] == FATAL_DATASET and "training diverged" in train[0]["error"]
    skipped = [e for e in errs if e["error"].startswith("skipped: a job it depends on failed")]
    # explain, score, and the verify job of the model
    assert {e["dataset"] for e in skipped} == {FATAL_DATASET} and len(skipped) == 2 + 2 * 2 + 1
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert stats["failed"] == 1 + len(skipped)
    assert stats["ran"] == {"train": 1, "explain": 2, "score": 4, "verify": 1}  # every job of the other dataset ran
    res = pd.read_parquet(out / "results.parquet")
    assert set(res["dataset"]) == {BAD_DATASET}
    cls = pd.read_parquet(out / "classification.parquet")
    assert list(cls["dataset"]) == [BAD_DATASET]


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}


def test_a_full_disk_is_a_clear_error_and_what_was_written_stays_readable(tiny, tmp_path, capsys, monkeypatch):
    src, root, faults, _, _ = tiny
    out = tmp_path / "run"
    shutil.copytree(src, out)
    (out / OUTPUTS_STAMP).unlink()  # as after a change to the report code: the outputs are rebuilt
    before = _snapshot(out)
    real = pd.DataFrame.to_parquet

    def half_then_full(self, path, *args, **kwargs):  # the disk fills up halfway through the file
        real(self, path, *args, **kwargs)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    faults.install(monkeypatch)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_full)
    monkeypatch.setattr(bench.train, "fit", lambda *a, **k: pytest.fail("no job may run: all are stored"))
    monkeypatch.setattr("bench.sweep.runner.plan", _stored_only(out))
    assert bench_main(_cli(out, root)) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "the disk or quota is full" in err and "Traceback" not in err
    after = _snapshot(out)
    assert after["results.parquet"] == before["results.parquet"]  # the old table, whole
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), pd.read_parquet(src / "results.parquet"))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written file left

    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)  # space freed: the same command finishes the job
    capsys.readouterr()
    assert bench_main(_cli(out, root)) == 0
    info = json.loads((out / "run.json").read_text())["stats"]
    assert info["ran"] == {} and info["outputs_rebuilt"] is True


def _stored_only(out: Path):
    """``plan`` without the jobs that never completed (the diverging dataset's), so a re-run is assembly only."""
    from bench.sweep.cache import JobStore
    from bench.sweep.jobs import plan

    def only(suite):
        store = JobStore(out)
        return [j for j in plan(suite) if store.done(j.stage, j.key)]

    return only


def test_a_read_only_output_folder_is_a_clear_error(tiny, tmp_path, capsys, monkeypatch):
    import builtins

    import bench.sweep.cache as cache

    src, root, _, _, _ = tiny
    out = tmp_path / "run"
    shutil.copytree(src, out)
    before = _snapshot(out)

    def read_only(path, mode="r", *args, **kwargs):  # what a read-only mount answers (root ignores chmod)
        if any(c in mode for c in "wax+") and Path(path).resolve().is_relative_to(out.resolve()):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(cache, "open", read_only, raising=False)
    assert bench_main(_cli(out, root)) == 1
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "pass a writable --out" in err and "Traceback" not in err
    assert _snapshot(out) == before
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), pd.read_parquet(src / "results.parquet"))

