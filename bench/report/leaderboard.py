"""Leaderboards: per dataset, model, method and metric, the mean with a bootstrap CI, ranks with bootstrap
intervals, and paired comparisons against the baselines and against the reference method.

The roles (:class:`bench.report.reference.Roles`) are options of :func:`leaderboard`: the reference method
(default ``grad_cam``), the baselines (default ``centre``, ``random``) and the model-blind maps (default
``centre``, ``random``, ``edge``). Below, ``grad_cam``, ``centre`` and ``random`` stand for whatever was chosen;
the column names follow (``vs_<reference>*``, ``beats_<baseline>``).

What one row of :func:`leaderboard` summarises: all rows of the results table with the same
``(dataset, model, method, metric)``. An *observation* is one image scored by one trained model
(``run, seed, fold, image_id``); a *trained model* is one ``(run, seed, fold)``. The same
(run, dataset, model, seed, fold, method, metric, image_id) twice is an error (:func:`check_results`).

Counting (per row of the leaderboard):
- ``n_excluded``: rows whose ``excluded`` is non-empty (an error, a skipped image); never scored.
- ``n_valid``: the other rows with a finite ``value``; the mean is the mean of these (all models pooled).
- ``n_models``: trained models with at least one valid value; ``between_model_sd``: the standard
  deviation (ddof 1) of their per-model means, NaN with one model.
- ``n_degenerate``: rows among the non-excluded ones flagged ``degenerate`` (e.g. a constant map).
  Their values are *kept* in the mean: a method that produces degenerate maps pays for them.
- NaN values (undefined: an empty mask) are neither valid nor excluded; ``n_rows`` counts everything.

Confidence intervals (``ci_low``, ``ci_high``): percentile bootstrap of the mean. Per (dataset, model)
one set of resamples is drawn and shared by every method and metric (paired): with one trained model the
resamples draw its images with replacement; with several, they draw the models with replacement and then
the images within each drawn model (two levels: retrained models are not more images), and the
statistic is the mean of the valid values drawn. With one model the CI covers images only, and the
markdown says so. The resamples depend only on ``seed``, the dataset and model names and the set of
observations, so a row's CI does not move when other methods or datasets are added.

Ranks are within ``(dataset, model, metric)``, 1 = best by the metric's direction, ties averaged
(means equal to 9 decimals tie; the convention of Demšar 2006 for mean ranks); baselines are ranked too.
``rank_low``/``rank_high``: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (lower
and higher order statistic) of the method's rank among the methods' means in each resample (same
resampled images for every method), widened to include ``rank`` itself. :func:`overall_ranking` gives
the position by mean rank with its interval from the same resamples (datasets resampled independently).

Baselines (``BASELINES``: ``centre``, ``random``): *every* method, the baselines included, is compared with
every baseline. A method beats a baseline (``beats_<baseline>``) when the CI of the mean paired difference
(method - baseline, same observations, same resamples as above) lies entirely on the better side of zero.
A baseline against itself is NA ("n/a"): neither a win nor a loss. ``beats_baselines`` is True when
every baseline present is beaten, False when one is not, NA when no baseline was run and for the
baselines themselves (they cannot beat the whole set, one of which is themselves; their
``beats_<other>`` columns say how they fare against the other one). Requiring every baseline to be beaten
is an intersection-union test, so it needs no multiplicity correction; the CIs are not corrected across
methods, datasets or metrics.

Against ``grad_cam``: per image, the paired difference (method - grad_cam) averaged over the trained models
that scored that image (retrained models are not more images); a two-sided Wilcoxon signed-rank test over
those per-image differences (``vs_grad_cam_p``). Holm's correction (``vs_grad_cam_p_holm``) is applied in
one Holm family per dataset, model and metric: the p-values of all methods but grad_cam (baselines
included) against grad_cam in that cell; different datasets, models and metrics are separate families.
The direction comes from ``vs_grad_cam_hl``, the Hodges-Lehmann estimate (median of the Walsh averages)
of the non-zero per-image differences, the estimate consistent with the signed-rank test, not from the
mean difference (``vs_grad_cam_diff``, which a few large differences can flip). ``vs_grad_cam`` reads
"better"/"worse" when Holm p < alpha and the HL estimate is on that side (by the metric's direction),
"unclear" when Holm p < alpha but the HL estimate is 0, "n.s." when Holm p >= alpha, and "n/a" when the
test was not run (too few non-zero differences, see :func:`bench.report.stats.paired_wilcoxon`).

Subsets (means of the valid values, no CI): ``mean_small``/``n_small`` and ``mean_large``/``n_large``, lesions
smaller than one cell of the method's grid and the rest; ``mean_verified``/``n_verified`` and
``mean_unverified``/``n_unverified``, the images whose prediction depends on the lesion (``lesion_used`` in the
results: removing the lesion lowered the target's probability by at least the suite's ``report.verified_drop``)
and the images measured but not verified. Images without a measurement are in neither.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _st

from bench.report.markdown import markdown_table
from bench.report.reference import (
    BASELINES, MODEL_BLIND, REFERENCE_METHOD, Roles, ceiling_of, code_list, direction, is_oracle, roles_of,
)
from bench.report.stats import holm, nan_quantiles, resampled_means, signed_rank_columns
from bench.results import OPTIONAL_RESULT_COLUMNS, RESULT_COLUMNS

GROUP = ["dataset", "model", "method", "metric"]
FAMILY = ["dataset", "model", "metric"]
UNIT = ["dataset", "model"]  # one set of resamples: its observations are shared by every method and metric
MODEL_KEY = ["run", "seed", "fold"]  # one trained model
PAIR_KEY = [*MODEL_KEY, "image_id"]  # one observation
DUPLICATE_KEY = ["run", "dataset", "model", "seed", "fold", "method", "metric", "image_id"]

RANK_DECIMALS = 9  # means closer than this rank as ties

def reference_columns(reference: str = REFERENCE_METHOD) -> list[str]:
    """The columns of the comparisons against ``reference``: ``vs_<reference>`` (the verdict), ``_diff``,
    ``_hl``, ``_p``, ``_p_holm``, ``_pairs``."""
    return [f"vs_{reference}{s}" for s in ("", "_diff", "_hl", "_p", "_p_holm", "_pairs")]


def leaderboard_columns(roles: Roles = Roles()) -> list[str]:
    """The columns of a leaderboard built with ``roles`` (``beats_<baseline>`` and ``vs_<reference>*`` follow them)."""
    return [
        *GROUP, "direction", "mean", "between_model_sd", "ci_low", "ci_high", "n_valid", "n_models", "n_degenerate",
        "n_excluded", "n_rows", "rank", "rank_low", "rank_high", "relative", "relative_low", "relative_high",
        "ceiling", "mean_small", "n_small", "mean_large", "n_large", "mean_verified", "n_verified", "mean_unverified",
        "n_unverified",
        *[f"beats_{b}" for b in roles.baselines], "beats_baselines", *reference_columns(roles.reference),
    ]


LEADERBOARD_COLUMNS = leaderboard_columns()  # with the default roles


def check_results(results: pd.DataFrame) -> pd.DataFrame:
    """Validate a results table and normalise ``run``/``excluded``/``degenerate``/``value``; returns a copy.

    Raises:
        ValueError: a required column is missing (``run``, ``label``, ``target``, ``correct`` are optional),
            or a row is duplicated: the same ``DUPLICATE_KEY`` (run, dataset, model, seed, fold, method,
            metric, image_id) more than once (it would count twice in a mean and once in a paired test).
            The message gives the number of duplicate rows and the first duplicated key.
    """
    required = [c for c in RESULT_COLUMNS if c not in OPTIONAL_RESULT_COLUMNS]
    missing = [c for c in required if c not in results.columns]
    if missing:
        raise ValueError(f"results table lacks column(s) {missing}; expected {list(RESULT_COLUMNS)}")
    df = results.copy()
    df["run"] = df["run"].fillna("").astype(str) if "run" in df.columns else ""
    df["excluded"] = df["excluded"].fillna("").astype(str)
    df["degenerate"] = df["degenerate"].fillna(False).astype(bool)
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(np.float64)
    for c in ("dataset", "model", "method", "metric", "image_id"):
        df[c] = df[c].astype(str)
    dup = df.duplicated(DUPLICATE_KEY)
    if dup.any():
        first = df.loc[dup].iloc[0]
        key = ", ".join(f"{c}={first[c]!r}" for c in DUPLICATE_KEY)
        raise ValueError(
            f"results table has {int(dup.sum())} duplicate row(s): the same ({', '.join(DUPLICATE_KEY)}) more "
            f"than once; the first: {key}. Each image x method x metric of one trained model must appear once "
            "(were two results tables concatenated?)"
        )
    return df


def _better(diff_low: float, diff_high: float, dirn: str) -> bool | None:
    if not (np.isfinite(diff_low) and np.isfinite(diff_high)):
        return None
    return bool(diff_low > 0) if dirn == "higher" else bool(diff_high < 0)


def _verdict(p_holm: float, hl: float, dirn: str, alpha: float) -> str:
    """``vs_<reference>`` from the Holm p-value and the Hodges-Lehmann estimate (see the module docstring)."""
    if not np.isfinite(p_holm):
        return "n/a"
    if p_holm >= alpha:
        return "n.s."
    if not np.isfinite(hl) or hl == 0:
        return "unclear"
    return "better" if (hl > 0) == (dirn == "higher") else "worse"


def _unit_seed(seed: int, dataset: str, model: str) -> list[int]:
    """Seed of one (dataset, model)'s resamples: its own stream, the same whatever else is in the table."""
    return [int(seed), zlib.crc32(dataset.encode()), zlib.crc32(model.encode())]


def _ranks(means: np.ndarray, dirn: str | np.ndarray) -> np.ndarray:
    """Ranks along the last axis (1 = best by ``dirn``, ties averaged, NaN stays NaN): ``(..., M)``."""
    key = np.round(np.where(np.asarray(dirn) == "lower", means, -means), RANK_DECIMALS)
    return _st.rankdata(key, method="average", axis=-1, nan_policy="omit")


def _interval(samples: np.ndarray, confidence: float, point: np.ndarray | None = None, *, order: bool = False):
    """Per column of ``(B, M)`` samples: the two-sided ``confidence`` quantiles, NaN ignored, widened to
    contain ``point``. ``order``: the lower/higher order statistic (ranks), else interpolated (means)."""
    a = (1.0 - confidence) / 2.0
    lo = nan_quantiles(samples, a, method="lower" if order else "linear")
    hi = nan_quantiles(samples, 1.0 - a, method="higher" if order else "linear")
    if point is not None:
        lo, hi = np.fmin(lo, point), np.fmax(hi, point)
        lo[~np.isfinite(point)] = np.nan
        hi[~np.isfinite(point)] = np.nan
    return lo, hi


class RankSamples:
    """Bootstrap ranks of each (dataset, model, metric) cell, kept on the board (``board.attrs``) so that
    :func:`overall_ranking` can give its positions an interval from the same resamples.

    ``cells[(dataset, model, metric)] = (methods, ranks)``: ``ranks`` is ``(n_resamples, len(methods))``
    float32, NaN where a method had no valid value in a resample. Shared, never copied (pandas deep-copies
    ``attrs`` on every operation).
    """

    def __init__(self, cells: dict, confidence: float):
        self.cells, self.confidence = cells, confidence

    def __deepcopy__(self, memo):
        return self

    def __eq__(self, other):
        return (isinstance(other, RankSamples) and self.confidence == other.confidence
                and self.cells.keys() == other.cells.keys()
                and all(m == other.cells[k][0] and np.array_equal(r, other.cells[k][1], equal_nan=True)
                        for k, (m, r) in self.cells.items()))

    __hash__ = None


def leaderboard(
    results: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    alpha: float = 0.05,
    reference: str = REFERENCE_METHOD,
    baselines: tuple[str, ...] = BASELINES,
    model_blind: tuple[str, ...] = MODEL_BLIND,
) -> pd.DataFrame:
    """The leaderboard of a results table (one row per dataset x model x method x metric).

    Args:
        results: the sweep's long table (columns in ``RESULT_COLUMNS``; see docs/CONTRACTS.md).
        n_resamples, confidence, seed: of the bootstrap (CIs, rank intervals, baseline comparisons). One
            set of resamples per (dataset, model), shared by its methods and metrics; see the module
            docstring for the one- and two-level resampling.
        alpha: significance level of the Holm-corrected comparisons against the reference method.
        reference, baselines, model_blind: the roles (:class:`bench.report.reference.Roles`): the method every
            other is tested against, the maps every method must beat, the maps whose best is the floor of the
            relative view. A user's method can be the reference.

    Returns:
        DataFrame with :func:`leaderboard_columns` of the roles (``LEADERBOARD_COLUMNS`` with the defaults; see
        the module docstring for each rule), sorted by dataset, model, metric, rank. ``beats_*`` are pandas
        nullable booleans (NA = not compared). ``attrs["rank_samples"]`` holds the bootstrap ranks
        (:class:`RankSamples`) for :func:`overall_ranking`, ``attrs["roles"]`` the :class:`Roles`. Groups
        without a valid value have NaN mean, CI and ranks.

    Raises:
        ValueError: missing columns, duplicated rows, a metric without a known direction, or
            ``confidence`` not in (0, 1) / ``n_resamples`` < 1.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    roles = Roles(reference, tuple(baselines), tuple(model_blind))
    columns = leaderboard_columns(roles)
    df = check_results(results)
    if df.empty:
        empty = pd.DataFrame(columns=columns)
        empty.attrs["roles"] = roles
        return empty
    directions = {m: direction(m) for m in df["metric"].unique()}
    used = df[df["excluded"] == ""]
    valid = used[np.isfinite(used["value"].to_numpy())]

    board = df.assign(is_excluded=df["excluded"] != "").groupby(GROUP, sort=True).agg(
        n_rows=("value", "size"), n_excluded=("is_excluded", "sum")
    )
    g = valid.groupby(GROUP)["value"]
    per_model = valid.groupby([*GROUP, *MODEL_KEY])["value"].mean().groupby(level=list(range(len(GROUP))))
    board = board.join(pd.DataFrame({
        "mean": g.mean(), "n_valid": g.size(), "between_model_sd": per_model.std(ddof=1),
        "n_models": per_model.size(), "n_degenerate": used.groupby(GROUP)["degenerate"].sum(),
    })).reset_index()
    for c in ("n_rows", "n_excluded", "n_valid", "n_models", "n_degenerate"):
        board[c] = board[c].fillna(0).astype(int)
    board["direction"] = board["metric"].map(directions)
    board["rank"] = _point_ranks(board)
    board = board.merge(_by_lesion_size(valid), on=GROUP, how="left")
    board = board.merge(_by_lesion_use(valid), on=GROUP, how="left")

    resampled, samples = _resampled(df, valid, board, directions, roles, n_resamples=n_resamples,
                                    confidence=confidence, seed=seed, alpha=alpha)
    board = board.merge(resampled, on=GROUP, how="left")
    for c in (*[f"beats_{b}" for b in roles.baselines], "beats_baselines"):
        board[c] = board[c].astype("boolean")
    verdict, *_, pairs = reference_columns(roles.reference)
    board[verdict] = board[verdict].astype(object).fillna("")  # all-NaN (float) when the reference was not run
    board[pairs] = board[pairs].fillna(0).astype(int)
    for c in ("n_small", "n_large", "n_verified", "n_unverified"):
        board[c] = board[c].fillna(0).astype(int)
    board = board.sort_values(["dataset", "model", "metric", "rank", "method"], na_position="last")
    board = board[columns].reset_index(drop=True)
    board.attrs["rank_samples"] = RankSamples(samples, confidence)
    board.attrs["roles"] = roles
    return board


def _by_lesion_size(valid: pd.DataFrame) -> pd.DataFrame:
    """Per GROUP, the mean and count of the valid values on lesions smaller than one cell of the grid the
    method's map is computed on (``lesion_area < cell_area``: no cell can be mostly lesion; TorchRay's
    "difficult" subset in the same spirit) and on the rest. NaN means and 0 counts where the results carry
    no ``lesion_area`` / ``cell_area`` (an older or hand-made table) or the subset is empty."""
    cols = ["mean_small", "n_small", "mean_large", "n_large"]
    if not {"lesion_area", "cell_area"} <= set(valid.columns):
        return pd.DataFrame(columns=[*GROUP, *cols])
    v = valid[np.isfinite(valid["lesion_area"].to_numpy(float)) & np.isfinite(valid["cell_area"].to_numpy(float))]
    small = v["lesion_area"] < v["cell_area"]
    parts = []
    for name, sel in (("small", small), ("large", ~small)):
        g = v[sel].groupby(GROUP)["value"]
        parts.append(pd.DataFrame({f"mean_{name}": g.mean(), f"n_{name}": g.size()}))
    out = pd.concat(parts, axis=1).reset_index()
    for c in ("n_small", "n_large"):
        out[c] = out[c].fillna(0).astype(int)
    return out.reindex(columns=[*GROUP, *cols])


def _by_lesion_use(valid: pd.DataFrame) -> pd.DataFrame:
    """Per GROUP, the mean and count of the valid values on the *verified* images (``lesion_used``: removing the
    lesion lowered the target's probability by at least the suite's ``report.verified_drop``; the model uses the
    lesion, so a map that misses it misses what the model used) and on the images measured but not verified (the
    model did not need the lesion: a map that looks elsewhere may be right). Images without a measurement (NA)
    are in neither. NaN means and 0 counts where the results carry no ``lesion_used`` or a subset is empty."""
    cols = ["mean_verified", "n_verified", "mean_unverified", "n_unverified"]
    if "lesion_used" not in valid.columns:
        return pd.DataFrame(columns=[*GROUP, *cols])
    used = valid["lesion_used"].astype("boolean")
    parts = []
    for name, sel in (("verified", used.fillna(False)), ("unverified", (~used).fillna(False))):
        g = valid[sel.to_numpy(dtype=bool)].groupby(GROUP)["value"]
        parts.append(pd.DataFrame({f"mean_{name}": g.mean(), f"n_{name}": g.size()}))
    out = pd.concat(parts, axis=1).reset_index()
    if out.empty:
        return pd.DataFrame(columns=[*GROUP, *cols])
    for c in ("n_verified", "n_unverified"):
        out[c] = out[c].fillna(0).astype(int)
    return out.reindex(columns=[*GROUP, *cols])


def _point_ranks(board: pd.DataFrame) -> pd.Series:
    """Rank of each row's mean within its (dataset, model, metric), 1 = best, ties averaged, NaN kept."""
    key = np.where(board["direction"] == "lower", board["mean"], -board["mean"])
    key = np.where(board["method"].map(is_oracle), np.nan, key)  # references are shown, never ranked
    # means equal up to float summation noise (the same per-image values added in another order) tie
    key = pd.Series(np.round(key.astype(np.float64), RANK_DECIMALS), index=board.index)
    return key.groupby([board[c] for c in FAMILY]).rank(method="average", na_option="keep")


def _resampled(
    df: pd.DataFrame, valid: pd.DataFrame, board: pd.DataFrame, directions: dict[str, str], roles: Roles, *,
    n_resamples: int, confidence: float, seed: int, alpha: float,
) -> tuple[pd.DataFrame, dict]:
    """CIs, rank intervals, baseline comparisons and tests vs the reference method; one set of resamples per
    (dataset, model), vectorised over resamples, methods and metrics. Returns (rows by GROUP, samples)."""
    baselines = roles.baselines
    point = dict(zip(zip(*(board[c] for c in GROUP)), zip(board["mean"], board["rank"])))  # GROUP -> (mean, rank)
    out: list[dict] = []
    samples: dict = {}
    valid_by_unit = dict(iter(valid.groupby(UNIT, sort=False)))
    for (dataset, model), unit in df.groupby(UNIT, sort=True):
        keys = unit[PAIR_KEY].drop_duplicates().sort_values(PAIR_KEY).reset_index(drop=True)
        n = len(keys)
        models = keys.groupby(MODEL_KEY, sort=True).ngroup().to_numpy()
        images, image_names = pd.factorize(keys["image_id"], sort=True)
        uv = valid_by_unit.get((dataset, model), valid.iloc[:0])
        row = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(uv[PAIR_KEY]))

        families = []  # (metric, methods, values (n, M))
        for metric, methods in unit.groupby("metric", sort=True)["method"].unique().items():
            methods = sorted(methods)
            values = np.full((n, len(methods)), np.nan)
            sel = (uv["metric"] == metric).to_numpy()
            values[row[sel], pd.Index(methods).get_indexer(uv.loc[sel, "method"])] = uv.loc[sel, "value"].to_numpy()
            families.append((metric, methods, values))

        # one matrix of every series this unit needs: the methods' values, then their differences to each baseline
        blocks = [v for _, _, v in families]
        for _, methods, values in families:
            blocks += [values - values[:, [methods.index(b)]] for b in baselines if b in methods]
        means = resampled_means(np.hstack(blocks), models, n_resamples=n_resamples,
                                seed=_unit_seed(seed, dataset, model))

        col = 0
        per_family = []
        for metric, methods, values in families:
            m = len(methods)
            fam_means = means[:, col:col + m]
            col += m
            pm, pr = np.array([point[(dataset, model, meth, metric)] for meth in methods], dtype=np.float64).T
            ci_low, ci_high = _interval(fam_means, confidence, pm)
            ranked = np.array([not is_oracle(meth) for meth in methods])
            ranks = _ranks(np.where(ranked, fam_means, np.nan), directions[metric])
            rank_low, rank_high = _interval(ranks, confidence, pr, order=True)
            samples[(dataset, model, metric)] = (tuple(np.asarray(methods)[ranked]), ranks[:, ranked].astype(np.float32))
            relative = _relative(methods, pm, fam_means, directions[metric], confidence, roles.model_blind)
            rows = {meth: dict(dataset=dataset, model=model, method=meth, metric=metric, ci_low=ci_low[i],
                               ci_high=ci_high[i], rank_low=rank_low[i], rank_high=rank_high[i], **relative[i])
                    for i, meth in enumerate(methods)}
            per_family.append((metric, methods, values, rows))
            out.extend(rows.values())
        for metric, methods, values, rows in per_family:
            dirn = directions[metric]
            verdicts: dict[str, list[bool]] = {meth: [] for meth in methods}
            for b in baselines:
                if b not in methods:
                    for meth in methods:
                        rows[meth][f"beats_{b}"] = None
                    continue
                d_low, d_high = _interval(means[:, col:col + len(methods)], confidence)
                col += len(methods)
                for i, meth in enumerate(methods):
                    v = None if meth == b or is_oracle(meth) else _better(d_low[i], d_high[i], dirn)
                    rows[meth][f"beats_{b}"] = v
                    if v is not None:
                        verdicts[meth].append(v)
            for meth in methods:
                rows[meth]["beats_baselines"] = (all(verdicts[meth]) if verdicts[meth] else None) \
                    if meth not in baselines and not is_oracle(meth) else None
            if roles.reference in methods:
                _vs_reference(values, methods, images, len(image_names), rows, dirn, alpha, roles.reference)
    cols = [*GROUP, "ci_low", "ci_high", "rank_low", "rank_high", "relative", "relative_low", "relative_high",
            "ceiling", *[f"beats_{b}" for b in baselines], "beats_baselines", *reference_columns(roles.reference)]
    return pd.DataFrame(out).reindex(columns=cols), samples


MIN_SPAN = 0.1  # the least ceiling - floor (metric units, all metrics in [0, 1]) the relative view is given for


def _relative(methods: list[str], point: np.ndarray, resampled: np.ndarray, dirn: str,
              confidence: float, model_blind: tuple[str, ...] = MODEL_BLIND) -> list[dict]:
    """Per method, its place between the best model-blind baseline (0) and the oracle at its own resolution
    (1): ``(mean - floor) / (ceiling - floor)``, with the floor the best of ``model_blind`` by the metric's
    direction and the ceiling :func:`bench.report.reference.ceiling_of` the method; the CI from the same
    resamples (``resampled`` (B, M) means). NaN for the oracles, when the floor or ceiling was not run, or
    when the ceiling is better than the floor by less than :data:`MIN_SPAN` (on the metric's 0-1 scale: there
    the metric can hardly tell a perfect map from a blind one, and the ratio would magnify noise)."""
    col = {m: i for i, m in enumerate(methods)}
    blind = [col[b] for b in model_blind if b in col]
    out = []
    for i, meth in enumerate(methods):
        ceiling = ceiling_of(meth)
        row = {"relative": np.nan, "relative_low": np.nan, "relative_high": np.nan, "ceiling": ceiling}
        if is_oracle(meth) or not blind or ceiling not in col:
            row["ceiling"] = "" if is_oracle(meth) else row["ceiling"]
            out.append(row)
            continue
        pick = np.nanmax if dirn == "higher" else np.nanmin
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN resample of the baselines
            floor_p, floor_b = pick(point[blind]), pick(resampled[:, blind], axis=1)
            span_p, span_b = point[col[ceiling]] - floor_p, resampled[:, col[ceiling]] - floor_b
            if dirn == "lower":
                span_p, span_b = -span_p, -span_b
            gap_p = (point[i] - floor_p) * (1 if dirn == "higher" else -1)
            gap_b = (resampled[:, i] - floor_b) * (1 if dirn == "higher" else -1)
            rel_p = gap_p / span_p if span_p >= MIN_SPAN else np.nan
            rel_b = np.where(span_b >= MIN_SPAN, gap_b / span_b, np.nan)
        if np.isfinite(rel_p):
            lo, hi = _interval(rel_b[:, None], confidence, np.array([rel_p]))
            row.update(relative=float(rel_p), relative_low=float(lo[0]), relative_high=float(hi[0]))
        out.append(row)
    return out


def _vs_reference(values: np.ndarray, methods: list[str], images: np.ndarray, n_images: int, rows: dict,
                  dirn: str, alpha: float, reference: str = REFERENCE_METHOD) -> None:
    """Wilcoxon of each method against ``reference`` over per-image differences (averaged over the models that
    scored the image), Holm within this (dataset, model, metric), direction from Hodges-Lehmann."""
    diff = values - values[:, [methods.index(reference)]]  # (n, M)
    ok = np.isfinite(diff)
    sums = np.zeros((n_images, diff.shape[1]))
    count = np.zeros_like(sums)
    np.add.at(sums, images, np.where(ok, diff, 0.0))
    np.add.at(count, images, ok)
    with np.errstate(invalid="ignore"):
        per_image = sums / count  # (images, M), NaN where no model scored both
    others = [i for i, meth in enumerate(methods) if meth != reference and not is_oracle(meth)]
    tests = signed_rank_columns(per_image[:, others])
    adjusted = holm([t.pvalue for t in tests])
    verdict, diff_c, hl_c, p_c, holm_c, pairs_c = reference_columns(reference)
    for i, t, p_adj in zip(others, tests, adjusted):
        rows[methods[i]].update({
            verdict: _verdict(p_adj, t.hodges_lehmann, dirn, alpha), diff_c: t.mean_difference,
            hl_c: t.hodges_lehmann, p_c: t.pvalue, holm_c: p_adj, pairs_c: t.n_pairs,
        })


def overall_ranking(board: pd.DataFrame) -> pd.DataFrame:
    """Mean rank of each method across datasets, per metric, and overall (mean over metrics), with the
    position by mean rank and its bootstrap interval.

    Returns one row per (model, method):
    - ``rank_<metric>``: mean of its per-dataset ranks (datasets where it has no rank are skipped);
    - ``mean_rank``: mean over the metrics it has;
    - ``overall_rank``: position by ``mean_rank`` within the model (1 = best, ties averaged);
      ``overall_rank_low``/``overall_rank_high``: its interval, the same quantiles as the leaderboard's
      rank intervals of the positions recomputed in each bootstrap resample (each cell's resampled ranks,
      averaged as above; datasets resampled independently, the metrics of one dataset on the same
      resamples). NaN when ``board`` does not carry the resampled ranks (``attrs["rank_samples"]`` of
      :func:`leaderboard`; lost e.g. when the board is read back from CSV) or its methods differ from them;
    - ``n_datasets``;
    - ``beats_<baseline>``: "k/n", in how many of the (dataset, metric) cells compared it beat that baseline;
      "n/a" for the baseline itself, "-" when never compared;
    - ``beats_baselines``: "k/n" cells where it beat every baseline; "n/a" for the baselines (see
      :func:`leaderboard`).

    Sorted by ``mean_rank`` (1 = best) within model.
    """
    baselines = roles_of(board).baselines
    beats = [f"beats_{b}" for b in baselines]
    tail = ["mean_rank", "overall_rank", "overall_rank_low", "overall_rank_high", "n_datasets", *beats,
            "beats_baselines"]
    board = board[~board["method"].map(is_oracle)] if not board.empty else board  # references are not ranked
    if board.empty:
        return pd.DataFrame(columns=["model", "method", *tail])
    per = board.pivot_table(index=["model", "method"], columns="metric", values="rank", aggfunc="mean", dropna=False)
    per.columns = [f"rank_{c}" for c in per.columns]
    per["mean_rank"] = per.mean(axis=1, skipna=True)
    per["n_datasets"] = board.groupby(["model", "method"])["dataset"].nunique()
    method_of = per.index.get_level_values("method")
    for col, own in [*zip(beats, baselines), ("beats_baselines", None)]:
        compared = board.dropna(subset=[col])
        k = compared.groupby(["model", "method"])[col].agg(lambda s: f"{int(s.sum())}/{len(s)}")
        per[col] = k.astype(object).reindex(per.index).fillna("-")
        per.loc[(method_of == own) if own else method_of.isin(baselines), col] = "n/a"
    per = per.reset_index()
    key = per["mean_rank"].round(RANK_DECIMALS)
    per["overall_rank"] = key.groupby(per["model"]).rank(method="average", na_option="keep")
    per["overall_rank_low"] = np.nan
    per["overall_rank_high"] = np.nan
    samples = board.attrs.get("rank_samples")
    if isinstance(samples, RankSamples):
        for model, idx in per.groupby("model").groups.items():
            interval = _overall_interval(board[board["model"] == model], list(per.loc[idx, "method"]), samples,
                                         per.loc[idx, "overall_rank"].to_numpy())
            if interval is not None:
                per.loc[idx, "overall_rank_low"], per.loc[idx, "overall_rank_high"] = interval
    rank_cols = [c for c in per.columns if c.startswith("rank_")]
    per = per[["model", "method", *rank_cols, *tail]].sort_values(["model", "mean_rank", "method"], na_position="last")
    per = per.reset_index(drop=True)
    per.attrs["roles"] = roles_of(board)
    return per


def _overall_interval(sub: pd.DataFrame, methods: list[str], samples: RankSamples, point: np.ndarray):
    """(low, high) of the overall positions of ``methods`` (one model) over the resamples; None if the
    board's cells do not match the stored resampled ranks."""
    col = {m: i for i, m in enumerate(methods)}
    per_metric = []
    for metric, cells in sub.groupby("metric", sort=True):
        stack = []
        for dataset, cell in cells.groupby("dataset", sort=True):
            stored = samples.cells.get((dataset, cell["model"].iloc[0], metric))
            if stored is None or set(stored[0]) != set(cell["method"]):
                return None
            ranks = np.full((stored[1].shape[0], len(methods)), np.nan)
            ranks[:, [col[m] for m in stored[0]]] = stored[1]
            stack.append(ranks)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a method without ranks in a resample
            per_metric.append(np.nanmean(np.stack(stack), axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_rank = np.nanmean(np.stack(per_metric), axis=0)  # (B, methods)
    positions = _st.rankdata(np.round(mean_rank, RANK_DECIMALS), method="average", axis=-1, nan_policy="omit")
    return _interval(positions, samples.confidence, point, order=True)


# ----------------------------------------------------------------------------------------------------
# Markdown / CSV

MARK_NOT_BEATING = "†"
MARK_BETTER = "▲"
MARK_WORSE = "▼"

def holm_family(reference: str = REFERENCE_METHOD) -> str:
    """How the Holm families are formed, one phrase (markdown)."""
    return ("one Holm family per dataset, model and metric (the p-values of every other method, baselines "
            f"included, against `{reference}` in that cell; datasets, models and metrics are separate families)")


HOLM_FAMILY = holm_family()  # with the default reference


def format_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``"0.512 [0.480, 0.545]"``; ``"-"`` when the mean is undefined."""
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def format_rank(rank: float, low: float, high: float) -> str:
    """``"3 [2, 6]"`` (rank and its bootstrap interval); ``"3"`` without an interval, ``"-"`` without a rank."""
    if not np.isfinite(rank):
        return "-"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{rank:g}"
    return f"{rank:g} [{low:g}, {high:g}]"


def marks(row, roles: Roles = Roles()) -> str:
    """Marks of one leaderboard row: † does not beat the baselines, ▲/▼ vs the reference method (Holm p < alpha
    and the Hodges-Lehmann estimate on that side)."""
    s = ""
    beats = row["beats_baselines"]
    if row["method"] not in roles.baselines and not pd.isna(beats) and not bool(beats):
        s += MARK_NOT_BEATING
    verdict = row.get(f"vs_{roles.reference}", "")
    if verdict == "better":
        s += MARK_BETTER
    elif verdict == "worse":
        s += MARK_WORSE
    return s


def metric_matrix(board: pd.DataFrame, metric: str, model: str) -> tuple[list[str], list[str], pd.DataFrame]:
    """(methods ordered by mean rank across datasets, datasets, the board rows of that metric and model)."""
    sub = board[(board["metric"] == metric) & (board["model"] == model)]
    order = sub.groupby("method")["rank"].mean().sort_values(na_position="last")
    return list(order.index), sorted(sub["dataset"].unique()), sub


def ci_coverage_note(sub: pd.DataFrame) -> str:
    """One line on what the CIs of these leaderboard rows resample: images only (one trained model per
    dataset), or models and then images (with how many models)."""
    k = sub.groupby("dataset")["n_models"].max() if "n_models" in sub.columns else pd.Series(dtype=int)
    multi, single = k[k > 1], sorted(k.index[k <= 1])
    if multi.empty:
        return ("CIs cover images only: one trained model per dataset, so the spread between retrained models "
                "(seeds, folds) is not in them.")
    counts = sorted(set(multi.astype(int)))
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    text = (f"CIs cover models and images: {n} trained models per dataset (seeds x folds) are resampled, then "
            "the images within each drawn model; `between_model_sd` in leaderboard.csv is the standard deviation "
            "of the per-model means.")
    if single:
        text += f" On {', '.join(single)} (one model) they cover images only."
    return text


def leaderboard_markdown(
    board: pd.DataFrame, overall: pd.DataFrame | None = None, *, title: str = "Leaderboard",
    n_resamples: int = 1000, digits: int = 3,
) -> str:
    """The readable leaderboard: overall ranking first, then per metric a methods x datasets table, each
    with a line saying what its CIs cover."""
    overall = overall_ranking(board) if overall is None else overall
    roles = roles_of(board)
    models = sorted(board["model"].unique()) if not board.empty else []
    every = {1: "", 2: "both "}.get(len(roles.baselines), "every one of ")
    parts = [
        f"# {title}\n\n",
        f"Mean with a 95% percentile bootstrap confidence interval ({n_resamples} seeded resamples: of the "
        "images, or, with several trained models, of the models and then the images within each). "
        "`#k [a, b]` is the rank within the dataset (1 = best by the metric's direction) and its 95% "
        "bootstrap interval (the same resampled images for every method). "
        f"{MARK_NOT_BEATING} = does not beat {every}{code_list(roles.baselines)} beyond the CI of the paired "
        "difference (every method, baselines included, is compared with every baseline; a baseline against "
        f"itself is n/a). {MARK_BETTER}/{MARK_WORSE} = significantly better/worse than `{roles.reference}`: "
        "paired Wilcoxon signed-rank test over images (differences averaged over the trained models that scored "
        f"an image), Holm-corrected with {holm_family(roles.reference)}, p < 0.05, and the direction given by the "
        "Hodges-Lehmann estimate of the differences, not by their mean. Rebuilt by `bench report`; do not edit.\n",
    ]
    if board.empty:
        return "".join(parts) + "\n(no results)\n"
    multi = len(models) > 1
    for model in models:
        prefix = f" — model `{model}`" if multi else ""
        ov = overall[overall["model"] == model]
        rank_cols = [c for c in ov.columns if c.startswith("rank_")]
        rows = []
        for _, r in ov.iterrows():
            rows.append({
                "method": r["method"], **{c[5:]: r[c] for c in rank_cols}, "mean rank": r["mean_rank"],
                "rank": format_rank(r.get("overall_rank", np.nan), r.get("overall_rank_low", np.nan),
                                    r.get("overall_rank_high", np.nan)),
                **{f"beats {b}": r.get(f"beats_{b}", "-") for b in roles.baselines},
                "beats baselines": r["beats_baselines"],
            })
        parts.append(f"\n## Overall ranking{prefix}\n\nMean rank across datasets (lower is better); `rank` is the "
                     "position by mean rank with its 95% bootstrap interval. `beats ...`: in how many "
                     "(dataset, metric) cells the method beat that baseline (all of them, for `beats baselines`).\n\n")
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
                        text += " #" + format_rank(r["rank"], r.get("rank_low", np.nan), r.get("rank_high", np.nan))
                    row[d] = (text + " " + marks(r, roles)).rstrip() + (" (ceiling)" if is_oracle(m) else "")
                table.append(row)
            parts.append(f"\n## {metric} ({dirn} is better){prefix}\n\n")
            parts.append(markdown_table(table, columns=["method", *datasets]))
            parts.append(f"\n{ci_coverage_note(sub)}\n")
            parts.append(_relative_table(sub, methods, datasets, digits, roles.model_blind))
            parts.append(_lesion_size_table(sub, methods, datasets, digits))
            parts.append(_verified_table(sub, methods, datasets, digits))
    excluded = board[board["n_excluded"] > 0]
    if len(excluded):  # images an error kept out of every mean above
        per = excluded.groupby(["dataset", "model", "method"], sort=True)["n_excluded"].max().reset_index()
        parts.append("\n## Excluded images\n\nImages never scored (e.g. the method failed on them), per dataset and "
                     "method; the reason for each is in `errors.jsonl` and in the scorecard's 'Errors and "
                     "exclusions' section.\n\n")
        parts.append(markdown_table(per.rename(columns={"n_excluded": "images excluded"}).to_dict("records")))
    return "".join(parts)


def relative_note(model_blind: tuple[str, ...] = MODEL_BLIND) -> str:
    """The paragraph above the relative view (markdown), naming the model-blind maps."""
    blind = ", ".join(f"`{b}`" for b in model_blind) or "none"
    return RELATIVE_NOTE.replace("(`centre`, `random`, `edge`: 0)", f"({blind}: 0)")


RELATIVE_NOTE = (
    "Relative to the ceiling: each method's place between the best model-blind map (`centre`, `random`, "
    "`edge`: 0) and the oracle at its own resolution (1): `oracle_grid` (the lesion mask pooled to the "
    "explained layer's grid) for the CAM methods, `oracle` (the mask itself) for pixel-level maps; 95% "
    "bootstrap CI. It separates 'the method misses the lesion' from 'no map at this resolution can hit "
    "it'. The overall ranking uses the raw means, not this view: it answers which map points at the lesion "
    "best as the user gets it, whatever limits it; the relative view says how much of its own resolution's "
    "room a method uses. '-' where the ceiling beats the best blind map by less than 0.1 (the metric cannot "
    "tell them apart there)."
)


def _relative_table(sub: pd.DataFrame, methods: list[str], datasets: list[str], digits: int,
                    model_blind: tuple[str, ...] = MODEL_BLIND) -> str:
    """The relative view of one metric's rows (methods x datasets), or "" when no row has one."""
    if "relative" not in sub.columns or not np.isfinite(sub["relative"].to_numpy(dtype=float)).any():
        return ""
    cells = {(r["method"], r["dataset"]): r for _, r in sub.iterrows()}
    table = []
    for m in methods:
        if is_oracle(m):
            continue
        row = {"method": m}
        for d in datasets:
            r = cells.get((m, d))
            row[d] = "-" if r is None else format_ci(r["relative"], r["relative_low"], r["relative_high"], 2)
        table.append(row)
    return f"\n{relative_note(model_blind)}\n\n" + markdown_table(table, columns=["method", *datasets])


LESION_SIZE_NOTE = (
    "By lesion size against the method's grid: the mean on lesions smaller than one cell of the grid the map "
    "is computed on (the explained layer's for CAM methods, a pixel for pixel-level maps) `small (n)` and on "
    "the rest `rest (n)`. Where a CAM method does well on the rest and badly on the small ones, its layer, "
    "not the method, is the limit."
)


def _lesion_size_table(sub: pd.DataFrame, methods: list[str], datasets: list[str], digits: int) -> str:
    """The lesion-size view of one metric's rows (only datasets where some method has small lesions)."""
    if "n_small" not in sub.columns or not (sub["n_small"] > 0).any():
        return ""
    shown = [d for d in datasets if (sub.loc[sub["dataset"] == d, "n_small"] > 0).any()]
    cells = {(r["method"], r["dataset"]): r for _, r in sub.iterrows()}

    def cell(r) -> str:
        part = lambda m, n: f"{m:.{digits}f} ({n})" if n else f"- (0)"  # noqa: E731
        return f"{part(r['mean_small'], r['n_small'])} / {part(r['mean_large'], r['n_large'])}"

    table = [{"method": m, **{d: ("-" if (m, d) not in cells else cell(cells[(m, d)])) for d in shown}}
             for m in methods]
    return f"\n{LESION_SIZE_NOTE}\n\n" + markdown_table(table, columns=["method", *shown])


VERIFIED_NOTE = (
    "On the images whose prediction depends on the lesion (model-verified ground truth): `all / verified (n)`, the "
    "mean on every scored image and on the verified ones only (removing the lesion lowered the explained class's "
    "probability by at least the suite's `report.verified_drop`; `lesion_drop` in the results). A method that "
    "scores much better on the verified images misses the lesion mostly where the model did not use it; one that "
    "scores the same misses it where the model did."
)


def _verified_table(sub: pd.DataFrame, methods: list[str], datasets: list[str], digits: int) -> str:
    """The model-verified view of one metric's rows (only datasets where some image was measured)."""
    if "n_verified" not in sub.columns or not ((sub["n_verified"] + sub["n_unverified"]) > 0).any():
        return ""
    measured = sub["n_verified"] + sub["n_unverified"]
    shown = [d for d in datasets if (measured[sub["dataset"] == d] > 0).any()]
    cells = {(r["method"], r["dataset"]): r for _, r in sub.iterrows()}

    def cell(r) -> str:
        verified = f"{r['mean_verified']:.{digits}f} ({r['n_verified']})" if r["n_verified"] else "- (0)"
        return f"{r['mean']:.{digits}f} / {verified}" if np.isfinite(r["mean"]) else f"- / {verified}"

    table = [{"method": m, **{d: ("-" if (m, d) not in cells else cell(cells[(m, d)])) for d in shown}}
             for m in methods]
    return f"\n{VERIFIED_NOTE}\n\n" + markdown_table(table, columns=["method", *shown])


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
