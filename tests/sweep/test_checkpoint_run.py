"""Evaluating a model that is already trained (``bench run SUITE --checkpoint PATH``, a suite's ``[checkpoint]``):
the checkpoint a sweep trained gives that sweep's results without training; a plain state dict with its model
name and classes gives the same; bad checkpoints are clear errors before anything runs; the cache follows the
file's content. Reuses the smoke run of ``conftest.py`` (trained once per session)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import ConfigError
from bench.sweep import load_results, load_suite, run_suite
from bench.sweep.suite import score_jobs

pytestmark = pytest.mark.slow

DATASET = "synthetic-lidc_idri"
CLASSES = ["Benign", "Malignant"]  # the lidc_idri card's, in order
THREADS = "train.threads=2"  # as the smoke run's (torch's thread count changes float results at the bit level)
# a small slice of the smoke suite for the tests that only need the jobs to run, not every method and metric
SMALL = [f"datasets=[\"{DATASET}\"]", 'methods=["grad_cam"]', "references=[]", 'metrics=["pointing_game"]',
         "score.sanity_methods=[]"]


def _base(data_root) -> list[str]:
    return [f"data.root='{data_root}'", THREADS]


def _run(out, overrides, **kw):
    threads = torch.get_num_threads()
    try:
        return run_suite("smoke", out=out, overrides=overrides, progress=False, **kw)
    finally:
        torch.set_num_threads(threads)


def _ran(out, stages=("train", "load", "explain", "score", "sanity")) -> dict:
    """The jobs of ``stages`` (the stages this file is about; None: every stage) that the last run of ``out`` ran."""
    ran = json.loads((out / "run.json").read_text())["stats"]["ran"]
    return {k: v for k, v in ran.items() if stages is None or k in stages}


@pytest.fixture(scope="module")
def trained(smoke_run, tmp_path_factory) -> Path:
    """A copy of the checkpoint the smoke run trained on ``DATASET`` (bench's format)."""
    for done in sorted((smoke_run / "cache" / "train").glob("*/done.json")):
        if json.loads(done.read_text())["spec"]["dataset"] == DATASET:
            dst = tmp_path_factory.mktemp("ckpt") / "lidc_model.pt"
            shutil.copyfile(done.parent / "checkpoint.pt", dst)
            return dst
    raise AssertionError(f"the smoke run trained no model on {DATASET}")


@pytest.fixture(scope="module")
def plain(trained) -> Path:
    """The same weights as a plain PyTorch state dict (no config, no class names)."""
    state = torch.load(trained, map_location="cpu", weights_only=True)["state_dict"]
    dst = trained.with_name("lidc_state_dict.pt")
    torch.save(state, dst)
    return dst


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


ROW_KEYS = ["dataset", "model", "seed", "fold", "method", "metric", "image_id"]


def test_a_bench_checkpoint_gives_the_results_of_the_sweep_that_trained_it(smoke_run, trained, data_root, tmp_path):
    out = tmp_path / "from_checkpoint"
    # two of the smoke suite's methods (a CAM and a gradient one), its references, every metric, one sanity test
    res = _run(out, [*_base(data_root), f"datasets=[\"{DATASET}\"]", 'methods=["grad_cam", "saliency"]',
                     'score.sanity_methods=["grad_cam"]', f"checkpoint.path='{trained}'"])
    n_score = 4 * len(score_jobs(load_suite("smoke").metrics))
    assert _ran(out) == {"load": 1, "explain": 4, "score": n_score, "sanity": 1}  # loaded, nothing trained
    swept = load_results(smoke_run)
    swept = swept[(swept["dataset"] == DATASET) & swept["method"].isin(set(res["method"]))]
    assert set(res["method"]) == {"grad_cam", "saliency", "oracle", "oracle_grid"}
    assert len(res) == len(swept) > 0
    pd.testing.assert_frame_equal(_sorted(res, ROW_KEYS), _sorted(swept, ROW_KEYS))  # every value, bit for bit
    # Table 2: the loaded model evaluated on the same test split gives the trained model's numbers
    ours, theirs = (pd.read_parquet(d / "classification.parquet") for d in (out, smoke_run))
    theirs = theirs[theirs["dataset"] == DATASET].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)
    assert (out / "classification.md").is_file() and (out / "scorecard.html").is_file()
    sanity = [pd.read_parquet(d / "sanity.parquet") for d in (out, smoke_run)]
    theirs = sanity[1][(sanity[1]["dataset"] == DATASET) & (sanity[1]["method"] == "grad_cam")]
    assert len(sanity[0]) > 1
    pd.testing.assert_frame_equal(sanity[0], theirs.reset_index(drop=True))
    # the run says where the model and its test split came from
    (ck,) = json.loads((out / "run.json").read_text())["checkpoints"]
    assert ck["kind"] == "bench" and ck["path"] == str(trained.resolve()) and ck["classes"] == CLASSES
    assert ck["split"].startswith("the checkpoint's split") and ck["trained_on"] == DATASET and ck["seed"] == 0


def test_a_plain_state_dict_with_model_and_classes_gives_the_same(smoke_run, plain, data_root, tmp_path):
    from bench.cli import main

    out = tmp_path / "plain"
    threads = torch.get_num_threads()
    try:
        code = main(["run", "smoke", "--checkpoint", str(plain), "--model", "ff_vgg19", "--classes", ",".join(CLASSES),
                     "--out", str(out), *[a for o in [*_base(data_root), *SMALL] for a in ("--set", o)]])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    res = load_results(out)
    swept = load_results(smoke_run)
    swept = swept[(swept["dataset"] == DATASET) & (swept["method"] == "grad_cam")
                  & (swept["metric"] == "pointing_game")]
    assert len(res) == len(swept) == 8
    pd.testing.assert_frame_equal(_sorted(res, ROW_KEYS), _sorted(swept, ROW_KEYS))
    ours, theirs = (pd.read_parquet(d / "classification.parquet") for d in (out, smoke_run))
    pd.testing.assert_frame_equal(ours, theirs[theirs["dataset"] == DATASET].reset_index(drop=True))
    (ck,) = json.loads((out / "run.json").read_text())["checkpoints"]
    assert ck["kind"] == "state_dict" and ck["model"] == "ff_vgg19" and ck["trained_on"] == ""
    assert ck["split"].startswith("the dataset's test split as the suite's train job would split it (data.folds=1, "
                                  "test_fraction=0.2, val_fraction=0.15, split_seed=0), fold 0")


def test_classes_that_are_not_the_datasets_are_a_clear_error(trained, plain, data_root):
    # a plain state dict given the right names in the wrong order
    with pytest.raises(ValueError) as err:
        load_suite("smoke", [*_base(data_root), *SMALL, f"checkpoint.path='{plain}'",
                             'checkpoint.classes=["Malignant", "Benign"]'])
    msg = str(err.value)
    assert "['Malignant', 'Benign']" in msg and "['Benign', 'Malignant']" in msg and DATASET in msg
    # bench's checkpoint of lidc_idri on the smoke suite's other dataset (COVID-CT: other classes)
    with pytest.raises(ValueError) as err:
        load_suite("smoke", [*_base(data_root), f"checkpoint.path='{trained}'"])
    msg = str(err.value)
    assert "['Benign', 'Malignant']" in msg and "['COVID-19', 'Normal']" in msg and "synthetic-cov_ct" in msg
    # bench's checkpoint records its classes: others given beside it contradict it
    with pytest.raises(ValueError, match=r"records classes \['Benign', 'Malignant'\]"):
        load_suite("smoke", [*_base(data_root), *SMALL, f"checkpoint.path='{trained}'",
                             'checkpoint.classes=["a", "b"]'])


def test_missing_and_incomplete_checkpoints_are_clear_errors(plain, data_root, tmp_path, capsys):
    from bench.cli import main

    missing = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pt \(checkpoint\.path\) not found"):
        load_suite("smoke", [*_base(data_root), *SMALL, f"checkpoint.path='{missing}'"])
    assert main(["run", "smoke", "--checkpoint", str(missing), "--out", str(tmp_path / "o")]) == 1
    assert "nowhere.pt (checkpoint.path) not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing ran, nothing was written
    with pytest.raises(ValueError, match="plain state dict .* give the model's name and its classes"):
        load_suite("smoke", [*_base(data_root), *SMALL, f"checkpoint.path='{plain}'"])
    with pytest.raises(ConfigError, match="no checkpoint.path"):
        load_suite("smoke", ['checkpoint.classes=["Benign", "Malignant"]'])
    code_file = tmp_path / "code.pt"
    torch.save({"weights": torch.zeros(2), "fn": np.dtype}, code_file)  # pickles a class: never unpickled
    with pytest.raises(ValueError, match="refused to load"):
        load_suite("smoke", [*_base(data_root), *SMALL, f"checkpoint.path='{code_file}'"])


def test_weights_that_do_not_fit_the_suites_model_are_an_error_naming_the_keys_and_options(plain, data_root):
    over = [*_base(data_root), *SMALL, f"checkpoint.path='{plain}'", 'checkpoint.classes=["Benign", "Malignant"]']
    assert load_suite("smoke", over).checkpoint.path == str(plain)  # the smoke preset's options: it fits
    with pytest.raises(ValueError) as err:  # trained at the smoke preset's width 0.125
        load_suite("smoke", [*over, "model.width=0.25"])
    msg = str(err.value)
    assert "shape mismatch features.0.weight: checkpoint (8, 3, 3, 3) vs model (16, 3, 3, 3)" in msg
    assert "'ff_vgg19' with 2 outputs" in msg and "width=0.25" in msg and "--set model.width" in msg


def test_plain_state_dicts_are_read_as_torch_and_dataparallel_save_them():
    from bench.sweep.checkpoints import plain_state_dict

    w = torch.ones(2, 3)
    assert plain_state_dict({"a.weight": w}, source="f") == {"a.weight": w}
    assert plain_state_dict({"epoch": 3, "state_dict": {"module.a.weight": w, "module.b": w}}, source="f") == \
        {"a.weight": w, "b": w}  # nested under state_dict, nn.DataParallel's prefix removed
    assert list(plain_state_dict({"module.a": w, "b": w}, source="f")) == ["module.a", "b"]  # not every key: kept
    with pytest.raises(ValueError, match=r"f: not a state dict: 1 entries are not .* \(e.g. \['epoch'\]\)"):
        plain_state_dict({"a.weight": w, "epoch": 3}, source="f")
    with pytest.raises(ValueError, match="got list"):
        plain_state_dict([w], source="f")


def test_a_changed_checkpoint_reruns_its_jobs_and_a_moved_one_does_not(plain, data_root, tmp_path):
    from bench.sweep import checkpoints

    ckpt = tmp_path / "model.pt"
    shutil.copyfile(plain, ckpt)
    out = tmp_path / "run"
    over = [*_base(data_root), *SMALL, 'checkpoint.classes=["Benign", "Malignant"]']
    _run(out, [*over, f"checkpoint.path='{ckpt}'"])
    assert _ran(out) == {"load": 1, "explain": 1, "score": 1}
    first = load_results(out)
    _run(out, [*over, f"checkpoint.path='{ckpt}'"])
    assert _ran(out, None) == {}  # same file: all stored
    moved = tmp_path / "elsewhere" / "renamed.pt"
    moved.parent.mkdir()
    shutil.move(ckpt, moved)
    _run(out, [*over, f"checkpoint.path='{moved}'"])
    assert _ran(out, None) == {}  # the key is the content, not the path
    state = torch.load(moved, weights_only=True)
    head = [k for k in state if k.endswith(".weight")][-1]
    state[head] = state[head] * 2  # the same file name, other weights
    torch.save(state, moved)
    checkpoints.forget()
    _run(out, [*over, f"checkpoint.path='{moved}'"])
    assert _ran(out) == {"load": 1, "explain": 1, "score": 1}
    probs = [np.load(f)["test_probs"] for f in sorted((out / "cache" / "train").glob("*/eval.npz"))]
    assert len(probs) == 2 and probs[0].shape == probs[1].shape and not np.allclose(probs[0], probs[1])


def test_a_checkpoint_changed_or_removed_after_planning_fails_its_load_job_clearly(plain, data_root, tmp_path):
    from bench.sweep.cache import JobStore
    from bench.sweep.jobs import execute, plan

    ckpt = tmp_path / "model.pt"
    shutil.copyfile(plain, ckpt)
    suite = load_suite("smoke", [*_base(data_root), *SMALL, f"checkpoint.path='{ckpt}'",
                                 'checkpoint.classes=["Benign", "Malignant"]'])
    (load,) = [j for j in plan(suite) if j.stage == "train"]
    assert load.label == f"load {DATASET} ff_vgg19 from model.pt" and load.spec["checkpoint"]["kind"] == "state_dict"
    ckpt.write_bytes(ckpt.read_bytes() + b"\0")
    with pytest.raises(ValueError, match=r"model\.pt changed \(SHA-256 [0-9a-f]{12}, planned with [0-9a-f]{12}\) "
                                         "since the sweep was planned; run the command again"):
        execute(load, JobStore(tmp_path / "out"))
    ckpt.unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.pt is gone since the sweep was planned"):
        execute(load, JobStore(tmp_path / "out"))
    assert not JobStore(tmp_path / "out").done("train", load.key)


def test_a_suite_file_names_its_checkpoint_in_short_or_table_form(plain, data_root, tmp_path):
    from bench.sweep.runner import default_out

    short = tmp_path / "short.toml"
    short.write_text(f'preset = "smoke"\ndatasets = ["{DATASET}"]\nmodels = ["ff_vgg19"]\ncheckpoint = "{plain}"\n')
    with pytest.raises(ValueError, match="give the model's name and its classes"):  # short form: the path alone
        load_suite(short, [f"data.root='{data_root}'"])
    table = tmp_path / "table.toml"
    table.write_text(f'preset = "smoke"\ndatasets = ["{DATASET}"]\n\n[checkpoint]\npath = "{plain}"\n'
                     'model = "ff_vgg19"\nclasses = ["Benign", "Malignant"]\n')
    suite = load_suite(table, [f"data.root='{data_root}'"])
    assert suite.checkpoint.path == str(plain) and suite.checkpoint.classes == tuple(CLASSES)
    # its own default folder: evaluating a checkpoint never replaces the tables of the suite's trained run
    assert default_out(suite) == Path("reports") / "table-lidc_state_dict"
    assert default_out(load_suite(table, ['checkpoint.path=""', "checkpoint.model=''", "checkpoint.classes=[]"])) \
        == Path("reports") / "table"
    # the short form takes the table's other keys by --set; the model defaults to the suite's one model
    from_short = load_suite(short, [f"data.root='{data_root}'", 'checkpoint.classes=["Benign", "Malignant"]'])
    assert (from_short.checkpoint.path, from_short.checkpoint.classes, from_short.checkpoint.model) == \
        (str(plain), tuple(CLASSES), "")
    two_models = [f"data.root='{data_root}'", 'checkpoint.classes=["Benign", "Malignant"]',
                  'models=["ff_vgg19", "vgg19"]']
    with pytest.raises(ValueError, match="give the model's name"):
        load_suite(short, two_models)
    assert load_suite(short, [*two_models, 'checkpoint.model="ff_vgg19"']).checkpoint.model == "ff_vgg19"


def test_a_plain_suites_job_keys_are_what_they_were_before_checkpoints(data_root):
    """Runs that train keep their cache: the checkpoint code is in no stage's code version but its own, and the
    plan of a suite without a checkpoint keys its jobs exactly as the plan did before checkpoints existed."""
    from bench.config import to_dict
    from bench.sweep.cache import digest
    from bench.sweep.jobs import plan
    from bench.sweep.sources import code_version, stage_modules
    from bench.sweep.suite import metric_options

    for stage in ("train", "explain", "score", "sanity"):
        assert not {"bench.sweep.checkpoints", "bench.sweep.stages.load"} & set(stage_modules(stage)), stage
    assert "bench.sweep.checkpoints" in stage_modules("load")
    suite = load_suite("smoke", _base(data_root))
    expected = []  # the plan's key formulas as they were written before checkpoints (bench/sweep/jobs.py)
    ex = suite.explain
    for dataset in suite.datasets:
        for model in suite.models:
            for seed in suite.seeds:
                cfg = suite.run_config(dataset, model, seed)
                for fold in suite.fold_indices(cfg):
                    ident = {"dataset": dataset, "model": model, "seed": seed, "fold": fold}
                    tkey = digest({"spec": {**ident, "config": to_dict(cfg)}, "code": code_version("train")})
                    expected.append(("train", tkey, ()))
                    for method in (*suite.methods, *suite.references):
                        espec = {**ident, "method": method, "options": dict(ex.options.get(method, {})),
                                 "layer": ex.layer, "max_images": ex.max_images, "batch_size": ex.batch_size,
                                 "seed_explain": ex.seed}
                        ekey = digest({"train": tkey, "spec": espec, "code": code_version("explain")})
                        expected.append(("explain", ekey, (("train", tkey),)))
                        for metric, outputs in score_jobs(suite.metrics).items():
                            sspec = {**espec, "metric": metric, "metric_options": metric_options(suite, metric),
                                     "outputs": outputs}
                            skey = digest({"explain": ekey, "spec": sspec, "code": code_version("score")})
                            expected.append(("score", skey, (("train", tkey), ("explain", ekey))))
                    for method in suite.score.sanity_methods:
                        qspec = {**ident, "method": method, "options": dict(ex.options.get(method, {})),
                                 "layer": ex.layer, "n_images": suite.score.sanity_images, "seed_explain": ex.seed}
                        qkey = digest({"train": tkey, "spec": qspec, "code": code_version("sanity")})
                        expected.append(("sanity", qkey, (("train", tkey),)))
    jobs = plan(suite)
    stages = {"train", "explain", "score", "sanity"}  # (stages added since have their own keys)
    assert [(j.stage, j.key, j.deps) for j in jobs if j.stage in stages] == expected
    assert not any("checkpoint" in j.spec for j in jobs)
