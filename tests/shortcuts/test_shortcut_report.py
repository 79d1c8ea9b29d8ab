"""Shortcut suite, report side: detection ranking, verdicts and the scorecard section, on a hand-built run
folder whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.report.shortcuts import STRONG_DROP, _spearman, detection_table, tables
from bench.results import RESULT_COLUMNS
from bench.sweep.shortcuts import SHORTCUT_COLUMNS

PHANTOMS = {"synthetic-lidc_idri": "tag", "synthetic-mpip": "ruler"}
PS = (0.0, 0.5, 0.8, 1.0)
DROP = {0.0: 0.0, 0.5: 0.05, 0.8: 0.25, 1.0: 0.5}
N = 10
AREA = {"cue": 0.02, "lesion": 0.05}


def _share(method: str, p: float, on: str) -> float:
    """tracker: follows the classifier (cue share grows with the drop); lesion_lover: always the lesion
    (misleading); edgy: always the cue, whatever the classifier; both: 5x uniform on each; flat: a uniform
    map (shows neither)."""
    d = DROP[p]
    if method == "tracker":
        return 0.1 + 1.4 * d if on == "cue" else 0.6 - 1.0 * d
    if method == "lesion_lover":
        return 0.05 if on == "cue" else 0.7
    if method == "edgy":
        return 0.5 if on == "cue" else 0.1
    if method == "both":
        return 5 * AREA[on]
    return AREA[on]


def _pointing(method: str, p: float, on: str) -> float:
    if method == "tracker":
        return float(DROP[p] >= STRONG_DROP) if on == "cue" else float(DROP[p] < STRONG_DROP)
    if method == "lesion_lover":
        return float(on == "lesion")
    return 0.0


def write_run(run) -> None:
    run.mkdir()
    sc, lesion, cue = [], [], []
    for ph, c in PHANTOMS.items():
        for p in PS:
            ds = f"{ph}+{c}@{p:g}"
            sc.append({"run": "t", "dataset": ds, "model": "ff_vgg19", "seed": 0, "fold": 0, "phantom": ph, "cue": c,
                       "cue_class": "X", "p": p, "n_correlated": 60, "accuracy_correlated": 0.9,
                       "balanced_accuracy_correlated": 0.9, "n_decorrelated": 120,
                       "accuracy_decorrelated": 0.9 - DROP[p], "balanced_accuracy_decorrelated": 0.9 - DROP[p],
                       "drop": DROP[p], "flip_rate": DROP[p]})
            for method in ("tracker", "lesion_lover", "edgy", "both", "flat"):
                for metric, fn in (("energy_pointing_game", _share), ("pointing_game", _pointing)):
                    for on, rows in (("cue", cue), ("lesion", lesion)):
                        for i in range(N):
                            rows.append({"run": "t", "dataset": ds, "model": "ff_vgg19", "seed": 0, "fold": 0,
                                         "method": method, "metric": metric, "image_id": f"{ds}-{i}", "label": 1,
                                         "target": 1, "correct": True, "value": fn(method, p, on),
                                         "degenerate": False, "excluded": "",
                                         "cue_area": AREA["cue"], "lesion_area": AREA["lesion"]})
    pd.DataFrame(sc, columns=SHORTCUT_COLUMNS).to_parquet(run / "shortcuts.parquet")
    pd.DataFrame(lesion, columns=RESULT_COLUMNS).to_parquet(run / "results.parquet")
    cue_columns = [*RESULT_COLUMNS, "cue_area"]  # lesion_area is a results column
    pd.DataFrame(cue, columns=cue_columns).to_parquet(run / "confounder_results.parquet")


def test_spearman():
    assert _spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert _spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(_spearman([1, 1, 1], [1, 2, 3])) and np.isnan(_spearman([1, 2], [1, 2]))


def test_ranking_and_verdicts(tmp_path):
    write_run(tmp_path / "run")
    classifier, methods, detection = tables(tmp_path / "run")
    assert len(classifier) == 8 and classifier["drop"].tolist() == [DROP[p] for p in PS] * 2
    assert set(methods["n_images"]) == {N}
    d = detection.set_index("method")
    assert detection["method"].iloc[0] == "tracker" and d.loc["tracker", "rho"] == pytest.approx(1.0)
    assert d.loc["tracker", "verdict"] == "reveals the shortcut"
    assert d.loc["lesion_lover", "verdict"] == "misleading"
    assert d.loc["flat", "verdict"] == "shows neither" and np.isnan(d.loc["flat", "rho"])
    assert d.loc["flat", "cue_concentration_strong"] == pytest.approx(1.0)  # a uniform map
    assert d.loc["edgy", "verdict"] == "shows the cue regardless"
    assert d.loc["both", "verdict"] == "shows both"
    assert d.loc["tracker", "strong_datasets"] == 4  # p = 0.8 and 1 of both phantoms


def test_no_strong_shortcut():
    m = pd.DataFrame({"model": "m", "dataset": ["a", "b", "c"], "method": "x", "cue_share": [0.1, 0.2, 0.3],
                      "lesion_share": 0.5, "cue_pointing": 0.0, "lesion_pointing": 1.0, "n_images": 5,
                      "cue_area": 0.01, "lesion_area": 0.05, "phantom": "p", "cue": "tag", "p": [0.0, 0.5, 1.0],
                      "drop": [0.0, 0.05, 0.1]})
    d = detection_table(m)
    assert d["verdict"].iloc[0] == "no strong shortcut in this run" and d["rho"].iloc[0] == pytest.approx(1.0)


def test_scorecard_section(tmp_path):
    from bench.report import build_report

    run = tmp_path / "run"
    write_run(run)
    written = build_report(run, n_resamples=50)
    page = (run / "scorecard.html").read_text()
    assert 'id="shortcuts"' in page and "misleading" in page and "reveals the shortcut" in page
    for name in ("shortcuts_classifier.csv", "shortcuts_methods.csv", "shortcuts_detection.csv"):
        assert name in written and (run / name).is_file()
    assert any("shortcuts_accuracy" in k for k in written) and any("shortcuts_shares" in k for k in written)
    # a run without shortcut results: no section, and the stale CSVs are removed
    (run / "shortcuts.parquet").unlink()
    build_report(run, n_resamples=50)
    assert 'id="shortcuts"' not in (run / "scorecard.html").read_text()
    assert not (run / "shortcuts_detection.csv").exists()
