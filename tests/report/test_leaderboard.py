"""bench.report.leaderboard on a hand-built results table whose ordering is known."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

import bench.report.leaderboard as leaderboard_module
from bench.report.leaderboard import (
    LEADERBOARD_COLUMNS, leaderboard, leaderboard_markdown, overall_ranking, write_leaderboard,
)
from bench.report.reference import direction
from bench.report.stats import bootstrap_ci

# method -> (iou level, deletion level); iou higher is better, deletion lower is better.
LEVELS = {
    "good": (0.80, 0.10),
    "grad_cam": (0.60, 0.30),
    "centre": (0.30, 0.50),
    "bad": (0.20, 0.80),  # below the centre baseline on both metrics
    "random": (0.10, 0.60),
}
N = 40


def known_results(datasets=("d1",), folds=(0, 1), levels=LEVELS, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for dataset in datasets:
        for fold in folds:
            noise = rng.normal(0, 0.02, N)  # shared per image: pairs are informative
            for method, (iou, dele) in levels.items():
                for metric, level in (("iou", iou), ("deletion", dele)):
                    for i in range(N):
                        rows.append(dict(
                            run="t", dataset=dataset, model="m", seed=0, fold=fold, method=method, metric=metric,
                            image_id=f"f{fold}i{i}", label="x", target=1, correct=True,
                            value=level + noise[i] + rng.normal(0, 0.01), degenerate=False, excluded="",
                        ))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def board():
    return leaderboard(known_results(), n_resamples=200)


def row(board, method, metric, dataset="d1"):
    r = board[(board["method"] == method) & (board["metric"] == metric) & (board["dataset"] == dataset)]
    assert len(r) == 1
    return r.iloc[0]


def test_columns_and_one_row_per_group(board):
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert len(board) == len(LEVELS) * 2
    r = row(board, "good", "iou")
    assert r["n_valid"] == 2 * N and r["n_rows"] == 2 * N  # two folds pooled as images
    assert r["ci_low"] < r["mean"] < r["ci_high"]


def test_ranks_follow_the_metric_direction(board):
    assert direction("deletion") == "lower" and direction("iou") == "higher"
    iou = {m: row(board, m, "iou")["rank"] for m in LEVELS}
    assert iou == {"good": 1, "grad_cam": 2, "centre": 3, "bad": 4, "random": 5}
    dele = {m: row(board, m, "deletion")["rank"] for m in LEVELS}
    assert dele == {"good": 1, "grad_cam": 2, "centre": 3, "random": 4, "bad": 5}


def test_baseline_marking(board):
    for metric in ("iou", "deletion"):
        assert bool(row(board, "good", metric)["beats_baselines"])
        assert bool(row(board, "grad_cam", metric)["beats_baselines"])
        bad = row(board, "bad", metric)
        assert not bool(bad["beats_baselines"]) and not bool(bad["beats_centre"])
    assert bool(row(board, "bad", "iou")["beats_random"])  # 0.2 > 0.1
    assert not bool(row(board, "bad", "deletion")["beats_random"])  # 0.8 worse than 0.6
    assert pd.isna(row(board, "centre", "iou")["beats_centre"])  # never compared with itself


def test_baselines_that_are_not_run_give_na():
    levels = {k: v for k, v in LEVELS.items() if k not in ("centre", "random")}
    b = leaderboard(known_results(levels=levels), n_resamples=100)
    assert b["beats_baselines"].isna().all()
    table_lines = [ln for ln in leaderboard_markdown(b).splitlines() if ln.startswith("| ")]
    assert table_lines and not any("†" in ln for ln in table_lines)


def test_paired_comparison_with_grad_cam(board):
    assert row(board, "good", "iou")["vs_grad_cam"] == "better"
    assert row(board, "good", "deletion")["vs_grad_cam"] == "better"  # lower deletion is better
    assert row(board, "bad", "deletion")["vs_grad_cam"] == "worse"
    assert row(board, "good", "deletion")["vs_grad_cam_diff"] < 0
    assert row(board, "grad_cam", "iou")["vs_grad_cam"] == ""
    fam = board[(board["metric"] == "iou") & (board["method"] != "grad_cam")]
    assert (fam["vs_grad_cam_p_holm"] >= fam["vs_grad_cam_p"]).all()
    assert (fam["vs_grad_cam_pairs"] == 2 * N).all()


def test_counts_of_undefined_excluded_and_degenerate_rows():
    r = known_results(levels={"grad_cam": (0.6, 0.3), "good": (0.8, 0.1)})
    sel = (r["method"] == "good") & (r["metric"] == "iou")
    idx = r.index[sel]
    r.loc[idx[:3], "value"] = np.nan  # undefined (empty masks)
    r.loc[idx[3:5], "excluded"] = "error: boom"
    r.loc[idx[3:5], "value"] = np.nan
    r.loc[idx[5:9], "degenerate"] = True
    b = leaderboard(r, n_resamples=100)
    g = row(b, "good", "iou")
    assert (g["n_rows"], g["n_valid"], g["n_excluded"], g["n_degenerate"]) == (2 * N, 2 * N - 5, 2, 4)
    kept = r.loc[sel & (r["excluded"] == ""), "value"]
    assert g["mean"] == pytest.approx(np.nanmean(kept))
    assert row(b, "good", "iou")["vs_grad_cam_pairs"] == 2 * N - 5


def test_reproducible_and_independent_of_other_methods(board):
    again = leaderboard(known_results(), n_resamples=200)
    pd.testing.assert_frame_equal(board, again)
    r = known_results()
    fewer = leaderboard(r[r["method"].isin(["good", "grad_cam"])], n_resamples=200)
    # a group's CI is seeded by its own key: removing other methods does not move it
    for col in ("mean", "ci_low", "ci_high"):
        assert row(fewer, "good", "iou")[col] == pytest.approx(row(board, "good", "iou")[col])


def test_overall_ranking_averages_ranks_across_datasets():
    r1 = known_results(datasets=("d1",))
    swapped = {**LEVELS, "good": LEVELS["grad_cam"], "grad_cam": LEVELS["good"]}
    r2 = known_results(datasets=("d2",), levels=swapped, seed=1)
    b = leaderboard(pd.concat([r1, r2], ignore_index=True), n_resamples=100)
    ov = overall_ranking(b).set_index("method")
    assert ov.loc["good", "rank_iou"] == 1.5 and ov.loc["grad_cam", "rank_iou"] == 1.5
    assert ov.loc["random", "rank_deletion"] == 4
    assert ov.loc["bad", "n_datasets"] == 2
    assert ov.loc["good", "beats_baselines"] == "4/4"
    assert ov.loc["bad", "beats_baselines"] == "0/4"
    assert list(ov.index[-1:]) == ["random"]  # worst mean rank last


def test_markdown_and_csv(tmp_path, board):
    paths = write_leaderboard(board, tmp_path, title="T", n_resamples=200)
    assert set(paths) == {"leaderboard.csv", "leaderboard_overall.csv", "leaderboard.md"}
    back = pd.read_csv(paths["leaderboard.csv"])
    assert len(back) == len(board) and set(LEADERBOARD_COLUMNS) <= set(back.columns)
    md = paths["leaderboard.md"].read_text()
    assert md.index("## Overall ranking") < md.index("## deletion (lower is better)") < md.index("## iou (higher is better)")
    g = row(board, "good", "iou")
    assert f"{g['mean']:.3f} [{g['ci_low']:.3f}, {g['ci_high']:.3f}] #1 [1, 1] ▲" in md
    assert "| bad | " in md and "†▼" in md


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="lacks column"):
        leaderboard(known_results().drop(columns=["excluded"]))
    r = known_results(levels={"grad_cam": (0.6, 0.3)})
    r["metric"] = "no_such_metric"
    with pytest.raises(ValueError, match="no_such_metric"):
        leaderboard(r)
    empty = leaderboard(known_results().iloc[:0])
    assert empty.empty and list(empty.columns) == LEADERBOARD_COLUMNS


def test_means_equal_up_to_float_noise_rank_as_ties():
    """Two methods whose maps give the same per-image values (e.g. a saturated deletion curve) tie,
    even when their means differ in the last bits from summation order."""
    levels = {"a": (0.5, 0.05), "b": (0.5, 0.05), "grad_cam": (0.6, 0.3), "centre": (0.3, 0.5), "random": (0.1, 0.6)}
    res = known_results(levels=levels, folds=(0,))
    rows_b = res["method"] == "b"
    res.loc[rows_b, "value"] = res.loc[res["method"] == "a", "value"].to_numpy() * (1 + 1e-15)
    board = leaderboard(res, n_resamples=50)
    for metric in ("iou", "deletion"):
        ra, rb = row(board, "a", metric)["rank"], row(board, "b", metric)["rank"]
        assert row(board, "a", metric)["mean"] != row(board, "b", metric)["mean"]
        assert ra == rb and ra == (1.5 if metric == "deletion" else 2.5)


# --- issue 16: honest statistics --------------------------------------------------------------------


def seeded_results(offsets=(0.3, 0.5, 0.7), n=40, methods=("a", "grad_cam"), metric="iou", seed=0) -> pd.DataFrame:
    """One row per (seed, image, method): seed k's model scores ``offsets[k]`` on average."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, off in enumerate(offsets):
        for j, method in enumerate(methods):
            v = off - 0.1 * j + rng.normal(0, 0.05, n)
            rows += [dict(run="t", dataset="d1", model="m", seed=k, fold=0, method=method, metric=metric,
                          image_id=f"i{i}", label="x", target=1, correct=True, value=v[i], degenerate=False,
                          excluded="") for i in range(n)]
    return pd.DataFrame(rows)


def test_retrained_models_are_resampled_as_models_not_as_more_images():
    res = seeded_results()
    b = leaderboard(res, n_resamples=2000)
    a = row(b, "a", "iou")
    pooled = bootstrap_ci(res.loc[res["method"] == "a", "value"].to_numpy(), n_resamples=2000)
    assert pooled.high - pooled.low < 0.08  # the old rule: 120 "independent" images
    assert a["mean"] == pytest.approx(pooled.mean)
    assert a["n_models"] == 3 and a["n_valid"] == 120
    assert a["between_model_sd"] == pytest.approx(0.2, abs=0.02)  # sd of the per-seed means 0.3, 0.5, 0.7
    # two levels (models, then images in each): the CI spans the seeds' spread
    assert a["ci_low"] < 0.35 and a["ci_high"] > 0.65
    assert a["ci_high"] - a["ci_low"] > 4 * (pooled.high - pooled.low)
    assert list(b.columns).index("between_model_sd") == list(b.columns).index("mean") + 1
    md = leaderboard_markdown(b)
    assert "3 trained models" in md and "images only" not in md


def test_one_model_the_markdown_says_the_ci_covers_images_only():
    b = leaderboard(seeded_results(offsets=(0.5,)), n_resamples=200)
    a = row(b, "a", "iou")
    assert a["n_models"] == 1 and math.isnan(a["between_model_sd"])
    md = leaderboard_markdown(b)
    table_end = md.index("## iou")
    assert "CIs cover images only" in md[table_end:]


def skewed_results() -> pd.DataFrame:
    """grad_cam and ``skewed``: 26 images a little better, 4 much worse (mean < 0 < Hodges-Lehmann)."""
    d = np.r_[0.02 + 0.001 * np.arange(26), -0.5 - 0.01 * np.arange(4)]
    base = 0.6 + np.random.default_rng(0).normal(0, 0.02, 30)
    rows = []
    for metric in ("iou", "deletion"):
        for method, v in (("grad_cam", base), ("skewed", base + d)):
            rows += [dict(run="t", dataset="d1", model="m", seed=0, fold=0, method=method, metric=metric,
                          image_id=f"i{i}", label="x", target=1, correct=True, value=v[i], degenerate=False,
                          excluded="") for i in range(30)]
    return pd.DataFrame(rows)


def test_better_or_worse_comes_from_the_hodges_lehmann_estimate_not_the_mean():
    b = leaderboard(skewed_results(), n_resamples=100)
    for metric, verdict in (("iou", "better"), ("deletion", "worse")):  # higher iou, higher deletion
        r = row(b, "skewed", metric)
        assert r["vs_grad_cam_diff"] < 0 < r["vs_grad_cam_hl"]
        assert r["vs_grad_cam_p_holm"] < 0.05
        assert r["vs_grad_cam"] == verdict, metric
    assert np.isnan(row(b, "grad_cam", "iou")["vs_grad_cam_hl"])


def test_every_method_is_compared_with_the_same_baselines(board):
    for metric in ("iou", "deletion"):
        centre = row(board, "centre", metric)
        assert pd.isna(centre["beats_centre"]) and bool(centre["beats_random"])  # itself: n/a
        assert pd.isna(centre["beats_baselines"])  # not "beats the baselines" for beating the other one
        rnd = row(board, "random", metric)
        assert pd.isna(rnd["beats_random"]) and not bool(rnd["beats_centre"]) and pd.isna(rnd["beats_baselines"])
    ov = overall_ranking(board).set_index("method")
    assert ov.loc["centre", "beats_centre"] == "n/a" and ov.loc["centre", "beats_random"] == "2/2"
    assert ov.loc["centre", "beats_baselines"] == "n/a"
    assert ov.loc["good", "beats_centre"] == "2/2" and ov.loc["bad", "beats_random"] == "1/2"
    assert ov.loc["good", "beats_baselines"] == "2/2"
    md = leaderboard_markdown(board)
    assert "one Holm family per dataset, model and metric" in md
    assert "one Holm family per dataset, model and metric" in " ".join(leaderboard_module.__doc__.split())


def test_ranks_have_bootstrap_intervals(board):
    for m, expected in {"good": 1, "grad_cam": 2, "centre": 3, "bad": 4, "random": 5}.items():
        r = row(board, m, "iou")
        assert (r["rank_low"], r["rank"], r["rank_high"]) == (expected, expected, expected)  # far apart
    ov = overall_ranking(board).set_index("method")
    good = ov.loc["good"]
    assert (good["overall_rank"], good["overall_rank_low"], good["overall_rank_high"]) == (1, 1, 1)
    md = leaderboard_markdown(board)
    assert re.search(r"\| good \|.*\| 1 \[1, 1\] \|", md)


def test_rank_intervals_are_paired_over_images_and_overlap_for_close_methods():
    rng = np.random.default_rng(0)
    n = 24
    img = rng.uniform(0.2, 0.8, n)  # large between-image spread, shared by every method
    levels = {"a": img, "b": img + 0.002, "close1": img - 0.3 + rng.normal(0, 0.05, n),
              "close2": img - 0.3 + rng.normal(0, 0.05, n), "grad_cam": img - 0.6}
    rows = [dict(run="t", dataset="d1", model="m", seed=0, fold=0, method=m, metric="iou", image_id=f"i{i}",
                 label="x", target=1, correct=True, value=v[i], degenerate=False, excluded="")
            for m, v in levels.items() for i in range(n)]
    b = leaderboard(pd.DataFrame(rows), n_resamples=500)
    # b is better than a on every image: paired resampling keeps that order in every resample
    assert (row(b, "b", "iou")["rank_low"], row(b, "b", "iou")["rank_high"]) == (1, 1)
    assert (row(b, "a", "iou")["rank_low"], row(b, "a", "iou")["rank_high"]) == (2, 2)
    for m in ("close1", "close2"):
        assert (row(b, m, "iou")["rank_low"], row(b, m, "iou")["rank_high"]) == (3, 4)
    assert row(b, "grad_cam", "iou")["rank_low"] == 5


def test_duplicate_rows_are_an_error():
    r = known_results()
    dup = pd.concat([r, r.iloc[[7, 7, 9]]], ignore_index=True)
    key = r.iloc[7]
    with pytest.raises(ValueError, match=rf"3 duplicate.*{key['method']}.*{key['image_id']}"):
        leaderboard(dup)


def test_oracles_are_shown_never_ranked_and_are_the_ceiling_of_the_relative_view():
    levels = {**LEVELS, "oracle": (1.0, 0.0), "oracle_grid": (0.7, 0.2), "edge": (0.35, 0.45)}
    b = leaderboard(known_results(levels=levels), n_resamples=200)
    for ref in ("oracle", "oracle_grid"):
        r = row(b, ref, "iou")
        assert math.isnan(r["rank"]) and math.isnan(r["rank_low"]) and math.isnan(r["relative"])
        assert pd.isna(r["beats_baselines"]) and r["vs_grad_cam"] == ""
        assert 0.9 < r["mean"] < 1.1 or ref == "oracle_grid"
    ranked = b[(b["metric"] == "iou") & b["rank"].notna()]
    assert sorted(ranked["rank"]) == [1, 2, 3, 4, 5, 6]  # good, grad_cam, edge, centre, bad, random
    assert set(overall_ranking(b)["method"]) == set(LEVELS) | {"edge"}
    # grad_cam (a CAM method) is read against the grid oracle, "good" (unknown: full resolution) against the
    # full one; the floor is the best model-blind map (edge, 0.35 on iou; 0.45 on deletion, lower is better)
    g, good = row(b, "grad_cam", "iou"), row(b, "good", "iou")
    assert g["ceiling"] == "oracle_grid" and good["ceiling"] == "oracle"
    floor, grid, full = (row(b, m, "iou")["mean"] for m in ("edge", "oracle_grid", "oracle"))
    assert g["relative"] == pytest.approx((g["mean"] - floor) / (grid - floor))
    assert good["relative"] == pytest.approx((good["mean"] - floor) / (full - floor))
    assert g["relative_low"] < g["relative"] < g["relative_high"]
    d = row(b, "grad_cam", "deletion")
    floor_d, grid_d = row(b, "edge", "deletion")["mean"], row(b, "oracle_grid", "deletion")["mean"]
    assert d["relative"] == pytest.approx((floor_d - d["mean"]) / (floor_d - grid_d))  # ~ (0.45-0.3)/(0.45-0.2)
    assert 0.5 < d["relative"] < 0.7


def test_scores_are_split_by_lesion_size_against_the_methods_grid():
    res = known_results()
    res["lesion_area"] = np.where(res["image_id"].str.endswith(("0", "2", "4")), 0.01, 0.2)  # 12 of 40 small
    res["cell_area"] = np.where(res["method"] == "grad_cam", 1 / 16, 1 / 4096)  # a 4 x 4 grid vs pixels
    res.loc[(res["method"] == "grad_cam") & (res["lesion_area"] < 0.05) & (res["metric"] == "iou"), "value"] = 0.0
    b = leaderboard(res, n_resamples=50)
    g = row(b, "grad_cam", "iou")
    assert (g["n_small"], g["n_large"]) == (24, 56)  # two folds x (12, 28)
    assert g["mean_small"] == 0.0 and 0.55 < g["mean_large"] < 0.65
    good = row(b, "good", "iou")
    assert good["n_small"] == 0 and good["n_large"] == 80 and math.isnan(good["mean_small"])
    assert "smaller than one cell" in leaderboard_markdown(b)
    plain = leaderboard(known_results(), n_resamples=50)  # no area columns: NaN means, zero counts
    assert (plain["n_small"] == 0).all() and plain["mean_large"].isna().all()


def test_no_relative_view_where_the_ceiling_hardly_beats_the_blind_maps():
    levels = {**LEVELS, "oracle": (0.35, 0.0), "oracle_grid": (0.34, 0.2)}  # iou: ceiling 0.35 vs centre 0.30
    b = leaderboard(known_results(levels=levels), n_resamples=100)
    assert math.isnan(row(b, "good", "iou")["relative"]) and math.isnan(row(b, "grad_cam", "iou")["relative"])
    assert np.isfinite(row(b, "grad_cam", "deletion")["relative"])  # deletion: 0.5 -> 0.2 is room enough
