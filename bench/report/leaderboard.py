"""Leaderboards: per dataset, model, method and metric, the mean with a bootstrap CI, ranks, and tests.

What one row of :func:`leaderboard` summarises: all rows of the results table with the same
``(dataset, model, method, metric)``. Seeds and folds of that model are pooled: each (seed, fold,
image) is one observation, so a 10-fold cross-validation contributes every image once per seed.

Counting (per row of the leaderboard):
- ``n_excluded``: rows whose ``excluded`` is non-empty (an error, a skipped image); never scored.
- ``n_valid``: the other rows with a finite ``value``; the mean and CI are over these.
- ``n_degenerate``: rows among the non-excluded ones flagged ``degenerate`` (e.g. a constant map).
  Their values are *kept* in the mean: a method that produces degenerate maps pays for them.
- NaN values (undefined: an empty mask) are neither valid nor excluded; ``n_rows`` counts everything.

Ranks are within ``(dataset, model, metric)``, 1 = best by the metric's direction, ties averaged
(the convention of Demšar 2006 for mean ranks across datasets); baselines are ranked too.

Baselines (``centre``, ``random``): a method *beats* a baseline when the 95% bootstrap CI of the mean
paired difference (method - baseline, paired by seed, fold and image) lies entirely on the better side
of zero. ``beats_baselines`` is True when every baseline present is beaten, False when one is not,
NA when no baseline was run. This is the "beyond the confidence interval" rule of issue 6, applied to
the paired difference (the images are shared, so pairing removes the between-image variance that two
separate CIs would double-count).

Against ``grad_cam``: two-sided Wilcoxon signed-rank test over the same pairs, Holm-corrected within
each ``(dataset, model, metric)`` family (all methods but grad_cam). ``vs_grad_cam`` reads "better",
"worse" (Holm p < alpha, sign by the metric's direction), "n.s." or "n/a" (test not run: too few
non-zero differences, see :func:`bench.report.stats.paired_wilcoxon`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.markdown import markdown_table
from bench.report.reference import BASELINES, REFERENCE_METHOD, direction
from bench.report.stats import bootstrap_ci, holm, paired_wilcoxon
from bench.results import RESULT_COLUMNS

GROUP = ["dataset", "model", "method", "metric"]
FAMILY = ["dataset", "model", "metric"]
PAIR_KEY = ["seed", "fold", "image_id"]

RANK_DECIMALS = 9  # means closer than this rank as ties

LEADERBOARD_COLUMNS = [
    *GROUP, "direction", "mean", "ci_low", "ci_high", "n_valid", "n_degenerate", "n_excluded", "n_rows",
    "rank", "beats_centre", "beats_random", "beats_baselines",
    "vs_grad_cam", "vs_grad_cam_diff", "vs_grad_cam_p", "vs_grad_cam_p_holm", "vs_grad_cam_pairs",
]


def check_results(results: pd.DataFrame) -> pd.DataFrame:
    """Validate the columns of a results table and normalise ``excluded``/``degenerate``; returns a copy.

    Raises:
        ValueError: a required column is missing (``run``, ``label``, ``target``, ``correct`` are optional).
    """
    required = [c for c in RESULT_COLUMNS if c not in ("run", "label", "target", "correct")]
    missing = [c for c in required if c not in results.columns]
    if missing:
        raise ValueError(f"results table lacks column(s) {missing}; expected {list(RESULT_COLUMNS)}")
    df = results.copy()
    df["excluded"] = df["excluded"].fillna("").astype(str)
    df["degenerate"] = df["degenerate"].fillna(False).astype(bool)
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(np.float64)
    for c in ("dataset", "model", "method", "metric", "image_id"):
        df[c] = df[c].astype(str)
    return df


def _better(diff_low: float, diff_high: float, dirn: str) -> bool | None:
    if not (np.isfinite(diff_low) and np.isfinite(diff_high)):
        return None
    return bool(diff_low > 0) if dirn == "higher" else bool(diff_high < 0)


def leaderboard(
    results: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The leaderboard of a results table (one row per dataset x model x method x metric).

    Args:
        results: the sweep's long table (columns in ``RESULT_COLUMNS``; see docs/CONTRACTS.md).
        n_resamples, confidence, seed: of the bootstrap CIs (:func:`bench.report.stats.bootstrap_ci`).
            A group's resampling depends only on ``seed`` and its number of valid values, so its CI
            does not move when other methods or datasets are added to the run.
        alpha: significance level of the Holm-corrected comparisons against grad_cam.

    Returns:
        DataFrame with ``LEADERBOARD_COLUMNS`` (see the module docstring for each rule), sorted by
        dataset, model, metric, rank. ``beats_*`` are pandas nullable booleans (NA = not compared).

    Raises:
        ValueError: missing columns, or a metric without a known direction.
    """
    df = check_results(results)
    used = df[df["excluded"] == ""]
    rows: list[dict] = []
    counts = df.assign(is_excluded=df["excluded"] != "").groupby(GROUP, sort=True).agg(
        n_rows=("value", "size"), n_excluded=("is_excluded", "sum")
    )
    degenerate = used.groupby(GROUP)["degenerate"].sum()
    directions = {m: direction(m) for m in df["metric"].unique()}

    for key, n in counts.iterrows():
        rows.append(dict(zip(GROUP, key), n_rows=int(n["n_rows"]), n_excluded=int(n["n_excluded"])))

    groups = {k: g["value"].to_numpy() for k, g in used.groupby(GROUP, sort=False)}
    for r in rows:
        key = tuple(r[c] for c in GROUP)
        ci = bootstrap_ci(
            groups.get(key, np.zeros(0)), n_resamples=n_resamples, confidence=confidence, seed=seed,
        )
        r.update(
            direction=directions[r["metric"]], mean=ci.mean, ci_low=ci.low, ci_high=ci.high,
            n_valid=ci.n_valid, n_degenerate=int(degenerate.get(key, 0)),
        )
    board = pd.DataFrame(rows)
    if board.empty:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)

    board["rank"] = np.nan
    for _, idx in board.groupby(FAMILY).groups.items():
        sub = board.loc[idx]
        asc = sub["direction"].iloc[0] == "lower"
        # means equal up to float summation noise (the same per-image values added in another order) tie
        board.loc[idx, "rank"] = sub["mean"].round(RANK_DECIMALS).rank(ascending=asc, method="average", na_option="keep")

    comparisons = _comparisons(used, directions, n_resamples=n_resamples, confidence=confidence, seed=seed, alpha=alpha)
    board = board.merge(comparisons, on=GROUP, how="left")
    for c in ("beats_centre", "beats_random", "beats_baselines"):
        board[c] = board[c].astype("boolean")
    board["vs_grad_cam"] = board["vs_grad_cam"].astype(object).fillna("")  # all-NaN (float) when no grad_cam
    board["vs_grad_cam_pairs"] = board["vs_grad_cam_pairs"].fillna(0).astype(int)
    board = board.sort_values(["dataset", "model", "metric", "rank", "method"], na_position="last")
    return board[LEADERBOARD_COLUMNS].reset_index(drop=True)


def _comparisons(
    used: pd.DataFrame, directions: dict[str, str], *, n_resamples: int, confidence: float, seed: int, alpha: float
) -> pd.DataFrame:
    """Paired comparisons within each (dataset, model, metric): vs baselines and vs grad_cam."""
    out: list[dict] = []
    for fam, sub in used.groupby(FAMILY, sort=False):
        dataset, model, metric = fam
        dirn = directions[metric]
        # (seed, fold, image) x method; duplicates (should not happen) are averaged.
        wide = sub.groupby([*PAIR_KEY, "method"])["value"].mean().unstack("method")
        methods = list(wide.columns)
        col = {m: wide[m].to_numpy(dtype=np.float64) for m in methods}
        fam_rows = {m: dict(dataset=dataset, model=model, method=m, metric=metric) for m in methods}
        for m in methods:
            verdicts = []
            for b in BASELINES:
                if b == m or b not in col:
                    verdict = None
                else:
                    d = col[m] - col[b]
                    ci = bootstrap_ci(d, n_resamples=n_resamples, confidence=confidence, seed=seed)
                    verdict = _better(ci.low, ci.high, dirn)
                fam_rows[m][f"beats_{b}"] = verdict
                if verdict is not None:
                    verdicts.append(verdict)
            fam_rows[m]["beats_baselines"] = all(verdicts) if verdicts else None
        if REFERENCE_METHOD in col:
            others = [m for m in methods if m != REFERENCE_METHOD]
            tests = [paired_wilcoxon(col[m], col[REFERENCE_METHOD]) for m in others]
            adjusted = holm([t.pvalue for t in tests])
            for m, t, p_adj in zip(others, tests, adjusted):
                if not np.isfinite(p_adj):
                    verdict = "n/a"
                elif p_adj >= alpha:
                    verdict = "n.s."
                else:
                    up = t.mean_difference > 0
                    verdict = "better" if up == (dirn == "higher") else "worse"
                fam_rows[m].update(
                    vs_grad_cam=verdict, vs_grad_cam_diff=t.mean_difference, vs_grad_cam_p=t.pvalue,
                    vs_grad_cam_p_holm=p_adj, vs_grad_cam_pairs=t.n_pairs,
                )
        out.extend(fam_rows.values())
    cols = [*GROUP, "beats_centre", "beats_random", "beats_baselines",
            "vs_grad_cam", "vs_grad_cam_diff", "vs_grad_cam_p", "vs_grad_cam_p_holm", "vs_grad_cam_pairs"]
    return pd.DataFrame(out).reindex(columns=cols)


def overall_ranking(board: pd.DataFrame) -> pd.DataFrame:
    """Mean rank of each method across datasets, per metric, and overall (mean over metrics).

    Returns one row per (model, method): ``rank_<metric>`` (mean of its per-dataset ranks; datasets
    where the metric is undefined for every method are skipped), ``mean_rank`` (mean over the metrics
    it has), ``n_datasets``, ``beats_baselines`` ("k/n": in how many (dataset, metric) cells it beat
    every baseline, out of those compared). Sorted by ``mean_rank`` (1 = best) within model.
    """
    if board.empty:
        return pd.DataFrame(columns=["model", "method", "mean_rank", "n_datasets", "beats_baselines"])
    per = board.pivot_table(index=["model", "method"], columns="metric", values="rank", aggfunc="mean")
    per.columns = [f"rank_{c}" for c in per.columns]
    per["mean_rank"] = per.mean(axis=1, skipna=True)
    per["n_datasets"] = board.groupby(["model", "method"])["dataset"].nunique()
    compared = board.dropna(subset=["beats_baselines"])
    k = compared.groupby(["model", "method"])["beats_baselines"].agg(lambda s: f"{int(s.sum())}/{len(s)}")
    per["beats_baselines"] = k.astype(object).reindex(per.index).fillna("-")
    per = per.reset_index().sort_values(["model", "mean_rank", "method"], na_position="last")
    return per.reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------
# Markdown / CSV

MARK_NOT_BEATING = "†"
MARK_BETTER = "▲"
MARK_WORSE = "▼"


def format_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``"0.512 [0.480, 0.545]"``; ``"-"`` when the mean is undefined."""
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def marks(row) -> str:
    """Marks of one leaderboard row: † does not beat the baselines, ▲/▼ vs grad_cam (Holm p < alpha)."""
    s = ""
    beats = row["beats_baselines"]
    if row["method"] not in BASELINES and not pd.isna(beats) and not bool(beats):
        s += MARK_NOT_BEATING
    if row["vs_grad_cam"] == "better":
        s += MARK_BETTER
    elif row["vs_grad_cam"] == "worse":
        s += MARK_WORSE
    return s


def metric_matrix(board: pd.DataFrame, metric: str, model: str) -> tuple[list[str], list[str], pd.DataFrame]:
    """(methods ordered by mean rank across datasets, datasets, the board rows of that metric and model)."""
    sub = board[(board["metric"] == metric) & (board["model"] == model)]
    order = sub.groupby("method")["rank"].mean().sort_values(na_position="last")
    return list(order.index), sorted(sub["dataset"].unique()), sub


def leaderboard_markdown(
    board: pd.DataFrame, overall: pd.DataFrame | None = None, *, title: str = "Leaderboard",
    n_resamples: int = 1000, digits: int = 3,
) -> str:
    """The readable leaderboard: overall ranking first, then per metric a methods x datasets table."""
    overall = overall_ranking(board) if overall is None else overall
    models = sorted(board["model"].unique()) if not board.empty else []
    parts = [
        f"# {title}\n\n",
        f"Mean over images with a 95% bootstrap confidence interval ({n_resamples} resamples over images, "
        f"seeded); `#k` is the rank within the dataset (1 = best by the metric's direction). "
        f"{MARK_NOT_BEATING} = does not beat the `centre`/`random` baselines beyond the CI of the paired "
        f"difference; {MARK_BETTER}/{MARK_WORSE} = significantly better/worse than `grad_cam` "
        "(paired Wilcoxon over images, Holm-corrected within dataset and metric, p < 0.05). "
        "Rebuilt by `bench report`; do not edit.\n",
    ]
    if board.empty:
        return "".join(parts) + "\n(no results)\n"
    multi = len(models) > 1
    for model in models:
        prefix = f" — model `{model}`" if multi else ""
        ov = overall[overall["model"] == model]
        rank_cols = [c for c in ov.columns if c.startswith("rank_")]
        rows = [
            {"method": r["method"], **{c[5:]: r[c] for c in rank_cols}, "mean rank": r["mean_rank"],
             "beats baselines": r["beats_baselines"]}
            for _, r in ov.iterrows()
        ]
        parts.append(f"\n## Overall ranking{prefix}\n\nMean rank across datasets (lower is better).\n\n")
        parts.append(markdown_table(rows, digits=2))
        for metric in sorted(board.loc[board["model"] == model, "metric"].unique()):
            methods, datasets, sub = metric_matrix(board, metric, model)
            dirn = direction(metric)
            cells = {(r["method"], r["dataset"]): r for _, r in sub.iterrows()}
            table = []
            for m in methods:
                row = {"method": m}
                for d in datasets:
                    r = cells.get((m, d))
                    if r is None:
                        row[d] = "-"
                        continue
                    text = format_ci(r["mean"], r["ci_low"], r["ci_high"], digits)
                    if np.isfinite(r["rank"]):
                        text += f" #{r['rank']:g}"
                    row[d] = (text + " " + marks(r)).rstrip()
                table.append(row)
            parts.append(f"\n## {metric} ({dirn} is better){prefix}\n\n")
            parts.append(markdown_table(table, columns=["method", *datasets]))
    excluded = board[board["n_excluded"] > 0]
    if len(excluded):  # images an error kept out of every mean above
        per = excluded.groupby(["dataset", "model", "method"], sort=True)["n_excluded"].max().reset_index()
        parts.append("\n## Excluded images\n\nImages never scored (e.g. the method failed on them), per dataset and "
                     "method; the reason for each is in `errors.jsonl` and in the scorecard's 'Errors and "
                     "exclusions' section.\n\n")
        parts.append(markdown_table(per.rename(columns={"n_excluded": "images excluded"}).to_dict("records")))
    return "".join(parts)


def write_leaderboard(
    board: pd.DataFrame, out_dir: str | Path, *, title: str = "Leaderboard", n_resamples: int = 1000
) -> dict[str, Path]:
    """Write ``leaderboard.csv``, ``leaderboard_overall.csv`` and ``leaderboard.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    overall = overall_ranking(board)
    paths = {
        "leaderboard.csv": out / "leaderboard.csv",
        "leaderboard_overall.csv": out / "leaderboard_overall.csv",
        "leaderboard.md": out / "leaderboard.md",
    }
    board.to_csv(paths["leaderboard.csv"], index=False)
    overall.to_csv(paths["leaderboard_overall.csv"], index=False)
    paths["leaderboard.md"].write_text(
        leaderboard_markdown(board, overall, title=title, n_resamples=n_resamples), encoding="utf-8"
    )
    return paths
