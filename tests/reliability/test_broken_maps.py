"""Broken maps inside a sweep are never hidden (issue 16): an image whose explanation failed stays an
excluded row and is left out of the mean curves; a map with a NaN or infinite pixel is degenerate (the
metric's worst value, flagged); a method that fails on every image fails its job; a suite that asks
for one metric gets that metric only.

A tiny suite (one smoke phantom, two cheap methods, deletion and the pointing game, one epoch) run
through ``bench run`` in this process, with faults injected into ``bench.attribution.explain``.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bench.attribution
from bench.cli import main as bench_main

pytestmark = pytest.mark.slow

DATASET = "synthetic-lidc_idri"
FAILS = "RuntimeError: simulated: the method cannot explain this image"


def _overrides(root: Path) -> list[str]:
    return [f"data.root='{root}'", f'datasets=["{DATASET}"]', 'methods=["saliency","centre"]', "references=[]",
            'metrics=["deletion","pointing_game"]', "score.sanity_methods=[]", "class_sensitivity.composites=0",
            "train.epochs=1",
            "explain.max_images=4", "score.deletion_steps=4", "report.bootstrap=50", "train.threads=1"]


def _cli(out: Path, root: Path, *extra: str) -> list[str]:
    args = ["run", "smoke", "--out", str(out), "--no-report"]
    for o in [*_overrides(root), *extra]:
        args += ["--set", o]
    return args


def _run(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = bench_main(args)
    return rc, err.getvalue()


class BrokenSaliency:
    """saliency fails on the first explained image, puts one NaN pixel into the second's map and one +inf
    pixel into the third's; the fourth is left alone."""

    def __init__(self, root: Path) -> None:
        import bench.train
        from bench.sweep import load_suite
        from bench.sweep.loading import dataset_for, select_images

        suite = load_suite("smoke", _overrides(root))
        cfg = suite.run_config(DATASET, suite.models[0], suite.seeds[0])
        data, index = dataset_for(cfg)
        split = bench.train.resolve_split(data, cfg, 0)
        picked = select_images(data, index, [data.ids[i] for i in split.test], suite.explain.max_images)
        assert len(picked) == 4
        self.ids = [data.ids[i] for i in picked]
        self.flat = data.images[picked].flatten(1)
        self._explain = bench.attribution.explain

    def _which(self, images) -> list[int]:
        """For each image of the batch, its position among the explained images (-1: none)."""
        x = images.detach().cpu().flatten(1)
        same = (x[:, None] == self.flat[None]).all(dim=2)
        return [int(r.nonzero()[0, 0]) if bool(r.any()) else -1 for r in same]

    def explain(self, model, images, targets, method, **options):
        maps = self._explain(model, images, targets, method, **options)
        if method != "saliency":
            return maps
        which = self._which(images)
        if 0 in which:
            raise RuntimeError("simulated: the method cannot explain this image")
        maps = maps.clone()
        for j, w in enumerate(which):
            if w == 1:
                maps[j, 2, 3] = float("nan")
            elif w == 2:
                maps[j, 0, 0] = float("inf")
        return maps


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """``(out, root, fault, exit code)`` of the tiny suite with the broken saliency."""
    base = tmp_path_factory.mktemp("broken")
    root, out = base / "data" / "datasets", base / "out"
    root.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("BENCH_MASK_ROOT", raising=False)
        fault = BrokenSaliency(root)
        mp.setattr(bench.attribution, "explain", fault.explain)
        rc, _ = _run(_cli(out, root))
    return out, root, fault, rc


def test_an_excluded_image_stays_excluded_and_partly_broken_maps_are_degenerate(broken):
    out, _, fault, rc = broken
    assert rc == 0
    res = pd.read_parquet(out / "results.parquet")
    sal = res[res["method"] == "saliency"].set_index(["image_id", "metric"])
    failed, nan_pixel, inf_pixel, fine = fault.ids
    for metric in ("deletion", "pointing_game"):
        row = sal.loc[(failed, metric)]
        assert row["excluded"] == FAILS and np.isnan(row["value"]) and not row["degenerate"]
        for image in (nan_pixel, inf_pixel):  # scored as degenerate: the worst value, flagged
            row = sal.loc[(image, metric)]
            assert row["excluded"] == "" and bool(row["degenerate"]), (image, metric)
            assert row["value"] == (1.0 if metric == "deletion" else 0.0)
        row = sal.loc[(fine, metric)]
        assert row["excluded"] == "" and not row["degenerate"] and np.isfinite(row["value"])
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["image_id"], e["error"]) for e in errors] == [(failed, FAILS)]


def test_mean_curves_leave_out_excluded_and_degenerate_images(broken):
    out, _, _, _ = broken
    curves = pd.read_parquet(out / "curves.parquet")
    n = curves.groupby("method")["n"].unique()
    assert list(n["saliency"]) == [1] and list(n["centre"]) == [4]  # saliency: 1 excluded, 2 degenerate
    assert curves["value"].between(0, 1).all()


def test_a_suite_asking_for_one_metric_of_a_pair_gets_that_metric_only(broken):
    out, _, _, _ = broken
    res = pd.read_parquet(out / "results.parquet")
    assert set(res["metric"]) == {"deletion", "pointing_game"}
    assert set(pd.read_parquet(out / "curves.parquet")["curve"]) == {"deletion"}


def test_a_method_that_fails_on_every_image_fails_its_job(broken, tmp_path, monkeypatch):
    src, root, _, _ = broken
    out = tmp_path / "run"
    shutil.copytree(src, out)
    real = bench.attribution.explain

    def centre_fails(model, images, targets, method, **options):
        if method == "centre":
            raise ValueError("simulated: centre cannot explain anything")
        return real(model, images, targets, method, **options)

    monkeypatch.setattr(bench.attribution, "explain", centre_fails)
    rc, stderr = _run(_cli(out, root, "explain.options={centre={sigma=0.3}}"))  # a new centre explain job
    assert rc == 1
    assert "job failed: explain" in stderr and "ValueError: simulated: centre cannot explain anything" in stderr
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    (job,) = [e for e in errors if e["stage"] == "explain" and not e["image_id"]]
    assert "centre" in job["job"] and "every one of the 4 images" in job["error"]
    assert "simulated: centre cannot explain anything" in job["error"]
    assert not (out / "cache" / "explain" / job["key"] / "done.json").exists()
    skipped = [e for e in errors if e["error"].startswith("skipped: a job it depends on failed")]
    assert len(skipped) == 2 and all("centre" in e["job"] for e in skipped)  # its two score jobs
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert stats["ran"] == {} and stats["failed"] == 3
    assert set(pd.read_parquet(out / "results.parquet")["method"]) == {"saliency"}
