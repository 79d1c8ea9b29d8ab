"""The smoke run's model-verified ground truth (verify jobs) and class sensitivity (class_sensitivity jobs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.config import ConfigError
from bench.sweep import load_results, load_suite
from bench.sweep.jobs import plan


@pytest.mark.slow
def test_smoke_measures_the_lesion_drop_of_every_explained_image(smoke_run):
    verified = pd.read_parquet(smoke_run / "verified.parquet")
    res = load_results(smoke_run)
    explained = res[~res["method"].str.startswith("oracle")][["dataset", "image_id"]].drop_duplicates()
    assert len(verified) == len(explained) and set(verified["removal"]) == {"redrawn"}  # phantoms: redrawn exactly
    assert np.isfinite(verified["lesion_drop"]).all() and verified["lesion_drop"].between(-1, 1).all()
    np.testing.assert_allclose(verified["lesion_drop"], verified["p_image"] - verified["p_removed"])
    # joined to every result row of the image
    joined = res.merge(verified[["dataset", "image_id", "lesion_drop"]], on=["dataset", "image_id"],
                       suffixes=("", "_v"))
    assert len(joined) == len(res)
    np.testing.assert_array_equal(joined["lesion_drop"], joined["lesion_drop_v"])
    threshold = load_suite("smoke").report.verified_drop
    assert (res["lesion_used"] == (res["lesion_drop"] >= threshold)).all()
    board = pd.read_csv(smoke_run / "leaderboard.csv")
    assert {"mean_verified", "n_verified", "mean_unverified", "n_unverified"} <= set(board.columns)
    assert ((board["n_verified"] + board["n_unverified"]) == board["n_valid"]).all()


@pytest.mark.slow
def test_smoke_class_sensitivity_on_its_two_lesion_class_phantom(smoke_run):
    suite = load_suite("smoke")
    cs = pd.read_parquet(smoke_run / "class_sensitivity.parquet")
    assert set(cs["dataset"]) == set(suite.class_sensitivity.datasets) == {"synthetic-lidc_idri"}
    assert set(cs["method"]) == set(suite.methods)
    assert (cs.groupby("method").size() == suite.class_sensitivity.composites).all()
    assert (cs["class_a"] != cs["class_b"]).all() and cs["value"].dropna().between(-1, 1).all()
    # the model-blind maps are the same whatever the class asked for: exactly 0
    np.testing.assert_array_equal(cs.loc[cs["method"].isin(["centre", "random"]), "value"], 0.0)
    summary = pd.read_csv(smoke_run / "class_sensitivity.csv")
    assert set(summary["method"]) == set(suite.methods)
    card = (smoke_run / "scorecard.html").read_text()
    assert "Does the model use the lesion?" in card and "Does the map follow the class asked for?" in card


def test_the_plan_has_one_verify_job_per_model_and_class_sensitivity_only_where_asked():
    suite = load_suite("smoke")
    jobs = plan(suite)
    verify = [j for j in jobs if j.stage == "verify"]
    cs = [j for j in jobs if j.stage == "class_sensitivity"]
    assert sorted(j.spec["dataset"] for j in verify) == sorted(suite.datasets)
    assert {j.spec["dataset"] for j in cs} == {"synthetic-lidc_idri"} and len(cs) == len(suite.methods)
    assert all(j.deps == (("train", [t for t in jobs if t.stage == "train" and t.spec["dataset"] ==
                                     j.spec["dataset"]][0].key),) for j in verify + cs)
    # a method option changes that method's class sensitivity job only; the verify jobs keep their keys
    other = plan(load_suite("smoke", ["explain.options={random={seed=7}}"]))
    changed = {(j.stage, j.spec.get("method")) for j in other} - {(j.stage, j.spec.get("method")) for j in jobs}
    assert not changed
    keys = {j.key for j in jobs}
    assert {(j.stage, j.spec.get("method")) for j in other if j.key not in keys and j.stage in
            ("verify", "class_sensitivity")} == {("class_sensitivity", "random")}
    off = plan(load_suite("smoke", ["verify.enabled=false", "class_sensitivity.composites=0"]))
    assert not [j for j in off if j.stage in ("verify", "class_sensitivity")]
    # run on the suite's datasets among those named; a name that is no dataset at all is an error
    assert not [j for j in plan(load_suite("smoke", ['datasets=["synthetic-cov_ct"]'])) if j.stage == "class_sensitivity"]
    with pytest.raises(ConfigError, match="class_sensitivity.datasets: no card for dataset 'synthetic-lidc'"):
        load_suite("smoke", ['class_sensitivity.datasets=["synthetic-lidc"]'])
