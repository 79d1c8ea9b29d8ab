"""bench.report.sanity and the sanity section: the report's verdict is the metric's, figure and page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fake_run import fake_sanity

from bench.metrics.sanity import NEVER, SIMILARITIES, stage_table
from bench.report.figures import sanity_chart
from bench.report.sanity import sanity_runs, sanity_summary

STAGES = ["trained", "head", "block5", "block4", "block3", "block2", "block1"]


def _run(means, *, dataset="d1", method="m", seed=0, fold=0, B=6, noise=0.05, rng=None):
    rng = rng or np.random.default_rng(0)
    sim = np.vstack([np.ones(B), np.asarray(means, float)[:, None] + rng.normal(0, noise, (len(means), B))])
    t = stage_table({s: sim for s in SIMILARITIES}, STAGES[: len(means) + 1], n_resamples=200, seed=seed)
    return t.assign(dataset=dataset, model="ff_vgg19", seed=seed, fold=fold, method=method)


def test_report_verdict_is_the_metric_verdict_on_every_test():
    rng = np.random.default_rng(1)
    tables = []
    for i in range(40):  # random curves: some pass, some fail, some change late or never
        means = np.sort(rng.uniform(-0.2, 1.0, 6))[::-1] if i % 3 else rng.uniform(0.3, 0.9, 6)
        tables.append(_run(means, dataset=f"d{i % 4}", method=f"m{i // 4}", seed=i % 2, rng=rng,
                           noise=rng.uniform(0.0, 0.3)))
    runs = sanity_runs(pd.concat(tables, ignore_index=True)).set_index(["dataset", "method", "seed"])
    for t in tables:
        r = runs.loc[(t["dataset"].iloc[0], t["method"].iloc[0], t["seed"].iloc[0])]
        assert (r["passed"], r["first_changed_stage"]) == (t.attrs["passed"], t.attrs["first_changed_stage"])
        assert r["first_normalised"] == t.loc[1, "normalised"]
    assert 0 < runs["passed"].sum() < len(runs)  # both verdicts occur


def test_a_map_that_changes_only_near_the_input_fails_though_its_last_stage_changed():
    """Issue 15: the old report read the last stage only, where every map has changed."""
    gbp = _run([0.99, 0.99, 0.91, 0.81, 0.66, 0.28], noise=0.01)
    cam = _run([-0.01, 0.0, 0.02, 0.01, 0.0, 0.02], method="grad_cam", noise=0.01)
    assert gbp["changed"].iloc[-1]
    summary = sanity_summary(pd.concat([gbp, cam], ignore_index=True)).set_index("method")
    assert summary.loc["m", "overall"] == "fail" and summary.loc["grad_cam", "overall"] == "pass"
    runs = sanity_runs(pd.concat([gbp, cam])).set_index("method")
    assert runs.loc["m", "first_changed_stage"] in ("block2", "block1")
    assert runs.loc["grad_cam", "first_changed_stage"] == "head"


def test_aggregation_over_runs_and_datasets():
    passing, failing = [0.02] * 4, [0.9, 0.8, 0.7, 0.1]
    tables = [
        _run(passing, dataset="a"), _run(passing, dataset="a", fold=1),  # a: 2/2 runs
        _run(passing, dataset="b"), _run(failing, dataset="b", fold=1),  # b: 1/2 runs: the dataset fails
        _run(passing, dataset="c"),                                        # c: 1/1
        _run(failing, dataset="a", method="never_ok"), _run(failing, dataset="b", method="never_ok"),
    ]
    s = sanity_summary(pd.concat(tables, ignore_index=True)).set_index("method")
    assert s.loc["m", ["a", "b", "c"]].tolist() == ["pass", "1/2 runs pass", "pass"]
    assert s.loc["m", "overall"] == "passes on 2 of 3 datasets"
    assert (s.loc["m", "datasets_passed"], s.loc["m", "datasets"]) == (2, 3)
    assert s.loc["never_ok", "overall"] == "fail" and s.loc["never_ok", "c"] == "-"


def test_a_table_without_the_changed_flags_is_refused():
    old = fake_sanity().drop(columns=["changed", "normalised"])
    with pytest.raises(ValueError, match="changed"):
        sanity_summary(old)


def test_fake_run_verdicts():
    s = sanity_summary(fake_sanity()).set_index("method")
    assert s.loc["grad_cam", "overall"] == "pass"
    assert s.loc["guided_backprop", "overall"] == "fail"
    assert s.loc["score_cam", "overall"] == "passes on 1 of 2 datasets"
    runs = sanity_runs(fake_sanity())
    assert set(runs["first_stage"]) == {"head"} and NEVER not in set(runs["first_changed_stage"])


def test_sanity_chart_draws_normalised_curves_bands_and_the_bar():
    sanity = fake_sanity()
    fig = sanity_chart(sanity, "ff_vgg19")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == sanity["dataset"].nunique()
    ax = visible[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["trained", "head", "block5", "block4", "block3"]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"grad_cam", "guided_backprop", "score_cam", "bar (0.5)"}
    assert set(lines["bar (0.5)"].get_ydata()) == {0.5}
    cam = sanity[(sanity["method"] == "grad_cam") & (sanity["dataset"] == sorted(sanity["dataset"].unique())[0])]
    np.testing.assert_allclose(lines["grad_cam"].get_ydata(), cam.sort_values("stage_index")["normalised"])
    assert len(ax.collections) == 3  # one CI band per method
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["grad_cam", "guided_backprop", "score_cam", "bar (0.5)"]
    assert sanity_chart(sanity, "other_model") is None


def test_scorecard_sanity_section(full_run):
    run, paths = full_run
    html = paths["scorecard.html"].read_text(encoding="utf-8")
    section = html[html.index('id="sanity"'):]
    section = section[: section.index('id="classification"')]
    for text in ("Question:", "normalised similarity", "floor", "upper end", "95% bootstrap",
                 "first stage that changes the map", "normalised similarity after head",
                 "passes on 1 of 2 datasets", "<img"):
        assert text in section, text
    assert (run / "figures" / "sanity_ff_vgg19.png").is_file()
    summary = pd.read_csv(run / "sanity_summary.csv")
    assert {"model", "method", "overall", "datasets_passed", "datasets"} <= set(summary.columns)
