import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench.sweep import RESULT_COLUMNS, load_results, load_suite, run_suite
from bench.sweep.cache import RunLocked, run_lock

# torch's thread count changes float results at the bit level; pin it so in-process and subprocess
# runs compute alike whatever earlier tests did to the process's thread setting
THREADS = "train.threads=2"

pytestmark = pytest.mark.slow


def _ran(out):
    return json.loads((out / "run.json").read_text())["stats"]["ran"]


def test_smoke_writes_every_file_with_the_documented_columns(smoke_run):
    for name in ("results.parquet", "classification.parquet", "curves.parquet", "sanity.parquet", "run.json",
                 "leaderboard.csv", "leaderboard.md", "classification.md", "scorecard.html"):
        assert (smoke_run / name).is_file(), name
    res = load_results(smoke_run)
    assert list(res.columns) == RESULT_COLUMNS
    suite = load_suite("smoke")
    assert set(res["dataset"]) == set(suite.datasets) and set(res["method"]) == {*suite.methods, *suite.references}
    assert set(res["metric"]) == set(suite.metrics)
    # one row per image x method x metric, no duplicates
    assert not res.duplicated(["dataset", "model", "seed", "fold", "method", "metric", "image_id"]).any()
    per = res.groupby(["dataset", "method", "metric"]).size()
    assert per.nunique() == 1 or per.min() > 0
    cls = pd.read_parquet(smoke_run / "classification.parquet")
    assert len(cls) == 2 and cls["accuracy"].between(0, 1).all()
    info = json.loads((smoke_run / "run.json").read_text())
    assert info["versions"]["torch"] and info["suite"]["name"] == "smoke" and info["seeds"] == [0]
    assert sorted(p.name for p in (smoke_run / "gallery").iterdir()) == sorted(f"{d}.npz" for d in suite.datasets)
    # ROAD (both orders, with their curves) and the metric agreement matrix in the scorecard
    assert {"road_morf", "road_lerf"} <= set(res["metric"])
    road = res[res["metric"].isin(["road_morf", "road_lerf"]) & (res["excluded"] == "")]
    assert road["value"].between(0, 1).all() and len(road) > 0
    curves = pd.read_parquet(smoke_run / "curves.parquet")
    assert {"road_morf", "road_lerf"} <= set(curves["curve"])
    assert sorted(curves.loc[curves["curve"] == "road_morf", "fraction"].unique().round(6)) == [0, 0.2, 0.4, 0.6, 0.8]
    agreement = pd.read_csv(smoke_run / "metric_agreement.csv")
    assert set(agreement["scope"]) == {*suite.datasets, "overall"}
    assert set(agreement["metric_a"]) == set(suite.metrics) and agreement["tau"].dropna().between(-1, 1).all()
    card = (smoke_run / "scorecard.html").read_text()
    assert "How far to trust this ranking" in card and "Do the metrics agree on the ranking?" in card


def test_second_run_does_no_work_and_gives_the_same_table(smoke_copy, data_root):
    before = load_results(smoke_copy)
    first = json.loads((smoke_copy / "run.json").read_text())["stats"]["compute_seconds_by_stage"]
    assert set(first) == {"train", "explain", "score", "sanity", "verify", "class_sensitivity"}
    assert min(first.values()) > 0
    after = run_suite("smoke", out=smoke_copy, overrides=[f"data.root='{data_root}'", THREADS], progress=False)
    assert _ran(smoke_copy) == {}
    pd.testing.assert_frame_equal(before, after)
    # nothing ran and nothing changed: the tables and the report are not rebuilt either
    stats = json.loads((smoke_copy / "run.json").read_text())["stats"]
    assert stats["outputs_rebuilt"] is False
    assert stats["compute_seconds_by_stage"] == first  # what the results cost, not what the re-run did
    info = json.loads((smoke_copy / "run.json").read_text())
    computing = info["computing_run"]  # the run that computed the results, kept through the re-run
    assert computing["ran"] and computing["seconds_total"] > info["seconds_total"]
    card = smoke_copy / "scorecard.html"
    card.unlink()  # a report file gone: the next run rebuilds the outputs
    run_suite("smoke", out=smoke_copy, overrides=[f"data.root='{data_root}'", THREADS], progress=False)
    assert card.is_file() and json.loads((smoke_copy / "run.json").read_text())["stats"]["outputs_rebuilt"] is True
    assert "compute time of these results" in card.read_text()
    assert _ran(smoke_copy) == {}


def test_changing_one_method_option_recomputes_only_that_method(smoke_copy, data_root):
    before = load_results(smoke_copy)
    run_suite("smoke", out=smoke_copy, overrides=[f"data.root='{data_root}'", THREADS, "explain.options={random={seed=7}}"],
              progress=False)
    suite = load_suite("smoke")
    from bench.sweep.suite import score_jobs

    n_score = len(score_jobs(suite.metrics))  # deletion/insertion share one job, and so do ROAD's two orders
    cs = suite.class_sensitivity  # random's class sensitivity jobs use its options too; the verify jobs do not
    n_cs = len(cs.datasets or suite.datasets) if cs.composites else 0
    assert _ran(smoke_copy) == {"explain": len(suite.datasets), "score": len(suite.datasets) * n_score,
                                **({"class_sensitivity": n_cs} if n_cs else {})}
    assert json.loads((smoke_copy / "run.json").read_text())["stats"]["outputs_rebuilt"] is True
    after = load_results(smoke_copy)
    same = before["method"] != "random"
    pd.testing.assert_frame_equal(before[same].reset_index(drop=True), after[after["method"] != "random"].reset_index(drop=True))
    assert not before[~same]["value"].equals(after[after["method"] == "random"]["value"].reset_index(drop=True))


def test_killed_run_resumes_to_the_same_results(smoke_run, tmp_path, data_root):
    out = tmp_path / "killed"
    code = ("import sys; from bench.sweep import run_suite; "
            f"run_suite('smoke', out={str(out)!r}, overrides=[\"data.root='{data_root}'\", {THREADS!r}], progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill -9 once a few jobs are stored, mid-sweep
        if len(list((out / "cache").glob("*/*/done.json"))) >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.parquet").exists()
    resumed = run_suite("smoke", out=out, overrides=[f"data.root='{data_root}'", THREADS], progress=False)
    pd.testing.assert_frame_equal(resumed, load_results(smoke_run))


def test_two_runs_on_one_folder_do_not_both_write(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunLocked, match="another bench run is using"):
            run_suite("smoke", out=tmp_path, progress=False)


# ---------------------------------------------------------------------------------------------
# issue 16: no hidden broken maps, no stale results, no silent typos


class _TinyNet:
    """A two-class conv net on (B, 3, 8, 8) images."""

    def __new__(cls):
        import torch

        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()


def _broken_maps():
    """Four maps of 8 x 8 images: fine, one NaN pixel, one +inf pixel, all NaN (an excluded image)."""
    import numpy as np

    rng = np.random.default_rng(0)
    maps = rng.random((4, 8, 8)).astype(np.float32)
    maps[1, 2, 3] = np.nan
    maps[2, 0, 0] = np.inf
    maps[3] = np.nan
    return maps


def _tiny_data():
    from types import SimpleNamespace

    import torch

    torch.manual_seed(1)
    masks = torch.zeros(4, 8, 8, dtype=torch.bool)
    masks[:, 2:5, 2:6] = True
    cue = torch.zeros(4, 8, 8, dtype=torch.bool)
    cue[:, 5:8, 5:8] = True
    return SimpleNamespace(images=torch.rand(4, 3, 8, 8), masks=masks, confounder_masks=cue)


def test_scoring_never_hides_a_broken_map():
    import numpy as np

    from bench.sweep import scoring

    data, maps = _tiny_data(), _broken_maps()
    excluded = np.array([False, False, False, True])
    for metric, options in (("pointing_game", {"tolerance": 0.0}), ("iou", {"threshold": "otsu"})):
        rows, curves = scoring.score(metric, options, maps=maps, data=data, idx=[0, 1, 2, 3], targets=[0, 1, 0, 1],
                                     model=None, excluded=excluded)
        values, degenerate = rows[metric]
        assert curves is None
        assert degenerate.tolist() == [False, True, True, False]  # partly non-finite maps are degenerate
        assert values[1] == values[2] == 0.0 and np.isnan(values[3])  # the worst value; excluded: not scored
    model = _TinyNet()
    rows, curves = scoring.score("deletion_insertion", {"steps": 4, "batch_size": 8}, maps=maps, data=data,
                                 idx=[0, 1, 2, 3], targets=[0, 1, 0, 1], model=model, excluded=excluded)
    assert set(rows) == {"deletion", "insertion"}
    for name, worst in (("deletion", 1.0), ("insertion", 0.0)):
        values, degenerate = rows[name]
        assert degenerate.tolist() == [False, True, True, False]
        assert values[1] == values[2] == worst and np.isnan(values[3])
    # the mean curves average the one image with a valid map
    from bench.metrics import deletion_insertion

    alone = deletion_insertion(model, data.images[:1], maps[:1], [0], steps=4)
    assert set(curves["curve"]) == {"deletion", "insertion"} and (curves["n"] == 1).all()
    for name in ("deletion", "insertion"):
        got = curves[curves["curve"] == name].sort_values("step")["value"].to_numpy()
        np.testing.assert_allclose(got, alone[f"{name}_curve"][0], rtol=1e-6)


def test_scoring_returns_only_the_requested_outputs():
    from bench.sweep import scoring

    data, maps = _tiny_data(), _broken_maps()
    rows, curves = scoring.score("deletion_insertion", {"steps": 2}, maps=maps, data=data, idx=[0, 1, 2, 3],
                                 targets=[0, 0, 0, 0], model=_TinyNet(), outputs=["insertion"])
    assert set(rows) == {"insertion"} and set(curves["curve"]) == {"insertion"}


def test_cue_scores_flag_partly_broken_maps_as_degenerate():
    from bench.sweep.shortcuts import cue_scores

    data, maps = _tiny_data(), _broken_maps()
    values, degenerate = cue_scores("pointing_game", {"tolerance": 0.0}, maps[:3], data, [0, 1, 2])["pointing_game"]
    assert degenerate.tolist() == [False, True, True] and values[1] == values[2] == 0.0


def test_an_unknown_method_option_is_an_error_at_load_time():
    from bench.config import ConfigError

    with pytest.raises(ConfigError) as err:
        load_suite("smoke", ["explain.options.rise.n_mask=100"])
    msg = str(err.value)
    assert "smoke.toml" in msg and "'rise'" in msg and "n_mask" in msg and "n_masks" in msg and "grid" in msg
    with pytest.raises(ConfigError, match=r"smoke\.toml.*grad_camm"):
        load_suite("smoke", ["explain.options.grad_camm.seed=1"])
    with pytest.raises(ConfigError, match=r"'grad_cam'.*seed.*none"):  # grad_cam takes no option at all
        load_suite("smoke", ["explain.options.grad_cam.seed=1"])
    suite = load_suite("smoke", ["explain.options.rise.n_masks=100", "explain.options.random.seed=3"])
    assert suite.explain.options["rise"] == {"n_masks": 100}


def test_a_metric_option_the_metric_does_not_take_is_an_error_at_load_time(monkeypatch):
    from bench.config import ConfigError
    from bench.sweep import suite as suite_module

    real = suite_module.metric_options

    def typo(suite, metric):
        return {"tolerence": 1.0} if metric == "pointing_game" else real(suite, metric)

    assert set(real(load_suite("smoke"), "deletion_insertion")) == {"steps", "batch_size"}
    monkeypatch.setattr(suite_module, "metric_options", typo)
    with pytest.raises(ConfigError) as err:
        load_suite("smoke")
    msg = str(err.value)
    assert "smoke.toml" in msg and "'pointing_game'" in msg and "tolerence" in msg and "tolerance" in msg


def test_the_stage_closures_hold_the_code_that_makes_their_results():
    from bench.sweep.sources import stage_modules

    score, explain, train = stage_modules("score"), stage_modules("explain"), stage_modules("train")
    assert {"bench.sweep.scoring", "bench.sweep.tables", "bench.metrics.localisation",
            "bench.metrics.faithfulness"} <= set(score)
    assert {"bench.data.selection", "bench.attribution.cam", "bench.attribution.postprocess"} <= set(explain)
    assert {"bench.metrics.classification", "bench.train.loop", "bench.models.ff_vgg19"} <= set(train)
    assert "bench.sweep.shortcuts" in set(score) & set(explain) & set(train)  # the registered extensions
    assert not any(m.startswith("bench.attribution") for m in train)  # an edit to a method never retrains
    every = {m for s in ("train", "explain", "score", "sanity", "report") for m in stage_modules(s)}
    assert "bench" not in every and not any(m.endswith(".cli") for m in every)


def _tree(root, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_code_version_follows_the_modules_a_stage_imports(tmp_path, monkeypatch):
    from bench.sweep import sources

    pkg = tmp_path / "pkg"
    _tree(pkg, {
        "__init__.py": "",
        "sweep/__init__.py": "",
        "sweep/stages/__init__.py": "",
        "sweep/stages/score.py": "from bench.sweep.scoring import score\n\ndef f():\n    import bench.metrics.loc\n",
        "sweep/scoring.py": "from bench.metrics import faith\nfrom bench.metrics import cli\n",
        "sweep/ext.py": "from ..data.thing import X\n",  # a registered extension's module, relative import
        "metrics/__init__.py": "",
        "metrics/loc.py": "A = 1\n",
        "metrics/faith.py": "B = 1\n",
        "metrics/cli.py": "C = 1\n",
        "metrics/unused.py": "D = 1\n",
        "data/__init__.py": "",
        "data/thing.py": "X = 1\n",
    })
    monkeypatch.setattr(sources, "PACKAGE_ROOT", pkg)
    monkeypatch.setattr(sources, "STAGE_ENTRIES", {"score": ("bench.sweep.stages.score",)})
    monkeypatch.setattr(sources, "extension_modules", lambda: ["bench.sweep.ext"])

    def version():
        sources.forget()
        return sources.code_version("score")

    assert sources.stage_modules("score") == ["bench.data.thing", "bench.metrics.faith", "bench.metrics.loc",
                                              "bench.sweep.ext", "bench.sweep.scoring", "bench.sweep.stages.score"]
    v0 = version()
    for unrelated in ("__init__.py", "metrics/cli.py", "metrics/unused.py", "metrics/__init__.py"):
        (pkg / unrelated).write_text("# edited\n")
        assert version() == v0, unrelated
    for rel in ("metrics/loc.py", "metrics/faith.py", "sweep/scoring.py", "sweep/ext.py", "data/thing.py"):
        (pkg / rel).write_text((pkg / rel).read_text() + "# edited\n")
        v1 = version()
        assert v1 != v0, rel
        v0 = v1


def test_entries_registered_from_outside_the_package_key_only_their_jobs_by_version(monkeypatch):
    from bench.attribution import METHODS
    from bench.metrics import METRICS
    from bench.sweep import sources

    def plugin_method(model, images, targets, *, layer=None):
        return images.mean(1)

    plugin_method.__module__ = "my_plugin.methods"
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    stages = ("train", "explain", "score", "sanity")
    before = {s: sources.code_version(s) for s in stages}
    METHODS.register("plugin_method", plugin_method, family="baseline", uses_layer=False, options={})
    # installing a plugin changes no job of bench's own methods
    assert {s: sources.code_version(s) for s in stages} == before
    assert sources.code_version("explain", ("methods", "grad_cam")) == before["explain"]
    v0 = sources.code_version("explain", ("methods", "plugin_method"))
    assert v0 != before["explain"] and sources.code_version("sanity", ("methods", "plugin_method")) != before["sanity"]
    assert sources.registered_versions(("methods",)) == {"methods:plugin_method": "0"}
    METHODS._entries.pop("plugin_method")
    METHODS.register("plugin_method", plugin_method, family="baseline", uses_layer=False, options={}, version="0")
    assert sources.code_version("explain", ("methods", "plugin_method")) == v0  # no version means "0"
    METHODS._entries.pop("plugin_method")
    METHODS.register("plugin_method", plugin_method, family="baseline", uses_layer=False, options={}, version="2")
    assert sources.code_version("explain", ("methods", "plugin_method")) not in (v0, before["explain"])
    assert sources.code_version("score") == before["score"]
    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))
    METRICS.register("plugin_metric", plugin_method, direction="higher", kind="localisation", needs_model=False,
                     options={}, version="1")
    assert sources.code_version("score", ("metrics", "plugin_metric")) != before["score"]
    assert sources.code_version("score", ("metrics", "iou")) == before["score"]
    with pytest.raises(ValueError, match="stage 'score' runs no methods"):
        sources.code_version("score", ("methods", "plugin_method"))


def test_the_references_are_scored_as_ceilings_and_never_ranked(smoke_run):
    res = load_results(smoke_run)
    loc = res[res["metric"].isin(["pointing_game", "energy_pointing_game"]) & res["value"].notna()]
    oracle = loc[loc["method"] == "oracle"]
    assert len(oracle) > 0 and (oracle["value"] == 1.0).all()  # the mask as the map hits, and holds all energy
    grid = res[(res["method"] == "oracle_grid") & (res["metric"] == "pointing_game")]
    # smoke explains at block5_conv3 of a 32 px model: a 2 x 2 grid, a cell is a quarter of the image
    assert (grid["cell_area"] == 0.25).all() and (res.loc[res["method"] == "saliency", "cell_area"] == 1 / 32**2).all()
    small = grid["lesion_area"] < grid["cell_area"]
    assert small.all() and grid["value"].mean() < 0.9  # every lesion is smaller than a cell: the grid cannot resolve
    board = pd.read_csv(smoke_run / "leaderboard.csv")
    refs = board[board["method"].isin(["oracle", "oracle_grid"])]
    assert len(refs) and refs["rank"].isna().all() and refs["relative"].isna().all()
    gc = board[(board["method"] == "grad_cam") & (board["metric"] == "pointing_game")]
    assert (gc["ceiling"] == "oracle_grid").all() and (gc["n_small"] > 0).all()
    assert "(ceiling)" in (smoke_run / "leaderboard.md").read_text()
