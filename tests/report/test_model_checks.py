"""The verified split of the leaderboards, and the scorecard entries on model-verified lesions and class sensitivity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.report.class_sensitivity import TITLE as CS_TITLE
from bench.report.class_sensitivity import class_sensitivity_entry, class_sensitivity_table
from bench.report.leaderboard import leaderboard, leaderboard_markdown
from bench.report.model_checks import model_check_entries
from bench.report.verified import TITLE as VERIFIED_TITLE
from bench.report.verified import verification_entry, verification_table, verified_scores


def _results(used: list) -> pd.DataFrame:
    """Two methods, one metric, one image per entry of ``used`` (True / False / None = not measured); grad_cam hits
    exactly the verified images, centre none."""
    rows = []
    for method in ("grad_cam", "centre"):
        for i, u in enumerate(used):
            value = float(bool(u)) if method == "grad_cam" else 0.0
            rows.append(dict(run="r", dataset="d", model="m", seed=0, fold=0, method=method, metric="pointing_game",
                             image_id=f"i{i}", value=value, degenerate=False, excluded="",
                             lesion_drop=np.nan if u is None else (0.6 if u else 0.01), lesion_used=u))
    frame = pd.DataFrame(rows)
    frame["lesion_used"] = frame["lesion_used"].astype("boolean")
    return frame


def test_leaderboard_splits_each_mean_into_verified_and_unverified_images():
    board = leaderboard(_results([True, True, False, None, False]), n_resamples=50)
    g = board.set_index("method").loc["grad_cam"]
    assert g["mean"] == pytest.approx(2 / 5)
    assert (g["mean_verified"], g["n_verified"]) == (1.0, 2)  # the model used the lesion: the map found it
    assert (g["mean_unverified"], g["n_unverified"]) == (0.0, 2)  # the image not measured is in neither
    md = leaderboard_markdown(board)
    assert "all / verified (n)" in md and "0.400 / 1.000 (2)" in md
    # a results table without the columns (an older run, bench score) has no split and no view
    old = leaderboard(_results([True, False]).drop(columns=["lesion_drop", "lesion_used"]), n_resamples=50)
    assert (old["n_verified"] == 0).all() and old["mean_verified"].isna().all()
    assert "all / verified" not in leaderboard_markdown(old)


def _verified_rows() -> pd.DataFrame:
    drops = [0.5, 0.3, 0.1, -0.1, np.nan]
    return pd.DataFrame({"run": "r", "dataset": "d", "model": "m", "seed": 0, "fold": 0,
                         "image_id": [f"i{i}" for i in range(5)], "label": 1, "target": 1,
                         "p_image": 0.9, "p_removed": [0.9 - d if np.isfinite(d) else 0.9 for d in drops],
                         "lesion_drop": drops, "removal": ["redrawn"] * 3 + ["inpainted", "none"]})


def test_verification_table_counts_the_images_the_model_needs_the_lesion_for():
    t = verification_table(_verified_rows(), threshold=0.25, n_resamples=200).iloc[0]
    assert t["n_images"] == 4  # the image without a lesion is left out
    assert (t["n_redrawn"], t["n_inpainted"], t["n_verified"]) == (3, 1, 2)
    assert t["mean_drop"] == pytest.approx(0.2) and t["ci_low"] <= 0.2 <= t["ci_high"]
    assert t["share_verified"] == pytest.approx(0.5)
    html = verification_entry(verification_table(_verified_rows(), threshold=0.25), leaderboard(
        _results([True, False]), n_resamples=50), threshold=0.25)
    assert html.title == VERIFIED_TITLE and "2 (50 %)" in html.body and "pointing_game" in html.body
    assert "No verification" in verification_entry(None, pd.DataFrame(), threshold=0.25).body
    assert verified_scores(leaderboard(_results([True]), n_resamples=20))["n_verified"].tolist() == [1, 1]


def _cs_rows() -> pd.DataFrame:
    rows = []
    for method, values in (("grad_cam", [0.9, 0.7, 0.8, np.nan]), ("centre", [0.0, 0.0, 0.0, 0.0])):
        for c, v in enumerate(values):
            rows.append(dict(run="r", dataset="d", model="m", seed=0, fold=0, method=method, composite=c, value=v,
                             degenerate=False, excluded="boom" if (method == "grad_cam" and c == 3) else ""))
    return pd.DataFrame(rows)


def test_class_sensitivity_table_and_entry():
    t = class_sensitivity_table(_cs_rows(), n_resamples=200).set_index("method")
    assert t.loc["grad_cam", "mean"] == pytest.approx(0.8) and t.loc["grad_cam", "n_valid"] == 3
    assert t.loc["grad_cam", "n_excluded"] == 1 and t.loc["grad_cam", "ci_low"] <= 0.8 <= t.loc["grad_cam", "ci_high"]
    assert (t.loc["centre", ["mean", "ci_low", "ci_high"]] == 0).all()  # ignores the class: exactly 0, no spread
    notes = pd.DataFrame({"dataset": ["d2"], "model": ["m"], "seed": [0], "fold": [0], "method": ["grad_cam"],
                          "n": [0], "note": ["needs test images with lesions of two classes"]})
    entry = class_sensitivity_entry(class_sensitivity_table(_cs_rows(), n_resamples=200), notes)
    assert entry.title == CS_TITLE and "0.80 [" in entry.body and "needs test images" in entry.body
    assert entry.body.index("grad_cam") < entry.body.index("centre")  # the most class-sensitive first
    assert "Not measured" in class_sensitivity_entry(None, None).body


def test_model_check_entries_write_their_csvs_and_remove_stale_ones(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _verified_rows().to_parquet(run / "verified.parquet")
    _cs_rows().to_parquet(run / "class_sensitivity.parquet")
    info = {"suite": {"report": {"verified_drop": 0.4}}}
    written: dict = {}
    board = leaderboard(_results([True, False]), n_resamples=20)
    entries = model_check_entries(run, run, board, info, written, n_resamples=50)
    assert [e.title for e in entries] == [VERIFIED_TITLE, CS_TITLE]
    assert set(written) == {"verification.csv", "class_sensitivity.csv"}
    assert pd.read_csv(run / "verification.csv")["n_verified"].tolist() == [1]  # the run's own threshold, 0.4
    (run / "class_sensitivity.parquet").unlink()
    model_check_entries(run, run, board, json.loads("{}"), {}, n_resamples=50)
    assert not (run / "class_sensitivity.csv").exists()
    assert pd.read_csv(run / "verification.csv")["threshold"].tolist() == [0.25]  # the default
