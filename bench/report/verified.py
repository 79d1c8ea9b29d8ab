"""Model-verified ground truth in the report: does the model use the lesion the maps are scored against?

Reads ``verified.parquet`` (one row per trained model and explained image: ``lesion_drop`` = the explained class's
probability minus its probability with the lesion removed, ``removal``, ``lesion_used``; written by the sweep's
verify jobs, :mod:`bench.sweep.trust_tables`) and the leaderboard's verified split (``mean_verified``,
``n_verified``: :func:`bench.report.leaderboard.leaderboard`).

- :func:`verification_table`: per dataset and model, how many explained images the model needs the lesion for.
- :func:`verified_scores`: per method and dataset, one metric on all images and on the verified ones.
- :func:`verification_entry`: both as the scorecard's "How far to trust this ranking" entry
  (:class:`bench.report.trust.TrustEntry`).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from bench.report import html as H
from bench.report.reference import direction, is_oracle
from bench.report.stats import bootstrap_ci
from bench.report.trust import TrustEntry

VERIFICATION_COLUMNS = ["dataset", "model", "n_images", "n_redrawn", "n_inpainted", "mean_drop", "ci_low", "ci_high",
                        "n_verified", "share_verified", "threshold"]
VERIFIED_SCORE_COLUMNS = ["dataset", "model", "method", "metric", "mean", "n_valid", "mean_verified", "n_verified",
                          "mean_unverified", "n_unverified"]
HEADLINE_METRICS = ("energy_pointing_game", "pointing_game")  # shown first, when the run has them

TITLE = "Does the model use the lesion? (model-verified ground truth)"
MEANING = (
    "Each explained image is classified again with its lesion removed: a large drop of the explained class's "
    "probability (many verified images) means the lesion mask is the model's real evidence, so a map that misses "
    "it is wrong; a small drop means the model decided without the lesion, and a map that looks elsewhere may be "
    "right, so compare each method's score on all images with its score on the verified ones (close: the misses "
    "are the map's fault; much higher on the verified ones: its misses are mostly images the model did not use "
    "the lesion for)."
)


def verification_table(verified: pd.DataFrame, *, threshold: float, n_resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per dataset and model: ``n_images`` (explained images measured; several trained models pooled),
    ``n_redrawn`` / ``n_inpainted`` (how their lesions were removed), ``mean_drop`` with a percentile bootstrap CI
    over images (``ci_low``, ``ci_high``), ``n_verified`` (``lesion_drop >= threshold``), ``share_verified`` and the
    ``threshold``. Images without a lesion (``removal`` "none", NaN drop) are left out. Empty input: empty table."""
    rows = []
    if verified is None or verified.empty:
        return pd.DataFrame(columns=VERIFICATION_COLUMNS)
    v = verified[np.isfinite(pd.to_numeric(verified["lesion_drop"], errors="coerce").to_numpy(float))]
    for (dataset, model), g in v.groupby(["dataset", "model"], sort=True):
        drop = g["lesion_drop"].to_numpy(np.float64)
        rng = np.random.default_rng([int(seed), zlib.crc32(str(dataset).encode()), zlib.crc32(str(model).encode())])
        ci = bootstrap_ci(drop, n_resamples=n_resamples, confidence=confidence, seed=rng)
        used = int((drop >= threshold).sum())
        rows.append({"dataset": dataset, "model": model, "n_images": len(drop),
                     "n_redrawn": int((g["removal"] == "redrawn").sum()),
                     "n_inpainted": int((g["removal"] == "inpainted").sum()), "mean_drop": ci.mean,
                     "ci_low": ci.low, "ci_high": ci.high, "n_verified": used, "share_verified": used / len(drop),
                     "threshold": float(threshold)})
    return pd.DataFrame(rows, columns=VERIFICATION_COLUMNS)


def verified_scores(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's verified split (:data:`VERIFIED_SCORE_COLUMNS`), references (the oracles) left out; empty
    when the board has no verified split."""
    if board.empty or "n_verified" not in board.columns:
        return pd.DataFrame(columns=VERIFIED_SCORE_COLUMNS)
    b = board[~board["method"].map(is_oracle)]
    b = b[(b["n_verified"] + b["n_unverified"]) > 0]
    return b[VERIFIED_SCORE_COLUMNS].reset_index(drop=True)


def _drop_table(table: pd.DataFrame, multi_model: bool) -> str:
    header = ["dataset", *(["model"] if multi_model else []), "images", "lesion removed by", "mean drop [95% CI]",
              "verified"]
    rows = []
    for _, r in table.iterrows():
        how = ", ".join(f"{k} {n}" for k, n in (("redrawn", r["n_redrawn"]), ("inpainted", r["n_inpainted"])) if n)
        rows.append([H.Cell(r["dataset"], cls="method"), *([r["model"]] if multi_model else []), int(r["n_images"]),
                     how or "-", H.Cell(f"{H.fmt(r['mean_drop'], 2)} [{H.fmt(r['ci_low'], 2)}, "
                                        f"{H.fmt(r['ci_high'], 2)}]", cls="num"),
                     H.Cell(f"{int(r['n_verified'])} ({100 * r['share_verified']:.0f} %)", cls="num")])
    return H.table(header, rows)


def _scores_table(scores: pd.DataFrame, metric: str, model: str) -> str:
    sub = scores[(scores["metric"] == metric) & (scores["model"] == model)]
    datasets = sorted(sub["dataset"].unique())
    cells = {(r["method"], r["dataset"]): r for _, r in sub.iterrows()}
    sign = -1.0 if direction(metric) == "higher" else 1.0

    def order(m: str) -> tuple[float, str]:  # best mean across datasets first (all images), then by name
        means = [cells[(m, d)]["mean"] for d in datasets if (m, d) in cells and np.isfinite(cells[(m, d)]["mean"])]
        return (sign * float(np.mean(means)) if means else np.inf, m)

    methods = sorted(sub["method"].unique(), key=order)
    rows = []
    for m in methods:
        row = [H.Cell(m, cls="method")]
        for d in datasets:
            r = cells.get((m, d))
            if r is None:
                row.append("-")
                continue
            verified = f"{H.fmt(r['mean_verified'], 2)} ({int(r['n_verified'])})" if r["n_verified"] else "- (0)"
            row.append(H.Cell(f"{H.fmt(r['mean'], 2)} / {verified}", cls="num",
                              title=f"all {int(r['n_valid'])} images: {H.fmt(r['mean'])}; verified: "
                                    f"{H.fmt(r['mean_verified'])}; not verified: {H.fmt(r['mean_unverified'])} "
                                    f"({int(r['n_unverified'])})"))
        rows.append(row)
    return H.table(["method", *datasets], rows)


def verification_entry(table: pd.DataFrame | None, board: pd.DataFrame, *, threshold: float) -> TrustEntry:
    """The scorecard entry: the drop table (``table``, :func:`verification_table`), then per model the headline
    metric's all / verified table from the leaderboard ``board`` (the other metrics folded). ``table`` None or
    empty (no ``verified.parquet``: a run with ``[verify] enabled = false``, or an older run): the body says so."""
    if table is None or table.empty:
        return TrustEntry(TITLE, MEANING, H.note("No verification in this run (the suite's [verify] table is "
                                                 "disabled, or the run predates it)."))
    models = sorted(table["model"].unique())
    parts = [f"<p>Per explained image, <code>lesion_drop</code> = p(explained class | image) &minus; p(explained "
             f"class | image without its lesion). A phantom is <em>redrawn</em> by its generator without the lesion "
             f"(the very same image outside the lesion's mask); real images are <em>inpainted</em> inside the "
             f"dilated mask (an estimate of the background). An image is <em>verified</em> when the drop is at "
             f"least {threshold:g} (the suite's <code>report.verified_drop</code>). Per image values: "
             f"<code>verified.parquet</code>; columns <code>lesion_drop</code>, <code>lesion_used</code> of "
             f"<code>results.parquet</code>; <code>mean_verified</code>, <code>n_verified</code> of "
             f"<code>leaderboard.csv</code>.</p>", _drop_table(table, len(models) > 1)]
    scores = verified_scores(board)
    for model in models:
        sub = scores[scores["model"] == model]
        if sub.empty:
            continue
        metrics = sorted(sub["metric"].unique())
        first = [m for m in HEADLINE_METRICS if m in metrics][:1] or metrics[:1]
        title = f" (model <code>{H.esc(model)}</code>)" if len(models) > 1 else ""
        parts.append(f"<h4>{H.esc(first[0])}: all images / verified images (n){title}</h4>")
        parts.append(_scores_table(sub, first[0], model))
        rest = "".join(f"<h4>{H.esc(m)}</h4>{_scores_table(sub, m, model)}" for m in metrics if m != first[0])
        if rest:
            parts.append(f"<details><summary>The other metrics</summary>{rest}</details>")
    return TrustEntry(TITLE, MEANING, "".join(parts))


__all__ = ["MEANING", "TITLE", "VERIFICATION_COLUMNS", "VERIFIED_SCORE_COLUMNS", "verification_entry",
           "verification_table", "verified_scores"]
