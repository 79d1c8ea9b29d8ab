"""bench.report.leaderboard on a hand-built results table whose ordering is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.report.leaderboard import (
    LEADERBOARD_COLUMNS, leaderboard, leaderboard_markdown, overall_ranking, write_leaderboard,
)
from bench.report.reference import direction

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
                            image_id=f"i{i}", label="x", target=1, correct=True,
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
    assert f"{g['mean']:.3f} [{g['ci_low']:.3f}, {g['ci_high']:.3f}] #1 ▲" in md
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
