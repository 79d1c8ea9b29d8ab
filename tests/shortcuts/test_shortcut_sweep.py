"""Shortcut suite through the ordinary sweep: the built-in suite's plan, and a tiny run (cache, resume, report)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.sweep import load_suite, run_suite
from bench.sweep.jobs import plan


def test_builtin_suite_plan():
    suite = load_suite("shortcuts")
    phantoms = {d.split("+")[0] for d in suite.datasets}
    ps = {float(d.rsplit("@", 1)[1]) for d in suite.datasets}
    assert len(phantoms) >= 3 and ps == {0.0, 0.5, 0.8, 1.0} and len(suite.datasets) == len(phantoms) * len(ps)
    from bench.attribution import available_methods

    assert set(suite.methods) == set(available_methods())
    jobs = plan(suite)
    train = [j for j in jobs if j.stage == "train"]
    assert len({j.key for j in train}) == len(suite.datasets)  # one training run, one key per (phantom, cue, p)


@pytest.mark.slow
def test_tiny_shortcut_sweep(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_MASK_ROOT", raising=False)
    root = tmp_path / "datasets"
    out = tmp_path / "run"
    overrides = [
        'datasets=["synthetic-pet_ct+tag@0", "synthetic-pet_ct+tag@1"]', 'methods=["grad_cam", "random"]',
        f"data.root='{root}'", "data.phantom_min_per_class=20", "data.phantom_max_per_class=20",
        "train.epochs=1", "explain.max_images=3", "report.bootstrap=20",
    ]
    run_suite("shortcuts", out=out, overrides=overrides, progress=False)
    sc = pd.read_parquet(out / "shortcuts.parquet")
    assert sorted(sc["p"]) == [0.0, 1.0] and set(sc["cue"]) == {"tag"} and set(sc["cue_class"]) == {"Malignant"}
    assert (sc["n_decorrelated"] == 2 * sc["n_correlated"]).all()
    assert (sc["drop"] == sc["accuracy_correlated"] - sc["accuracy_decorrelated"]).all()
    cue = pd.read_parquet(out / "confounder_results.parquet")
    assert set(cue["metric"]) == {"pointing_game", "energy_pointing_game"} and (cue["cue_area"] > 0).all()
    assert cue["image_id"].str.endswith("-cue").all()  # the cue-carrying decorrelated images
    res = pd.read_parquet(out / "results.parquet")
    assert set(res["image_id"]) == set(cue["image_id"])  # the same maps scored against the lesion
    assert (out / "shortcuts_detection.csv").is_file() and 'id="shortcuts"' in (out / "scorecard.html").read_text()
    # resume: nothing is recomputed, the tables are rebuilt identically
    run_suite("shortcuts", out=out, overrides=overrides, progress=False, report=False)
    info = json.loads((out / "run.json").read_text())
    assert info["stats"]["skipped_done"] == info["stats"]["jobs"] and not info["stats"]["ran"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "shortcuts.parquet"), sc)
