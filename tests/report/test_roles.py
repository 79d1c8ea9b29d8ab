"""The reference method, the baselines and the model-blind maps are options, not constants: a user's method can be
the reference (issue 17). Checked on hand-built tables whose ordering is known, and on a fake run folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fake_run import RESAMPLES, make_fake_run

from bench.report.leaderboard import (
    LEADERBOARD_COLUMNS, leaderboard, leaderboard_columns, leaderboard_markdown, overall_ranking, write_leaderboard,
)
from bench.report.reference import Roles, roles_of
from bench.report.scorecard import build_report

# method -> iou level (higher is better); per image the same noise for every method, so pairs are informative
LEVELS = {"mine": 0.80, "grad_cam": 0.60, "centre": 0.30, "bad": 0.20, "random": 0.10, "oracle": 1.0,
          "oracle_grid": 1.0}
N = 40


def results(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 0.02, N)
    rows = [dict(run="t", dataset="d1", model="m", seed=0, fold=0, method=method, metric="iou", image_id=f"i{i}",
                 label="x", target=1, correct=True, value=level + noise[i] + rng.normal(0, 0.01), degenerate=False,
                 excluded="")
            for method, level in LEVELS.items() for i in range(N)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def boards():
    res = results()
    default = leaderboard(res, n_resamples=200)
    mine = leaderboard(res, n_resamples=200, reference="mine", baselines=("bad",), model_blind=("bad", "random"))
    return default, mine


def row(board, method):
    r = board[board["method"] == method]
    assert len(r) == 1
    return r.iloc[0]


def test_the_defaults_are_todays_columns(boards):
    default, _ = boards
    assert list(default.columns) == LEADERBOARD_COLUMNS == leaderboard_columns(Roles())
    assert {"vs_grad_cam", "vs_grad_cam_p_holm", "beats_centre", "beats_random"} <= set(default.columns)
    assert roles_of(default) == Roles("grad_cam", ("centre", "random"), ("centre", "random", "edge"))


def test_a_users_method_is_the_reference_and_the_columns_follow(boards):
    default, mine = boards
    assert list(mine.columns) == leaderboard_columns(Roles("mine", ("bad",), ("bad", "random")))
    assert "vs_grad_cam" not in mine.columns and "beats_centre" not in mine.columns
    assert row(mine, "grad_cam")["vs_mine"] == "worse" and row(mine, "mine")["vs_mine"] == ""
    assert row(mine, "random")["vs_mine"] == "worse" and row(mine, "random")["vs_mine_pairs"] == N
    # the same pair seen from the other side: the difference flips sign, the raw p-value is the same
    g, m = row(mine, "grad_cam"), row(default, "mine")
    assert g["vs_mine_diff"] == pytest.approx(-m["vs_grad_cam_diff"])
    assert g["vs_mine_hl"] == pytest.approx(-m["vs_grad_cam_hl"])
    assert g["vs_mine_p"] == pytest.approx(m["vs_grad_cam_p"])
    # baselines: only `bad`; centre (0.30) beats it, random (0.10) does not
    assert bool(row(mine, "centre")["beats_bad"]) and not bool(row(mine, "random")["beats_bad"])
    assert bool(row(mine, "centre")["beats_baselines"]) and pd.isna(row(mine, "bad")["beats_baselines"])
    # the floor of the relative view is the best of the model-blind maps given: bad (0.20), not centre (0.30)
    assert row(default, "centre")["relative"] == pytest.approx(0.0, abs=1e-12)
    assert row(mine, "bad")["relative"] == pytest.approx(0.0, abs=1e-12)
    assert row(mine, "centre")["relative"] == pytest.approx((0.30 - 0.20) / (1.0 - 0.20), abs=0.01)


def test_overall_ranking_markdown_and_csv_name_the_chosen_roles(boards, tmp_path):
    _, mine = boards
    ov = overall_ranking(mine).set_index("method")
    assert {"beats_bad", "beats_baselines"} <= set(ov.columns) and "beats_centre" not in ov.columns
    assert ov.loc["bad", "beats_bad"] == "n/a" and ov.loc["centre", "beats_bad"] == "1/1"
    md = leaderboard_markdown(mine, n_resamples=200)
    assert "significantly better/worse than `mine`" in md and "† = does not beat `bad` beyond the CI" in md
    assert "against `mine` in that cell" in md and "`grad_cam`" not in md.split("## Overall")[0]
    write_leaderboard(mine, tmp_path, n_resamples=200)
    back = pd.read_csv(tmp_path / "leaderboard.csv")
    assert roles_of(back) == Roles("mine", ("bad",))  # read back from the columns
    assert overall_ranking(back).columns.tolist() == overall_ranking(mine).columns.tolist()


def test_roles_are_checked():
    with pytest.raises(ValueError, match="reference method must be a method name"):
        Roles("")
    with pytest.raises(ValueError, match="baselines must be distinct"):
        Roles("grad_cam", ("centre", "centre"))


def test_the_report_takes_the_runs_roles_and_the_command_line_overrides_them(tmp_path):
    run = make_fake_run(tmp_path / "run", curves=False, sanity=False, gallery=False)
    info = json.loads((run / "run.json").read_text())
    info["suite"]["report"] = {"reference": "score_cam", "baselines": ["centre"], "model_blind": ["centre"]}
    (run / "run.json").write_text(json.dumps(info))
    build_report(run, n_resamples=RESAMPLES)
    board = pd.read_csv(run / "leaderboard.csv")
    assert "vs_score_cam" in board.columns and "beats_random" not in board.columns
    page = (run / "scorecard.html").read_text()
    assert "significantly better / worse than <code>score_cam</code>" in page
    assert "best model-blind map (centre: 0 %)" in page
    build_report(run, n_resamples=RESAMPLES, reference="grad_cam", baselines=("centre", "random"))
    board = pd.read_csv(run / "leaderboard.csv")
    assert {"vs_grad_cam", "beats_random"} <= set(board.columns) and "vs_score_cam" not in board.columns
