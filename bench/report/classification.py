"""The paper's Table 2 for our runs: accuracy, sensitivity, specificity, AUC and F1 in percent.

One row per (dataset, model): the mean over its seeds and folds (the paper reports 10-fold
cross-validation means), with the standard deviation over those runs. Multi-class datasets report
macro averages (``average == "macro"``), which the paper left blank. Beside ours: the paper's own
number where the dataset is the real one (``real``), "phantom" for the synthetic stand-ins, "-" where
the paper printed none.

For one training run (``bench train``): :func:`table2_row` and :func:`write_classification_table`
write ``classification.csv`` (fractions) and ``.md`` (percentages).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.report.markdown import markdown_table
from bench.report.reference import PAPER_CITATION, paper_value

TABLE2 = ("accuracy", "sensitivity", "specificity", "auc", "f1")
LABELS = {"accuracy": "accuracy", "sensitivity": "sensitivity", "specificity": "specificity", "auc": "AUC", "f1": "F1"}
CLASSIFICATION_COLUMNS = ("dataset", "model", "seed", "fold", "n_test", *TABLE2, "average", "real", "paper_key")


def classification_table(cls: pd.DataFrame) -> pd.DataFrame:
    """Table 2 per (dataset, model) from ``classification.parquet`` rows.

    Returns columns ``dataset, model, paper_key, real, average, n_runs, n_test`` (summed over runs),
    then for each metric ``<m>`` (mean, percent), ``<m>_sd`` (std over runs, NaN for one run) and
    ``paper_<m>`` (percent; NaN for phantoms or where the paper reported none).

    Raises:
        ValueError: a required column is missing.
    """
    missing = [c for c in CLASSIFICATION_COLUMNS if c not in cls.columns]
    if missing:
        raise ValueError(f"classification table lacks column(s) {missing}; expected {list(CLASSIFICATION_COLUMNS)}")
    rows = []
    for (dataset, model), g in cls.groupby(["dataset", "model"], sort=True):
        real = bool(g["real"].astype(bool).any())
        paper_key = str(g["paper_key"].iloc[0] or "")
        row = dict(
            dataset=dataset, model=model, paper_key=paper_key, real=real,
            average="/".join(sorted(set(map(str, g["average"])))), n_runs=len(g),
            n_test=int(pd.to_numeric(g["n_test"], errors="coerce").fillna(0).sum()),
        )
        for m in TABLE2:
            v = pd.to_numeric(g[m], errors="coerce").to_numpy(float) * 100.0
            ok = v[np.isfinite(v)]
            row[m] = float(ok.mean()) if ok.size else math.nan
            row[f"{m}_sd"] = float(ok.std(ddof=1)) if ok.size > 1 else math.nan
            row[f"paper_{m}"] = paper_value(paper_key, m) if real else math.nan
        rows.append(row)
    cols = ["dataset", "model", "paper_key", "real", "average", "n_runs", "n_test"]
    for m in TABLE2:
        cols += [m, f"{m}_sd", f"paper_{m}"]
    return pd.DataFrame(rows, columns=cols)


def _ours(mean: float, sd: float) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.2f} ± {sd:.2f}" if math.isfinite(sd) else f"{mean:.2f}"


def paper_cell(row, metric: str) -> str:
    """What the paper column shows: its number, "-" (not reported), "phantom", or "n/a" (unknown key)."""
    if not row["real"]:
        return "phantom"
    from bench.report.reference import PAPER_TABLE2

    if row["paper_key"] not in PAPER_TABLE2:
        return "n/a"
    v = row[f"paper_{metric}"]
    return f"{v:.2f}" if math.isfinite(v) else "-"


def display_rows(table: pd.DataFrame) -> list[dict]:
    """Rows for display: ours as "mean ± sd" beside the paper's value, per metric."""
    out = []
    for _, r in table.iterrows():
        row = {"dataset": r["dataset"], "model": r["model"], "runs": r["n_runs"], "test images": r["n_test"],
               "average": r["average"]}
        for m in TABLE2:
            row[f"{LABELS[m]} %"] = _ours(r[m], r[f"{m}_sd"])
            row[f"{LABELS[m]} (paper)"] = paper_cell(r, m)
        out.append(row)
    return out


def classification_markdown(table: pd.DataFrame) -> str:
    """``classification.md``: our Table 2 with the paper's numbers beside it."""
    head = (
        "# Classification (the paper's Table 2)\n\n"
        "Ours: mean ± standard deviation over seeds and folds, in percent (AUC and F1 too). "
        "Multi-class datasets: macro averages (AUC one-vs-rest), which the paper did not report ('-'). "
        f"Paper: {PAPER_CITATION}; shown only for the real datasets, 'phantom' for synthetic stand-ins. "
        "Rebuilt by `bench report`; do not edit.\n\n"
    )
    return head + markdown_table(display_rows(table), digits=2) if len(table) else head + "(no rows)\n"


def write_classification(cls: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``classification.csv`` and ``classification.md`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = classification_table(cls)
    paths = {"classification.csv": out / "classification.csv", "classification.md": out / "classification.md"}
    table.to_csv(paths["classification.csv"], index=False)
    paths["classification.md"].write_text(classification_markdown(table), encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------
# one training run (bench train)


def table2_row(dataset: str, model: str, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One row of the Table-2-style table of one run (fractions; the writers show percentages)."""
    return {"dataset": dataset, "model": model, **extra, "n_test": metrics["n"], **{k: metrics[k] for k in TABLE2}}


def write_classification_table(rows: list[dict[str, Any]], stem: str | Path) -> tuple[Path, Path]:
    """Write ``stem.csv`` (fractions) and ``stem.md`` (percentages, 2 decimals, NaN as '-')."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0].keys()) if rows else []
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    shown = [{k: (_pct(v) if k in TABLE2 else v) for k, v in r.items()} for r in rows]
    header = {k: (f"{k} %" if k in TABLE2 else k) for k in cols}
    md = markdown_table([{header[k]: v for k, v in r.items()} for r in shown])
    stem.with_suffix(".md").write_text(md)
    return stem.with_suffix(".csv"), stem.with_suffix(".md")


def _pct(v: Any) -> str:
    """A fraction as a percentage with 2 decimals; '-' for None, NaN or infinity."""
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * float(v):.2f}"
