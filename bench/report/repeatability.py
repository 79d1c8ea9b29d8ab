"""Repeatability across retrained models (Arun et al. 2021, "Assessing the trustworthiness of saliency maps
for localizing abnormalities in medical imaging", Radiology: AI): does a ranking, and does a map, survive
training the same network again with another seed?

Two questions, two tables:

- **Ranking repeatability** (:func:`ranking_repeatability`): per dataset and metric, Kendall's coefficient of
  concordance W of the method rankings of the seeds' models (the seeds are the "judges", the methods the
  "objects"). W = 1: every seed ranks the methods the same; W near 0: the ranking is a property of the training
  run, not of the methods. A permutation p-value (each seed's ranking shuffled independently) says whether W is
  above what unrelated rankings give.
- **Map repeatability** (:func:`map_repeatability`, from the ``repeatability.parquet`` the sweep writes for a
  suite with two or more seeds, :mod:`bench.sweep.repeatability`): per method, the similarity (Spearman, SSIM)
  of the maps of the *same* image from two retrained models, against that of maps of *different* images from
  the same two models. A method whose maps change more between two equally good models than between two images
  explains the training run, not the data (``repeatable`` False).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bench.report.stats import bootstrap_ci


def kendalls_w(ranks) -> float:
    """Kendall's W of ``ranks`` ``(m, n)``: m judges (seeds) each ranking n objects (methods), ties as average
    ranks, with the tie correction (Kendall & Babington Smith 1939):

        W = 12 S / (m^2 (n^3 - n) - m sum_j T_j),  S = sum_i (R_i - m (n + 1) / 2)^2,  T_j = sum_g (t_g^3 - t_g)

    where R_i is object i's rank sum and t_g the sizes of judge j's tie groups. 1 = identical rankings,
    0 = no agreement. NaN for fewer than 2 judges or 2 objects, or when every judge ties every object.
    """
    r = np.asarray(ranks, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"ranks must be (judges, objects), got shape {r.shape}")
    m, n = r.shape
    if m < 2 or n < 2:
        return float("nan")
    s = float(((r.sum(axis=0) - m * (n + 1) / 2.0) ** 2).sum())
    ties = 0.0
    for row in r:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts**3 - counts).sum())
    den = m**2 * (n**3 - n) - m * ties
    return float(12.0 * s / den) if den > 0 else float("nan")


def concordance_test(values, higher_is_better: bool = True, *, n_permutations: int = 1000,
                     seed: int = 0) -> tuple[float, float]:
    """``(W, p)``: Kendall's W of the rankings of ``values`` ``(seeds, methods)`` (each row ranked, best = 1)
    and its permutation p-value: the share of ``n_permutations`` tables whose rows are shuffled independently
    with W at least the observed one, as ``(1 + hits) / (1 + n_permutations)``. Methods with a NaN in any row
    are dropped first. NaN, NaN for fewer than 2 seeds or 2 methods."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be (seeds, methods), got shape {v.shape}")
    v = v[:, np.isfinite(v).all(axis=0)]
    if v.shape[0] < 2 or v.shape[1] < 2:
        return float("nan"), float("nan")
    ranks = rankdata(-v if higher_is_better else v, axis=1)
    w = kendalls_w(ranks)
    if not np.isfinite(w):
        return w, float("nan")
    rng = np.random.default_rng(seed)
    hits = sum(kendalls_w(rng.permuted(ranks, axis=1)) >= w - 1e-12 for _ in range(n_permutations))
    return w, float((1 + hits) / (1 + n_permutations))


def ranking_repeatability(results: pd.DataFrame, directions: dict[str, str], *, methods=None,
                          n_permutations: int = 1000) -> pd.DataFrame:
    """Per dataset and metric, and over all datasets (``dataset == "all"``: each seed's methods ranked by their
    mean rank over the datasets), Kendall's W of the seeds' method rankings with its permutation p-value.

    Args:
        results: the long results table (``results.parquet``: ``dataset, seed, method, metric, value``; excluded
            rows are dropped).
        directions: metric -> ``"higher"`` or ``"lower"`` (which is better); metrics not named are skipped.
        methods: the methods to rank (default: all in ``results``; pass the ranked ones, without references).

    Returns:
        one row per (dataset, metric): ``dataset, metric, w, p_value, n_seeds, n_methods``; empty with fewer
        than two seeds.
    """
    cols = ["dataset", "metric", "w", "p_value", "n_seeds", "n_methods"]
    df = results
    if "excluded" in df:
        df = df[~df["excluded"].astype(bool)]
    if methods is not None:
        df = df[df["method"].isin(list(methods))]
    df = df[df["metric"].isin(list(directions))]
    if df.empty or df["seed"].nunique() < 2:
        return pd.DataFrame(columns=cols)
    means = df.groupby(["dataset", "metric", "seed", "method"], observed=True)["value"].mean()
    rows = []
    for metric, higher in ((m, directions[m] == "higher") for m in sorted(df["metric"].unique())):
        per_dataset_ranks = []
        for dataset in sorted(df["dataset"].unique()):
            try:
                table = means.loc[(dataset, metric)].unstack("method")  # (seeds, methods)
            except KeyError:
                continue
            w, p = concordance_test(table.to_numpy(), higher, n_permutations=n_permutations)
            valid = table.loc[:, table.notna().all()]
            rows.append({"dataset": dataset, "metric": metric, "w": w, "p_value": p, "n_seeds": len(table),
                         "n_methods": valid.shape[1]})
            if valid.shape[1] >= 2:
                per_dataset_ranks.append(valid.rank(axis=1, ascending=not higher))
        if per_dataset_ranks:
            mean_rank = pd.concat(per_dataset_ranks).groupby(level=0).mean().dropna(axis=1)
            w, p = concordance_test(mean_rank.to_numpy(), False, n_permutations=n_permutations)  # a rank: low = best
            rows.append({"dataset": "all", "metric": metric, "w": w, "p_value": p, "n_seeds": len(mean_rank),
                         "n_methods": mean_rank.shape[1]})
    return pd.DataFrame(rows, columns=cols)


MAP_MEASURES = ("spearman", "ssim")


def map_repeatability(pairs: pd.DataFrame, *, n_resamples: int = 1000) -> pd.DataFrame:
    """Per method (over datasets, seed pairs and images), the similarity of the maps of the same image from two
    retrained models against that of different images, for each measure in :data:`MAP_MEASURES`.

    Args:
        pairs: ``repeatability.parquet`` (:func:`bench.sweep.repeatability.map_pairs`): one row per (dataset,
            method, seed pair, image) with ``<measure>_same`` and ``<measure>_different``.

    Returns:
        one row per method: for each measure ``<m>_same``, ``<m>_different`` (means), ``<m>_gap`` (mean of
        same - different over images) with ``<m>_gap_low/high`` (95 % percentile-bootstrap CI over the image
        pairs), and ``repeatable``: the Spearman gap's CI lies above 0 (the same image's maps agree more than
        two images' maps do). ``n`` = image pairs with a finite Spearman gap.
    """
    rows = []
    for method, g in pairs.groupby("method", sort=True):
        row: dict = {"method": method}
        for m in MAP_MEASURES:
            gap = (g[f"{m}_same"] - g[f"{m}_different"]).to_numpy(dtype=np.float64)
            ci = bootstrap_ci(gap, n_resamples=n_resamples)
            row.update({f"{m}_same": float(np.nanmean(g[f"{m}_same"])) if g[f"{m}_same"].notna().any() else np.nan,
                        f"{m}_different": (float(np.nanmean(g[f"{m}_different"]))
                                           if g[f"{m}_different"].notna().any() else np.nan),
                        f"{m}_gap": ci.mean, f"{m}_gap_low": ci.low, f"{m}_gap_high": ci.high})
            if m == "spearman":
                row["n"] = ci.n_valid
        row["repeatable"] = bool(row["spearman_gap_low"] > 0) if np.isfinite(row["spearman_gap_low"]) else False
        rows.append(row)
    return pd.DataFrame(rows)


RANKING_MEANING = ("W = 1: the models of every seed rank the methods in the same order, so the ranking is about the "
                   "methods; W near 0, or p above 0.05: retraining the same network reorders them, so the ranking "
                   "says more about one training run than about the methods.")
MAP_MEANING = ("A good method gives the same image nearly the same map from two equally trained models (a gap well "
               "above 0: the same image's maps agree more than two different images' maps); a gap at or below 0 "
               "means its maps change more with the training run than with the image.")


def repeatability_entries(results: pd.DataFrame, pairs: pd.DataFrame | None, out, written: dict, *,
                          n_resamples: int = 1000) -> list:
    """The two entries of the scorecard's "How far to trust this ranking" for a run with two or more seeds
    (none otherwise): ranking repeatability (:func:`ranking_repeatability` over the ranked methods, written to
    ``ranking_repeatability.csv``) and map repeatability (:func:`map_repeatability` of ``pairs``, the run's
    ``repeatability.parquet``, written to ``map_repeatability.csv``); both CSVs are added to ``written``."""
    from pathlib import Path

    from bench.report import html as H
    from bench.report.reference import direction, is_oracle
    from bench.report.trust import TrustEntry

    out = Path(out)
    for name in ("ranking_repeatability.csv", "map_repeatability.csv"):
        (out / name).unlink(missing_ok=True)
    if results.empty or results["seed"].nunique() < 2:
        return []
    metrics = sorted(results["metric"].unique())
    ranked = sorted(m for m in results["method"].unique() if not is_oracle(m))
    ranking = ranking_repeatability(results, {m: direction(m) for m in metrics}, methods=ranked)
    ranking.to_csv(out / "ranking_repeatability.csv", index=False)
    written["ranking_repeatability.csv"] = out / "ranking_repeatability.csv"
    seeds = ", ".join(str(s) for s in sorted(results["seed"].unique()))
    overall = ranking[ranking["dataset"] == "all"]
    rows = [[r.metric, H.fmt(r.w), H.fmt(r.p_value), int(r.n_methods)] for r in overall.itertuples()]
    body = (f"<p>Kendall's W of the method rankings of the models trained with seeds {H.esc(seeds)} (on one "
            "split, explaining the same test images), per metric over all datasets (each seed's methods ordered "
            "by their mean rank across datasets); p: permutation test (each seed's ranking shuffled independently, "
            "1000 times). Per dataset: <code>ranking_repeatability.csv</code>.</p>"
            + H.table(["metric", "W", "p", "methods"], rows))
    entries = [TrustEntry("Does the ranking survive retraining?", RANKING_MEANING, body)]
    if pairs is not None and len(pairs):
        table = map_repeatability(pairs, n_resamples=n_resamples)
        table.to_csv(out / "map_repeatability.csv", index=False)
        written["map_repeatability.csv"] = out / "map_repeatability.csv"
        table = table.sort_values("spearman_gap", ascending=False)
        rows = [[r.method, H.fmt(r.spearman_same), H.fmt(r.spearman_different),
                 f"{H.fmt(r.spearman_gap)} [{H.fmt(r.spearman_gap_low)}, {H.fmt(r.spearman_gap_high)}]",
                 H.fmt(r.ssim_same), H.fmt(r.ssim_different), "yes" if r.repeatable else "no", int(r.n)]
                for r in table.itertuples()]
        body = ("<p>Per method, over datasets, seed pairs and images: the similarity of the maps of the same image "
                "from two retrained models (same) and of two different images from the same two models "
                "(different; Spearman of the pixel ranks, and SSIM). Repeatable: the 95 % bootstrap interval of "
                "the Spearman gap (same - different) lies above 0. All values: <code>map_repeatability.csv"
                "</code>.</p>" + H.table(["method", "Spearman same", "different", "gap [95 % CI]", "SSIM same",
                                          "different", "repeatable", "image pairs"], rows))
        entries.append(TrustEntry("Do the maps survive retraining?", MAP_MEANING, body))
    return entries


__all__ = ["MAP_MEANING", "MAP_MEASURES", "RANKING_MEANING", "concordance_test", "kendalls_w", "map_repeatability",
           "ranking_repeatability", "repeatability_entries"]
