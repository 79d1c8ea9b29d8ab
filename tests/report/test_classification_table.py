"""bench.report.classification: our Table 2 beside the paper's."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from fake_run import fake_classification

from bench.report.classification import classification_markdown, classification_table, write_classification
from bench.report.reference import PAPER_TABLE2


def test_table_is_percent_with_paper_numbers_for_real_datasets_only():
    t = classification_table(fake_classification()).set_index("dataset")
    real = t.loc["lidc_idri"]
    assert real["accuracy"] == pytest.approx(81.0) and real["accuracy_sd"] == pytest.approx(1.41421, rel=1e-4)
    assert real["n_runs"] == 2 and real["n_test"] == 60
    assert real["paper_accuracy"] == PAPER_TABLE2["lidc_idri"]["accuracy"] == 82.52
    phantom = t.loc["synthetic-ham10000"]
    assert math.isnan(phantom["paper_accuracy"]) and phantom["average"] == "macro"


def test_markdown_shows_phantom_and_dash_for_unreported():
    cls = fake_classification()
    md = classification_markdown(classification_table(cls))
    lidc = next(ln for ln in md.splitlines() if ln.startswith("| lidc_idri"))
    assert "82.52" in lidc and "81.00 ± 1.41" in lidc
    ham = next(ln for ln in md.splitlines() if ln.startswith("| synthetic-ham10000"))
    assert "phantom" in ham and "82.52" not in ham
    # a real multi-class dataset: the paper printed '-' for sensitivity
    real_cov_x = cls[cls["dataset"] == "synthetic-ham10000"].assign(dataset="cov_x", real=True, paper_key="cov_x")
    md = classification_markdown(classification_table(real_cov_x))
    line = next(ln for ln in md.splitlines() if ln.startswith("| cov_x"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert "84.94" in cells and "95.25" in cells and "-" in cells


def test_write_and_missing_columns(tmp_path):
    paths = write_classification(fake_classification(), tmp_path)
    assert pd.read_csv(paths["classification.csv"]).shape[0] == 3
    assert paths["classification.md"].read_text().startswith("# Classification")
    with pytest.raises(ValueError, match="auc"):
        classification_table(fake_classification().drop(columns=["auc"]))
