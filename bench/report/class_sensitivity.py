"""Class sensitivity in the report: does a method's map change with the class it is asked to explain?

Reads ``class_sensitivity.parquet`` (one row per trained model, method and two-lesion composite; written by the
sweep's class_sensitivity jobs, :mod:`bench.sweep.trust_tables`; the score is
:func:`bench.metrics.class_sensitivity`) and its notes.

- :func:`class_sensitivity_table`: per dataset, model and method, the mean over composites with a percentile
  bootstrap CI (composites resampled; several trained models pooled), ``n`` valid, degenerate and excluded.
- :func:`class_sensitivity_entry`: a methods x datasets table as the scorecard's "How far to trust this ranking"
  entry (:class:`bench.report.trust.TrustEntry`).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from bench.report import html as H
from bench.report.stats import bootstrap_ci
from bench.report.trust import TrustEntry

SUMMARY_COLUMNS = ["dataset", "model", "method", "mean", "ci_low", "ci_high", "n_valid", "n_degenerate",
                   "n_excluded", "n_rows"]
FOLLOWS = 0.5  # a mean whose CI lies above this: the map follows the class asked for (shown in bold)

TITLE = "Does the map follow the class asked for? (class sensitivity)"
MEANING = (
    "Two test images of different classes are merged into one that carries both lesions, and the map is asked "
    "for each class in turn: a score near 1 means the map moves to the lesion of whichever class is asked for (it "
    "explains the model's decision for that class), near 0 means it shows the same thing whatever the class (it "
    "explains the image, not the decision), and below 0 means it points at the other class's lesion."
)


def class_sensitivity_table(rows: pd.DataFrame, *, n_resamples: int = 1000, confidence: float = 0.95,
                            seed: int = 0) -> pd.DataFrame:
    """Per dataset, model and method (:data:`SUMMARY_COLUMNS`): the mean of ``value`` over the composites that were
    not excluded and have a finite value, its percentile bootstrap CI over composites (seeded per dataset, model
    and method), and the counts. Empty input: empty table."""
    if rows is None or rows.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    out = []
    for (dataset, model, method), g in rows.groupby(["dataset", "model", "method"], sort=True):
        kept = g[g["excluded"].fillna("").astype(str) == ""]
        v = pd.to_numeric(kept["value"], errors="coerce").to_numpy(np.float64)
        rng = np.random.default_rng([int(seed), *(zlib.crc32(str(x).encode()) for x in (dataset, model, method))])
        ci = bootstrap_ci(v, n_resamples=n_resamples, confidence=confidence, seed=rng)
        out.append({"dataset": dataset, "model": model, "method": method, "mean": ci.mean, "ci_low": ci.low,
                    "ci_high": ci.high, "n_valid": ci.n_valid,
                    "n_degenerate": int(kept["degenerate"].fillna(False).astype(bool).sum()),
                    "n_excluded": int(len(g) - len(kept)), "n_rows": int(len(g))})
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def _table(summary: pd.DataFrame, model: str, datasets: list[str]) -> str:
    sub = summary[summary["model"] == model]
    cells = {(r["method"], r["dataset"]): r for _, r in sub.iterrows()}

    def order(m: str) -> tuple[float, str]:
        means = [cells[(m, d)]["mean"] for d in datasets if (m, d) in cells and np.isfinite(cells[(m, d)]["mean"])]
        return (-float(np.mean(means)) if means else np.inf, m)

    rows = []
    for m in sorted(sub["method"].unique(), key=order):
        row = [H.Cell(m, cls="method")]
        for d in datasets:
            r = cells.get((m, d))
            if r is None or not r["n_valid"]:
                row.append("-")
                continue
            text = f"{H.fmt(r['mean'], 2)} [{H.fmt(r['ci_low'], 2)}, {H.fmt(r['ci_high'], 2)}] ({int(r['n_valid'])})"
            strong = np.isfinite(r["ci_low"]) and r["ci_low"] > FOLLOWS
            tip = f"{int(r['n_valid'])} composites" + (f", {int(r['n_degenerate'])} with a degenerate map (0)"
                                                       if r["n_degenerate"] else "")
            tip += f", {int(r['n_excluded'])} excluded (the method failed)" if r["n_excluded"] else ""
            row.append(H.Cell(text, cls="num" + (" best" if strong else ""), title=tip))
        rows.append(row)
    return H.table(["method", *datasets], rows)


def class_sensitivity_entry(summary: pd.DataFrame | None, notes: pd.DataFrame | None, *,
                            confidence: float = 0.95) -> TrustEntry:
    """The scorecard entry: per model a methods x datasets table of mean [95% CI] (n composites) from ``summary``
    (:func:`class_sensitivity_table`), and the datasets with fewer composites than asked and why (``notes``, the
    run folder's ``class_sensitivity_notes.parquet``). ``summary`` None (no ``class_sensitivity.parquet``: the
    suite's ``[class_sensitivity]`` is off): the body says so."""
    if summary is None:
        return TrustEntry(TITLE, MEANING, H.note("Not measured in this run: the suite's [class_sensitivity] table "
                                                 "asks for no composites."))
    parts = [f"<p>From the test images that carry a lesion, pairs of two classes are drawn; one lesion (with "
             f"the pixels just around it) is pasted beside the other, moved as little as keeps the two apart, and "
             f"the composite is explained for each of the two classes. Score = share of the map's positive mass "
             f"on the asked class's lesion minus the share on the other one, averaged over the two asks (Selvaraju "
             f"et al. 2017; Sixt et al. 2020). Mean [{100 * confidence:.0f}% bootstrap CI over composites] "
             f"(composites); bold: the CI lies above {FOLLOWS:g}. A map that ignores the class (e.g. the model-blind "
             f"baselines) scores exactly 0. A score can be no higher than the share of the map that lies on a lesion "
             f"at all (compare it with the method's energy pointing game). Per composite values: "
             f"<code>class_sensitivity.parquet</code>; means: "
             f"<code>class_sensitivity.csv</code>.</p>"]
    models = sorted(summary["model"].unique())
    for model in models:
        datasets = sorted(summary.loc[summary["model"] == model, "dataset"].unique())
        if len(models) > 1:
            parts.append(f"<h4>Model <code>{H.esc(model)}</code></h4>")
        parts.append(_table(summary, model, datasets))
    if notes is not None and not notes.empty:
        why = notes[notes["note"].fillna("").astype(str) != ""].drop_duplicates(["dataset", "model", "note"])
        if len(why):
            items = "".join(f"<li><b>{H.esc(r['dataset'])}</b>: {H.esc(r['note'])}</li>" for _, r in why.iterrows())
            parts.append(f"<p>Fewer composites than asked for:</p><ul>{items}</ul>")
    return TrustEntry(TITLE, MEANING, "".join(parts))


__all__ = ["FOLLOWS", "MEANING", "SUMMARY_COLUMNS", "TITLE", "class_sensitivity_entry", "class_sensitivity_table"]
