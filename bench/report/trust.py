"""The scorecard's "How far to trust this ranking" section, and the tables behind it.

The section is a list of :class:`TrustEntry` (a title, one sentence saying what good and bad values mean for a
reader who has never heard of the papers, and the table and figure as HTML), rendered in order by
:func:`section`. Adding a table is adding an entry to the list :func:`bench.report.scorecard.build_report`
builds.

Built here: **metric agreement** (:func:`metric_agreement`). For each dataset (and model), every metric ranks
the methods by their mean (references such as the oracle left out; baselines included, as in the
leaderboard); Kendall's tau between the rankings of every pair of metrics (:func:`bench.report.stats.
rank_agreement`), each metric oriented by its direction so that agreeing metrics give +1 whatever their
directions. *Overall*: the same between the methods' mean ranks across datasets (the leaderboard's
``rank_<metric>`` columns of the overall ranking). A metric is *isolated* (:func:`isolated_metrics`) in a scope
when its tau with every other metric there is below :data:`AGREEMENT_FLAG` (0.2): it orders the methods in a
way no other metric backs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report import html as H
from bench.report.reference import direction, is_oracle
from bench.report.stats import rank_agreement

AGREEMENT_FLAG = 0.2  # a metric whose tau with every other metric is below this is flagged as isolated
OVERALL = "overall"  # the ``scope`` of the across-datasets rows
AGREEMENT_COLUMNS = ["model", "scope", "metric_a", "metric_b", "tau", "n_methods"]
_DECIMALS = 9  # means equal to this many decimals tie (as the leaderboard's ranks)


@dataclass(frozen=True)
class TrustEntry:
    """One table of the "How far to trust this ranking" section.

    ``title``: a short heading; ``meaning``: one sentence, for a reader who does not know the papers, saying
    what a good and what a bad value mean; ``body``: the table(s) and figure(s) as HTML (already escaped).
    """

    title: str
    meaning: str
    body: str


def section(entries: list[TrustEntry]) -> str:
    """The section's HTML: a short introduction, then each entry (heading, its sentence, its body)."""
    if not entries:
        return H.note("Nothing to show: the run has no scored rows.")
    parts = ["<p>The leaderboards rank the methods; the tables here say how much that ranking can be relied "
             "on. Each starts with one sentence on what a good and a bad value mean.</p>"]
    for e in entries:
        parts.append(f"<h3>{H.esc(e.title)}</h3>")
        parts.append(f'<div class="howto">{H.esc(e.meaning)}</div>')
        parts.append(e.body)
    return "".join(parts)


def _matrix(values: pd.DataFrame, directions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    v = np.round(values.to_numpy(dtype=np.float64), _DECIMALS)
    return rank_agreement(v, [d == "higher" for d in directions])


def metric_agreement(board: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau between the method rankings of every pair of metrics, per dataset and overall.

    Args:
        board: a leaderboard (:func:`bench.report.leaderboard.leaderboard`; columns ``dataset, model, method,
            metric, mean, rank``).

    Returns:
        One row per model, scope (a dataset, or ``"overall"``) and ordered pair of metrics (both orders, and
        each metric with itself): ``model, scope, metric_a, metric_b, tau, n_methods``. ``tau`` NaN where fewer
        than 3 methods have both metrics or one metric gives them all the same value.
    """
    cols = AGREEMENT_COLUMNS
    if board.empty:
        return pd.DataFrame(columns=cols)
    ranked = board[~board["method"].map(is_oracle)]
    rows = []
    for model, sub in ranked.groupby("model", sort=True):
        metrics = sorted(sub["metric"].unique())
        dirs = [direction(m) for m in metrics]
        scopes = [(d, g.pivot_table(index="method", columns="metric", values="mean", aggfunc="mean", dropna=False),
                   dirs) for d, g in sub.groupby("dataset", sort=True)]
        mean_rank = sub.pivot_table(index="method", columns="metric", values="rank", aggfunc="mean", dropna=False)
        scopes.append((OVERALL, mean_rank, ["lower"] * len(metrics)))
        for scope, table, d in scopes:
            table = table.reindex(columns=metrics)
            tau, n = _matrix(table, d)
            for i, a in enumerate(metrics):
                for j, b in enumerate(metrics):
                    rows.append((model, scope, a, b, tau[i, j], int(n[i, j])))
    return pd.DataFrame(rows, columns=cols)


def isolated_metrics(agreement: pd.DataFrame, threshold: float = AGREEMENT_FLAG) -> pd.DataFrame:
    """The metrics that disagree with every other metric: in a (model, scope), tau with each other metric
    below ``threshold`` (NaN pairs ignored; at least one finite pair needed).

    Returns ``model, scope, metric, max_tau`` (the highest tau it reaches with another metric), one row per
    isolated metric; empty when none is.
    """
    out = pd.DataFrame(columns=["model", "scope", "metric", "max_tau"])
    if agreement.empty:
        return out
    other = agreement[agreement["metric_a"] != agreement["metric_b"]]
    best = other.groupby(["model", "scope", "metric_a"], sort=True)["tau"].max().reset_index()
    flagged = best[np.isfinite(best["tau"]) & (best["tau"] < threshold)]
    if flagged.empty:
        return out
    return flagged.rename(columns={"metric_a": "metric", "tau": "max_tau"}).reset_index(drop=True)


def agreement_matrix(agreement: pd.DataFrame, model: str, scope: str) -> pd.DataFrame:
    """The (metrics x metrics) tau matrix of one model and scope from :func:`metric_agreement`'s table."""
    sub = agreement[(agreement["model"] == model) & (agreement["scope"] == scope)]
    metrics = sorted(sub["metric_a"].unique())
    return sub.pivot(index="metric_a", columns="metric_b", values="tau").reindex(index=metrics, columns=metrics)


AGREEMENT_MEANING = (
    "Each cell is Kendall's tau between the orders in which two metrics put the methods (each metric turned "
    "so that better is up): near +1 (blue) the two metrics agree on which methods are better, so the ranking "
    "does not hinge on the choice of metric; near 0 or below (white to red) they disagree, so a method's place "
    "depends on which metric you trust, and a metric that disagrees with all the others measures something "
    "the others do not."
)


def _flag_text(flags: pd.DataFrame, model: str) -> str:
    f = flags[flags["model"] == model]
    if f.empty:
        return (f"<p>No metric is isolated: each agrees with at least one other metric (tau &ge; "
                f"{AGREEMENT_FLAG:g}) overall and on every dataset.</p>")
    items = []
    for metric, g in f.groupby("metric", sort=True):
        scopes = [s for s in g["scope"] if s == OVERALL] + sorted(s for s in g["scope"] if s != OVERALL)
        where = ", ".join(f"{H.esc(s)} (best tau {t:.2f})" for s, t in
                          zip(scopes, g.set_index("scope").loc[scopes, "max_tau"]))
        items.append(f"<li><b>{H.esc(metric)}</b> disagrees with every other metric (tau &lt; "
                     f"{AGREEMENT_FLAG:g} with each) on: {where}.</li>")
    return "<p>Isolated metrics:</p><ul>" + "".join(items) + "</ul>"


def _matrix_table(m: pd.DataFrame) -> str:
    header = ["metric", *m.columns]
    rows = []
    for a, r in m.iterrows():
        row = [H.Cell(a, cls="method")]
        for b, v in r.items():
            text = "-" if not np.isfinite(v) else f"{v:+.2f}"
            cls = "num" + (" best" if np.isfinite(v) and v >= 0.6 and a != b else "")
            row.append(H.Cell(text, cls=cls))
        rows.append(row)
    return H.table(header, rows)


def agreement_entry(agreement: pd.DataFrame, models: list[str], img) -> TrustEntry:
    """The metric-agreement entry: per model the overall matrix (table and heatmap), the per-dataset heatmaps,
    the per-dataset tables folded, and the isolated metrics in words. ``img(fig, name, alt)`` embeds a figure
    (the scorecard's ``_Figures.img``)."""
    from bench.report.figures import agreement_heatmap

    flags = isolated_metrics(agreement)
    parts = [f"<p>Per dataset, each metric ranks the methods by their mean (the oracle references left out, the "
             f"baselines in); <em>overall</em> compares the methods' mean ranks across datasets. Kendall's tau "
             f"(tau-b) between every pair of metrics; a metric is flagged when its tau with every other one is "
             f"below {AGREEMENT_FLAG:g}. All values are in <code>metric_agreement.csv</code>.</p>"]
    for model in models:
        sub = agreement[agreement["model"] == model]
        if sub.empty:
            continue
        if len(models) > 1:
            parts.append(f"<h4>Model <code>{H.esc(model)}</code></h4>")
        scopes = [OVERALL] + sorted(s for s in sub["scope"].unique() if s != OVERALL)
        mats = {s: agreement_matrix(sub, model, s) for s in scopes}
        fig = agreement_heatmap(mats)
        parts.append(_flag_text(flags, model))
        parts.append(f'<div class="side">{_matrix_table(mats[OVERALL])}'
                     f'{img(fig, f"agreement_{model}", "Kendall tau between the metrics, overall and per dataset")}'
                     "</div>")
        per = "".join(f"<h4>{H.esc(s)}</h4>{_matrix_table(mats[s])}" for s in scopes[1:])
        if per:
            parts.append(f"<details><summary>Per dataset</summary>{per}</details>")
    return TrustEntry("Do the metrics agree on the ranking?", AGREEMENT_MEANING, "".join(parts))


def write_agreement(agreement: pd.DataFrame, out_dir) -> dict:
    """Write ``metric_agreement.csv`` into ``out_dir``; returns ``{name: path}``."""
    from pathlib import Path

    path = Path(out_dir) / "metric_agreement.csv"
    agreement.to_csv(path, index=False)
    return {"metric_agreement.csv": path}


__all__ = [
    "AGREEMENT_FLAG", "AGREEMENT_MEANING", "TrustEntry", "agreement_entry", "agreement_matrix", "isolated_metrics",
    "metric_agreement", "section", "write_agreement",
]
