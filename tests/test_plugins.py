"""Your own method, metric, model and converter (issue 17): the public register_* functions, and plugins found by
entry points.

The plugin is the worked example of docs/bring_your_own.md (``docs/examples/bench_brightness``: a brightness map
and a tiny CNN). It is made importable the way an installed distribution is, without pip: its module and a
``*.dist-info`` folder holding its ``entry_points.txt`` (taken from its pyproject.toml) in a folder put on
PYTHONPATH, which ``importlib.metadata`` reads like site-packages. ``bench`` then runs in a subprocess, as it
would for a user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.attribution import DEFAULT_RULES, METHODS, Rule, explain, register_method
from bench.attribution import postprocess as postprocess_module
from bench.data import register_converter
from bench.data.converters import CONVERTERS
from bench.metrics import METRICS, register_metric
from bench.models import MODELS, create_model, register_model

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "docs" / "examples" / "bench_brightness"
DATASET = "synthetic-lidc_idri"


# ----------------------------------------------------------------------------------------------------------------
# a plugin distribution, built on the fly


def make_site(root: Path, *, method_version: str = "1", broken: bool = False) -> Path:
    """A folder to put on PYTHONPATH holding the example plugin as an installed distribution (module +
    ``bench_brightness-0.1.0.dist-info``); ``broken``: also a distribution whose entry point raises."""
    root.mkdir(parents=True)
    source = (EXAMPLE / "bench_brightness.py").read_text()
    old = 'cost={"forward": 0, "backward": 0}, version="1"'
    assert source.count(old) == 1
    (root / "bench_brightness.py").write_text(source.replace(old, old.replace('"1"', f'"{method_version}"')))
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist = root / f"bench_brightness-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in eps.items()) + "\n"
        for group, eps in project["entry-points"].items()))
    if broken:
        (root / "bench_broken.py").write_text("def register():\n    raise RuntimeError('needs a GPU it has not got')\n")
        bad = root / "bench_broken-0.2.dist-info"
        bad.mkdir()
        (bad / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-broken\nVersion: 0.2\n")
        (bad / "entry_points.txt").write_text("[bench.metrics]\nbroken = bench_broken:register\n")
    return root


def bench(site: Path | None, *args: str, check: bool = True, **env_extra: str) -> subprocess.CompletedProcess:
    """``bench ARGS`` in a fresh interpreter with ``site`` on PYTHONPATH (as if the plugin were installed)."""
    env = {**os.environ, **env_extra}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, env=env,
                          cwd=site.parent if site is not None else None, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_args(out: Path, data_root: Path, *more: str) -> list[str]:
    """``bench run smoke`` cut to the plugin: one phantom, the plugin model, the plugin method as the reference."""
    sets = [f"datasets=['{DATASET}']", "models=['tiny_cnn']", "methods=['grad_cam','brightness','centre','random']",
            "metrics=['pointing_game','energy_pointing_game']", "score.sanity_methods=['brightness']",
            "report.reference='brightness'", f"data.root='{data_root}'", "train.epochs=1", "train.threads=2",
            "report.bootstrap=100", "class_sensitivity.composites=0", *more]
    return ["run", "smoke", "--out", str(out), *[a for s in sets for a in ("--set", s)]]


def _ran(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())["stats"]["ran"]


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory):
    """(site, data root, run folder) of the plugin's sweep, run once."""
    base = tmp_path_factory.mktemp("plugin")
    site = make_site(base / "site", broken=True)
    data_root = base / "datasets"
    proc = bench(site, *run_args(base / "run", data_root))
    (base / "stderr.txt").write_text(proc.stderr)
    return site, data_root, base / "run"


# ----------------------------------------------------------------------------------------------------------------
# plugins through the command line


def test_bench_list_marks_plugins_with_their_distribution(tmp_path):
    site = make_site(tmp_path / "site", broken=True)
    proc = bench(site, "list")
    lines = proc.stdout.splitlines()
    line = next(l for l in lines if l.startswith("brightness "))
    assert re.split(r"\s{2,}", line.strip()) == ["brightness", "plugin bench-brightness 0.1.0", "baseline", "no", "-"]
    assert re.split(r"\s{2,}", next(l for l in lines if l.startswith("grad_cam ")))[1] == "bench"
    tiny = next(l for l in lines if l.startswith("tiny_cnn "))
    assert re.split(r"\s{2,}", tiny.strip()) == ["tiny_cnn", "plugin bench-brightness 0.1.0", "block2", "block1, block2"]
    # the broken plugin: one warning naming distribution and entry point, listed at the end, exit status 0
    assert "plugins that failed to load (1" in proc.stdout
    assert "bench-broken 0.2 (bench.metrics: broken = bench_broken:register): RuntimeError" in proc.stdout
    warnings = [l for l in proc.stderr.splitlines() if l.startswith("bench: warning:")]
    assert len(warnings) == 1 and "bench-broken 0.2" in warnings[0] and "needs a GPU" in warnings[0]
    # the example module is listed in two groups and loaded once (a second import would register twice)
    assert "bench-brightness" not in proc.stderr
    off = bench(site, "list", "methods", BENCH_PLUGINS="0").stdout
    assert "brightness" not in off and "from" not in off.splitlines()[1] and "failed" not in off


@pytest.mark.slow
def test_a_plugin_method_and_model_run_through_bench_run(plugin_run):
    from bench.data import load_dataset

    site, data_root, out = plugin_run
    res = pd.read_parquet(out / "results.parquet")
    assert set(res["model"]) == {"tiny_cnn"} and {"brightness", "grad_cam"} <= set(res["method"])
    ok = res[res["value"].notna()]
    assert len(ok[ok["method"] == "brightness"]) > 0 and np.isfinite(ok["value"]).all()
    # the maps the sweep stored for the plugin method are the images' channel means: its Rule was applied
    data = load_dataset(DATASET, root=str(data_root), image_size=32)
    index = {i: k for k, i in enumerate(data.ids)}
    folder = next(p.parent for p in (out / "cache" / "explain").glob("*/done.json")
                  if json.loads(p.read_text())["spec"]["method"] == "brightness")
    ids = json.loads((folder / "images.json").read_text())["ids"]
    maps = np.load(folder / "maps.npy")
    expected = data.images[[index[i] for i in ids]].mean(dim=1).numpy()
    assert maps.shape == expected.shape == (len(ids), 32, 32)
    np.testing.assert_allclose(maps, expected, rtol=0, atol=1e-6)
    # the plugin method is the reference: the comparisons are against it
    board = pd.read_csv(out / "leaderboard.csv")
    assert {"vs_brightness", "vs_brightness_p_holm"} <= set(board.columns) and "vs_grad_cam" not in board.columns
    assert (board.loc[board["method"] == "brightness", "vs_brightness"].fillna("") == "").all()
    # a map that ignores the model does not change when the model's weights are randomised: the sanity check fails
    sanity = pd.read_csv(out / "sanity_summary.csv")
    assert sanity.loc[sanity["method"] == "brightness", "overall"].str.startswith("fail").all()
    stderr = (out.parent / "stderr.txt").read_text()
    assert "bench: warning: bench plugin bench-broken 0.2" in stderr  # the broken plugin did not stop the run


def _jobs_of(out: Path, method: str) -> dict[str, int]:
    """Stage -> how many stored jobs of the run folder ``out`` ran ``method``."""
    counts: dict[str, int] = {}
    for done in (out / "cache").glob("*/*/done.json"):
        if json.loads(done.read_text())["spec"].get("method") == method:
            stage = done.parent.parent.name
            counts[stage] = counts.get(stage, 0) + 1
    return counts


@pytest.mark.slow
def test_a_new_plugin_version_recomputes_exactly_its_jobs_in_ray_workers(plugin_run, tmp_path):
    """On Ray when it is installed (each worker is a fresh process that must load the plugin itself to run the
    method, and must have the driver's plugin versions), else locally."""
    try:
        import ray  # noqa: F401

        backend = ["--backend", "ray"]
    except ImportError:
        backend = []
    _, data_root, out = plugin_run
    site = make_site(tmp_path / "site", method_version="2")
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    bench(site, *run_args(copy, data_root), *backend, RAY_ADDRESS="")
    stats = json.loads((copy / "run.json").read_text())["stats"]
    assert stats["failed"] == 0 and stats.get("backend", "local") == ("ray" if backend else "local")
    # exactly the jobs that run brightness (explain, its scores, its sanity check): not the model, not grad_cam
    expected = _jobs_of(out, "brightness")
    assert expected["explain"] == 1 and expected["sanity"] == 1 and expected["score"] == 2
    assert _ran(copy) == expected
    pd.testing.assert_frame_equal(pd.read_parquet(copy / "results.parquet"), pd.read_parquet(out / "results.parquet"))


def test_the_docs_show_the_example_that_is_tested():
    text = (REPO / "docs" / "bring_your_own.md").read_text()
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", text, flags=re.S)
    for name in ("pyproject.toml", "bench_brightness.py"):
        assert (EXAMPLE / name).read_text() in blocks, f"docs/bring_your_own.md does not show {name} as it is"


# ----------------------------------------------------------------------------------------------------------------
# register_* from Python


@pytest.fixture
def scratch(monkeypatch):
    """Registrations in a test are undone after it."""
    for registry in (METHODS, METRICS, MODELS, CONVERTERS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(postprocess_module, "RULES", dict(postprocess_module.RULES))
    import bench.attribution.base as base

    monkeypatch.setattr(base, "_COST_FNS", dict(base._COST_FNS))


def _images(b=2, h=8, w=8, seed=0):
    return torch.rand((b, 3, h, w), generator=torch.Generator().manual_seed(seed))


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()


def test_register_method_refuses_a_taken_name_and_a_missing_family(scratch):
    def fn(model, images, targets, *, layer=None):
        return images.mean(1)

    with pytest.raises(ValueError, match="attribution method 'grad_cam' is already registered"):
        register_method("grad_cam", fn, family="baseline")
    with pytest.raises(ValueError, match="family is required, one of cam, gradient, perturbation, baseline"):
        register_method("mine", fn)
    with pytest.raises(ValueError, match="family must be one of"):
        register_method("mine", fn, family="saliency")
    with pytest.raises(TypeError, match="has no parameter"):
        register_method("mine", lambda model, images, targets: images, family="baseline")
    with pytest.raises(TypeError, match="no parameter\\(s\\) sigma"):
        register_method("mine", fn, family="baseline", options={"sigma": 1.0})
    with pytest.raises(ValueError, match="postprocess must be a bench.attribution.Rule"):
        register_method("mine", fn, family="baseline", postprocess=("mean", False))
    with pytest.raises(ValueError, match="channels must be None or one of abs_sum, mean"):
        Rule("max", False)
    with pytest.raises(ValueError, match="its rule is written in bench.attribution.postprocess.RULES"):
        register_method("grad_cam", fn, family="cam", postprocess=Rule(None, False))
    assert "mine" not in METHODS and "mine" not in postprocess_module.RULES  # nothing half-registered
    register_method("mine", fn, family="baseline")
    with pytest.raises(ValueError, match="attribution method 'mine' is already registered"):
        register_method("mine", fn, family="baseline")


def test_the_postprocessing_rule_is_applied(scratch):
    x = _images()

    @register_method("channel_stack", family="baseline", postprocess=Rule("mean", False, "test"))
    def channel_stack(model, images, targets, *, layer=None):
        return images - 0.5  # (B, C, H, W), signed

    out = explain(_net(), x, 0, "channel_stack")
    torch.testing.assert_close(out, (x - 0.5).mean(1), rtol=0, atol=1e-7)
    # the gradient family's default: sum of |.| over channels, no ReLU
    register_method("signed", channel_stack, family="gradient")
    assert postprocess_module.RULES["signed"] == DEFAULT_RULES["gradient"]
    torch.testing.assert_close(explain(_net(), x, 0, "signed"), (x - 0.5).abs().sum(1), rtol=0, atol=1e-6)
    # the CAM family's default: ReLU at the layer's resolution, then bilinear upsampling to the input
    coarse = torch.tensor([[[1.0, -2.0], [-1.0, 3.0]]]).expand(2, 2, 2)

    def cam_like(model, images, targets, *, layer):
        return coarse

    net = _net()
    net.cam_layers, net.default_cam_layer = {"conv": net[0]}, "conv"
    register_method("cam_like", cam_like, family="cam")
    assert METHODS.meta("cam_like")["uses_layer"] is True
    expected = torch.nn.functional.interpolate(coarse.clamp_min(0)[:, None], size=(8, 8), mode="bilinear",
                                               align_corners=False)[:, 0]
    torch.testing.assert_close(explain(net, x, 0, "cam_like"), expected)
    assert explain(net, x, 0, "cam_like").min() >= 0
    # a (B, C, H, W) result under a rule without channel reduction: a clear error that says what to pass
    register_method("no_rule", channel_stack, family="baseline")
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 8, 8\).*postprocess=Rule\('abs_sum' or 'mean'"):
        explain(_net(), x, 0, "no_rule")


def test_a_plugin_version_enters_only_its_jobs_keys(scratch):
    from bench.sweep.jobs import plan
    from bench.sweep.suite import load_suite

    def fn(model, images, targets, *, layer=None):
        return images.mean(1)

    fn.__module__ = "my_plugin"  # registered from outside the bench package

    def keys(version: str) -> dict[tuple[str, str], str]:
        METHODS._entries.pop("mine", None)
        register_method("mine", fn, family="baseline", version=version)
        suite = load_suite("smoke", ["methods=['grad_cam','mine']", "score.sanity_methods=['mine']"])
        return {(j.stage, j.label): j.key for j in plan(suite)}

    one, two, again = keys("1"), keys("2"), keys("1")
    assert one == again and one.keys() == two.keys()
    changed = {label for label in one if one[label] != two[label]}
    assert changed == {label for label in one if " mine" in label[1]}  # every job that runs it, and no other
    assert {"explain", "score", "sanity"} <= {stage for stage, _ in changed}
    assert all(one[k] == two[k] for k in one if k[0] == "train" or " grad_cam" in k[1])


def test_register_metric_wraps_a_per_map_function(scratch):
    def inside_share(saliency, mask, *, power=1.0):
        """Share of the map's mass inside the mask (maps here are positive)."""
        s = np.abs(saliency) ** power
        return (s * mask).sum(axis=(1, 2)) / s.sum(axis=(1, 2))

    fn = register_metric("inside_share", inside_share, direction="higher", options={"power": 1.0},
                         description="share inside", version="2")
    assert METRICS.meta("inside_share")["kind"] == "localisation" and METRICS.meta("inside_share")["version"] == "2"
    mask = np.zeros((4, 8, 8), dtype=bool)
    mask[:, :4, :4] = True
    mask[3] = False  # empty mask: undefined
    sal = np.ones((4, 8, 8), dtype=np.float32)
    sal[0, :4, :4] = 3.0  # 48 of 96 inside: 0.5
    sal[1, :4, :4] = 0.0  # 0 inside
    sal[2] = 7.0  # constant: degenerate, the worst value, flagged
    values, degenerate = fn(sal, mask, return_degenerate=True)
    np.testing.assert_allclose(values[:3], [0.5, 0.0, 0.0])
    assert np.isnan(values[3]) and degenerate.tolist() == [False, False, True, False]
    np.testing.assert_allclose(fn(sal[:1], mask[:1], power=2.0), [9 * 16 / (9 * 16 + 48)])
    small = np.ones((1, 4, 4), dtype=np.float32)
    small[0, 0, 0] = 5.0  # a map smaller than the mask is upsampled bilinearly first
    assert 0.25 < fn(small, mask[:1])[0] < 1.0
    # lower is better: a degenerate map gets the top of the range
    register_metric("outside_share", lambda s, m: 1 - inside_share(s, m), direction="lower", range=(0.0, 1.0))
    assert METRICS.get("outside_share")(sal[2], mask[2], return_degenerate=True) == (1.0, True)
    with pytest.raises(ValueError, match="metric 'iou' is already registered"):
        register_metric("iou", inside_share, direction="higher")
    with pytest.raises(ValueError, match="direction must be 'higher' or 'lower'"):
        register_metric("x", inside_share)
    with pytest.raises(ValueError, match="kind must be 'localisation'"):
        register_metric("x", inside_share, direction="higher", kind="faithfulness")
    bad = register_metric("bad_shape", lambda s, m: s.mean(), direction="higher")
    with pytest.raises(ValueError, match=r"metric 'bad_shape'.*returned shape \(\) for 2 maps"):
        bad(sal[:2], mask[:2])


def test_register_model_and_converter(scratch):
    def tiny(num_classes, *, channels=4):
        net = _net()
        net.cam_layers, net.default_cam_layer = {"conv": net[0]}, "conv"
        return net

    register_model("tiny_test", tiny, version="3", description="for a test")
    assert MODELS.meta("tiny_test")["version"] == "3"
    assert create_model("tiny_test", 2)(_images()).shape == (2, 2)
    with pytest.raises(ValueError, match="model 'tiny_test' is already registered"):
        register_model("tiny_test", tiny)
    with pytest.raises(TypeError, match="expected a factory"):
        register_model("not_callable", 3)

    def folders(raw, out_dir, masks_out, card, *, masks=None, link="copy"):
        return {"counts": {}, "notes": []}

    register_converter("my_layout", folders, masks="none", description="my hospital's export")
    assert CONVERTERS.get("my_layout") is folders and CONVERTERS.meta("my_layout")["masks"] == "none"
    with pytest.raises(ValueError, match="converter 'image_folder' is already registered"):
        register_converter("image_folder", folders)
