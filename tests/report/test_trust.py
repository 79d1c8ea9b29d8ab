"""Metric agreement (Kendall's tau between the metrics' method rankings) and the trust section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.report.stats import rank_agreement
from bench.report.trust import (AGREEMENT_FLAG, TrustEntry, agreement_matrix, isolated_metrics, metric_agreement,
                                section)


def test_identical_rankings_give_one_and_reversed_minus_one():
    a = np.array([0.1, 0.4, 0.3, 0.9, 0.5])
    tau, n = rank_agreement(np.stack([a, 2 * a + 1, -a], axis=1), [True, True, True])
    assert tau[0, 1] == pytest.approx(1.0) and tau[0, 2] == pytest.approx(-1.0) and tau[1, 2] == pytest.approx(-1.0)
    assert np.diag(tau) == pytest.approx([1, 1, 1])
    assert (n == 5).all()


def test_direction_is_handled():
    """A 'lower is better' metric that puts the methods in the same order of quality agrees (+1)."""
    quality = np.array([0.2, 0.5, 0.9, 0.7])
    higher = quality  # e.g. insertion
    lower = 1 - quality  # e.g. deletion: the best method has the lowest value
    tau, _ = rank_agreement(np.stack([higher, lower], axis=1), [True, False])
    assert tau[0, 1] == pytest.approx(1.0)
    tau, _ = rank_agreement(np.stack([higher, lower], axis=1), [True, True])
    assert tau[0, 1] == pytest.approx(-1.0)


def test_known_tau_nan_and_too_few_methods():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 2.0, 4.0])  # one discordant pair of six: tau = (5 - 1) / 6
    tau, _ = rank_agreement(np.stack([x, y], 1), [True, True])
    assert tau[0, 1] == pytest.approx(4 / 6)
    z = np.array([1.0, np.nan, 2.0, np.nan])  # two methods in common with x
    c = np.full(4, 0.5)  # constant: no ranking
    tau, n = rank_agreement(np.stack([x, z, c], 1), [True, True, True])
    assert n[0, 1] == 2 and np.isnan(tau[0, 1]) and np.isnan(tau[0, 2]) and np.isnan(tau[2, 2])
    with pytest.raises(ValueError, match="one entry per column|entries"):
        rank_agreement(np.zeros((3, 2)), [True])


def _board(means: dict[str, dict[str, list[float]]], methods: list[str]) -> pd.DataFrame:
    """A minimal leaderboard: {dataset: {metric: mean per method}}, ranks computed by direction."""
    from bench.report.reference import direction

    rows = []
    for d, per in means.items():
        for metric, vals in per.items():
            key = np.asarray(vals) * (1 if direction(metric) == "lower" else -1)
            ranks = pd.Series(key).rank().to_numpy()
            rows += [dict(dataset=d, model="m", method=me, metric=metric, mean=v, rank=r)
                     for me, v, r in zip(methods, vals, ranks)]
    return pd.DataFrame(rows)


def test_metric_agreement_per_dataset_and_overall_and_isolated_metric():
    methods = ["a", "b", "c", "d", "oracle"]
    q1, q2 = [0.9, 0.6, 0.4, 0.1, 1.0], [0.8, 0.7, 0.3, 0.2, 1.0]
    board = _board({
        "d1": {"pointing_game": q1, "deletion": [1 - v for v in q1], "auprc": [0.1, 0.4, 0.6, 0.9, 1.0]},
        "d2": {"pointing_game": q2, "deletion": [1 - v for v in q2], "auprc": [0.2, 0.3, 0.7, 0.8, 1.0]},
    }, methods)
    ag = metric_agreement(board)
    assert set(ag["scope"]) == {"d1", "d2", "overall"}
    m = agreement_matrix(ag, "m", "d1")
    assert m.loc["pointing_game", "deletion"] == pytest.approx(1.0)  # directions handled
    assert m.loc["pointing_game", "auprc"] == pytest.approx(-1.0)
    assert (ag["n_methods"] == 4).all()  # the oracle is never ranked
    o = agreement_matrix(ag, "m", "overall")
    assert o.loc["deletion", "pointing_game"] == pytest.approx(1.0)
    flags = isolated_metrics(ag)
    assert set(flags["metric"]) == {"auprc"} and set(flags["scope"]) == {"d1", "d2", "overall"}
    assert (flags["max_tau"] < AGREEMENT_FLAG).all()


def test_section_lists_each_entry_with_its_sentence():
    html = section([TrustEntry("First table", "High is good; low is bad.", "<table>x</table>"),
                    TrustEntry("Second", "Near 1 is good.", "<p>y</p>")])
    assert html.index("First table") < html.index("Second")
    assert "High is good; low is bad." in html and "<table>x</table>" in html
