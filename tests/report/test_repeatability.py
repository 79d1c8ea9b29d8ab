"""Repeatability across retrained models: Kendall's W, its permutation test, and the map-pair table."""

import numpy as np
import pandas as pd
import pytest

from bench.report.repeatability import concordance_test, kendalls_w, map_repeatability, ranking_repeatability
from bench.sweep.repeatability import map_pairs


def test_identical_rankings_have_w_one_and_reversed_pair_zero():
    assert kendalls_w([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]]) == pytest.approx(1.0)
    assert kendalls_w([[1, 2, 3, 4], [4, 3, 2, 1]]) == pytest.approx(0.0)


def test_w_matches_a_hand_computed_case():
    # 3 judges, 3 objects: rank sums 4, 5, 9 -> mean 6, S = 4 + 1 + 9 = 14, W = 12 * 14 / (9 * 24) = 0.7778
    assert kendalls_w([[1, 2, 3], [2, 1, 3], [1, 2, 3]]) == pytest.approx(12 * 14 / (9 * 24))


def test_ties_are_corrected_and_undefined_cases_are_nan():
    # judge 2 ties objects 1 and 2: T = 2^3 - 2 = 6; rank sums 2.5, 3.5, 6 -> S = 1.5^2 + 0.5^2 + 2^2 = 6.5
    assert kendalls_w([[1, 2, 3], [1.5, 1.5, 3]]) == pytest.approx(12 * 6.5 / (4 * 24 - 2 * 6))
    assert np.isnan(kendalls_w([[1, 2, 3]]))
    assert np.isnan(kendalls_w([[1.5, 1.5], [1.5, 1.5]]))


def test_concordance_test_p_value_separates_agreement_from_chance():
    rng = np.random.default_rng(0)
    base = np.arange(12, dtype=float)
    agree = np.stack([base + rng.normal(0, 0.1, 12) for _ in range(3)])
    w, p = concordance_test(agree, n_permutations=200)
    assert w > 0.95 and p == pytest.approx(1 / 201)
    # direction: "lower is better" reverses every seed's ranking, which leaves their agreement unchanged
    assert concordance_test(agree, False, n_permutations=10)[0] == pytest.approx(w)
    w, p = concordance_test(rng.normal(size=(3, 12)), n_permutations=200)
    assert w < 0.7 and p > 0.05


def _results(values: dict[int, list[float]], metric="pointing_game") -> pd.DataFrame:
    rows = []
    for seed, means in values.items():
        for m, v in enumerate(means):
            for img in range(2):
                rows.append({"dataset": "d", "seed": seed, "method": f"m{m}", "metric": metric, "value": v,
                             "excluded": False, "image_id": str(img)})
    return pd.DataFrame(rows)


def test_ranking_repeatability_per_dataset_and_overall():
    table = ranking_repeatability(_results({0: [0.9, 0.5, 0.1], 1: [0.8, 0.4, 0.2], 2: [0.7, 0.6, 0.3]}),
                                  {"pointing_game": "higher"}, n_permutations=50)
    assert list(table["dataset"]) == ["d", "all"]
    assert table["w"].tolist() == pytest.approx([1.0, 1.0])
    assert set(table["n_seeds"]) == {3} and set(table["n_methods"]) == {3}
    assert ranking_repeatability(_results({0: [0.9, 0.5]}), {"pointing_game": "higher"}).empty


def test_a_map_that_ignores_the_weights_is_perfectly_repeatable_and_a_seed_dependent_one_is_not():
    rng = np.random.default_rng(1)
    ids = [f"i{k}" for k in range(6)]
    images = rng.random((6, 16, 16))
    same = map_pairs({0: (ids, images), 1: (ids, images.copy())})  # a map of the image only (edge detector)
    assert same["spearman_same"].to_numpy() == pytest.approx(1.0)
    assert (same["spearman_different"] < 0.5).all()
    noise = map_pairs({0: (ids, rng.random((6, 16, 16))), 1: (ids, rng.random((6, 16, 16)))})
    table = map_repeatability(pd.concat([same.assign(method="image"), noise.assign(method="noise")]), n_resamples=200)
    by = table.set_index("method")
    assert bool(by.loc["image", "repeatable"]) and not bool(by.loc["noise", "repeatable"])
    assert by.loc["image", "spearman_same"] == pytest.approx(1.0) and by.loc["image", "n"] == 6


def test_map_pairs_aligns_ids_and_skips_excluded_images():
    ids = ["a", "b", "c"]
    m = np.arange(3 * 4 * 4, dtype=float).reshape(3, 4, 4) % 7
    other = m[[2, 0, 1]].copy()  # the same maps, stored in another order
    other[0] = np.nan  # image c excluded by seed 1
    pairs = map_pairs({0: (ids, m), 1: (["c", "a", "b"], other)})
    assert pairs["image_id"].tolist() == ["a", "b"]
    assert pairs["spearman_same"].to_numpy() == pytest.approx(1.0)


def test_scorecard_entries_appear_only_with_two_seeds(tmp_path):
    from bench.report.repeatability import repeatability_entries

    results = _results({0: [0.9, 0.5, 0.1], 1: [0.8, 0.4, 0.2]})
    ids = [f"i{k}" for k in range(4)]
    maps = np.random.default_rng(2).random((4, 8, 8))
    pairs = map_pairs({0: (ids, maps), 1: (ids, maps)}).assign(method="m0")
    written: dict = {}
    entries = repeatability_entries(results, pairs, tmp_path, written, n_resamples=100)
    assert [e.title for e in entries] == ["Does the ranking survive retraining?", "Do the maps survive retraining?"]
    assert "W" in entries[0].body and "m0" in entries[1].body
    assert pd.read_csv(written["ranking_repeatability.csv"])["w"].tolist() == pytest.approx([1.0, 1.0])
    assert bool(pd.read_csv(written["map_repeatability.csv"])["repeatable"].iloc[0])
    assert repeatability_entries(_results({0: [0.9, 0.5, 0.1]}), None, tmp_path, {}) == []
    assert not (tmp_path / "ranking_repeatability.csv").exists()  # a stale table of an earlier report is removed
