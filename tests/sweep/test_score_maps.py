"""``bench score`` / ``bench.score_maps``: maps made elsewhere, scored as the sweep scores its own.

The fast tests score small hand-made maps against masks given in code; the slow ones reuse the session's smoke
run (tests/sweep/conftest.py) and check that maps written by ``bench explain`` (and the sweep's own stored maps)
give the sweep's rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.sweep.score_maps import read_maps, score_maps

SIZE = 32
LOC = ["auprc", "energy_pointing_game", "iou", "pointing_game", "relevance_rank_accuracy"]


def _masks(n: int = 6) -> dict[str, np.ndarray]:
    """``{img0..: (32, 32) bool}``: an 8 x 8 lesion each, at seeded places."""
    rng = np.random.default_rng(0)
    out = {}
    for i in range(n):
        m = np.zeros((SIZE, SIZE), bool)
        r, c = rng.integers(2, SIZE - 10, size=2)
        m[r : r + 8, c : c + 8] = True
        out[f"img{i}"] = m
    return out


def _maps(masks: dict[str, np.ndarray], size: int, seed: int) -> dict[str, np.ndarray]:
    """Noisy maps at ``size`` x ``size`` with a bump over each lesion (so the metrics are not all 0 or 1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, m in masks.items():
        low = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(m.astype(np.float32))[None], size)[0].numpy()
        out[i] = (low + rng.uniform(0, 0.6, size=(size, size))).astype(np.float32)
    return out


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["method", "metric", "image_id"]).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# fast: formats, resizing, errors


def test_the_three_formats_and_python_arrays_give_the_same_rows(tmp_path):
    masks = _masks()
    cam, noise = _maps(masks, 8, seed=1), _maps(masks, SIZE, seed=2)
    ids = list(masks)
    want = _sorted(score_maps({"cam": cam, "noise": noise}, masks))
    assert sorted(want["metric"].unique()) == LOC  # no model: localisation only
    assert len(want) == 2 * len(ids) * len(LOC)
    assert "deletion, insertion" in want.attrs["notes"][0] and "skipped: they need the model" in want.attrs["notes"][0]

    # (a) what bench explain writes: explain.json + <method>.npy (N, H, W) in the json's id order
    explain = tmp_path / "explain"
    explain.mkdir()
    np.save(explain / "cam.npy", np.stack([cam[i] for i in ids]))
    np.save(explain / "noise.npy", np.stack([noise[i] for i in ids]))
    (explain / "explain.json").write_text(json.dumps(
        {"ids": ids, "methods": {"cam": {"file": "cam.npy"}, "noise": {"file": "noise.npy"}}}))
    # (b) a folder of per-image files named by image id (.npy, or .npz with one array), method = folder name
    folder = tmp_path / "cam"
    folder.mkdir()
    for k, i in enumerate(ids):
        if k % 2:
            np.save(folder / f"{i}.npy", cam[i])
        else:
            np.savez(folder / f"{i}.npz", map=cam[i])
    # (c) one .npz per method {image_id: map}, method = file stem
    np.savez(tmp_path / "noise.npz", **noise)

    for maps in (str(explain), [folder, tmp_path / "noise.npz"], read_maps([folder, tmp_path / "noise.npz"])):
        pd.testing.assert_frame_equal(_sorted(score_maps(maps, masks)), want)
    arrays = {"cam": np.stack([cam[i] for i in ids]), "noise": torch.from_numpy(np.stack([noise[i] for i in ids]))}
    pd.testing.assert_frame_equal(_sorted(score_maps(arrays, masks, ids=ids)), want)
    renamed = read_maps(tmp_path / "noise.npz", method="other")
    assert [m.name for m in renamed] == ["other"] and sorted(renamed[0].maps) == sorted(ids)


def test_maps_are_resized_to_the_masks_bilinearly_and_scored_by_the_registered_metrics():
    from bench.attribution.postprocess import upsample
    from bench.metrics import METRICS

    masks = _masks()
    ids = list(masks)
    low = _maps(masks, 8, seed=3)
    res = score_maps({"cam": low}, masks)
    up = upsample(torch.from_numpy(np.stack([low[i] for i in ids])), (SIZE, SIZE)).numpy()
    m = np.stack([masks[i] for i in ids])
    for metric in LOC:
        got = res[res["metric"] == metric].set_index("image_id").loc[ids, "value"].to_numpy()
        np.testing.assert_allclose(got, METRICS.get(metric)(up, m), rtol=0, atol=1e-12, err_msg=metric)
    # the map's own grid sets cell_area (8 x 8 here); lesion_area is the mask's share of the pixels
    assert np.allclose(res["cell_area"], 1 / 64) and np.allclose(res["lesion_area"], 64 / SIZE**2)
    # a map that peaks inside every lesion hits the pointing game; one that peaks in a lesion-free corner misses
    inside = {i: mk.astype(np.float32) for i, mk in masks.items()}
    corner = {i: np.pad(np.ones((1, 1), np.float32), ((0, SIZE - 1), (SIZE - 1, 0))) for i in masks}
    assert not any(mk[0, -1] for mk in masks.values())
    res = score_maps({"inside": inside, "corner": corner}, masks, metrics=["pointing_game"])
    assert res.groupby("method")["value"].mean().to_dict() == {"corner": 0.0, "inside": 1.0}
    assert res["target"].eq(-1).all() and res["label"].eq(-1).all() and res["correct"].isna().all()


def test_missing_and_extra_images_are_named_and_counted():
    masks = _masks(8)
    maps = _maps(masks, SIZE, seed=4)
    some = {i: maps[i] for i in list(masks)[:5]}
    with pytest.raises(ValueError) as err:
        score_maps({"cam": some}, masks)
    msg = str(err.value)
    assert "cam (maps['cam']): 3 images with a lesion mask have no map: img5, img6, img7" in msg
    assert "--allow-missing" in msg
    res = score_maps({"cam": some}, masks, missing="skip")
    assert sorted(res["image_id"].unique()) == sorted(some)
    assert "cam: 3 image(s) with a lesion mask have no map (img5, img6, img7)" in res.attrs["notes"][0]

    extra = {**maps, **{f"ghost{k}": maps["img0"] for k in range(7)}}
    with pytest.raises(ValueError) as err:
        score_maps({"cam": extra}, masks)
    msg = str(err.value)
    assert "7 map(s) of images that are not in masks: ghost0, ghost1, ghost2, ghost3, ghost4, ... (7 in all)" in msg


def test_wrong_shapes_and_types_are_errors_that_say_what_was_expected(tmp_path):
    masks = _masks()
    maps = _maps(masks, SIZE, seed=5)
    bad = {**maps, "img1": np.ones((3, SIZE, SIZE), np.float32), "img2": np.ones(SIZE, np.float32)}
    with pytest.raises(ValueError) as err:
        score_maps({"cam": bad}, masks)
    msg = str(err.value)
    assert "2 map(s) are not 2-D (H, W): img1 (3, 32, 32), img2 (32,)" in msg and "channels" in msg
    with pytest.raises(ValueError, match=r"not real numbers: img0 \(<U1\)"):
        score_maps({"cam": {**maps, "img0": np.array([["a"]])}}, masks)
    ids = list(masks)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)\? reduce the channels"):
        score_maps({"cam": np.ones((len(ids), 3, SIZE, SIZE))}, masks, ids=ids)
    with pytest.raises(ValueError, match="pass ids="):
        score_maps({"cam": np.ones((len(ids), SIZE, SIZE))}, masks)
    with pytest.raises(ValueError, match="has 6 maps but ids names 5 images"):
        score_maps({"cam": np.ones((len(ids), SIZE, SIZE))}, masks, ids=ids[:5])
    # files: a lone .npy has no ids; a per-image .npz with several arrays is probably a per-method one
    np.save(tmp_path / "cam.npy", np.ones((6, SIZE, SIZE)))
    with pytest.raises(ValueError, match="a lone .npy holds no image ids"):
        read_maps(tmp_path / "cam.npy")
    folder = tmp_path / "per_image"
    folder.mkdir()
    np.savez(folder / "img0.npz", a=np.ones((4, 4)), b=np.ones((4, 4)))
    with pytest.raises(ValueError, match="pass the file itself: bench score"):
        read_maps(folder)
    (folder / "img0.npz").unlink()
    np.save(folder / "img0.npy", np.ones((4, 4)))
    with pytest.raises(ValueError, match="two sets of maps are named 'per_image'"):
        read_maps([folder, folder])
    with pytest.raises(FileNotFoundError, match="nowhere: no such file or folder"):
        read_maps(tmp_path / "nowhere")


def test_non_finite_maps_are_an_error_or_excluded_rows_with_a_count():
    from bench.report import build_leaderboard

    masks = _masks()
    maps = _maps(masks, SIZE, seed=6)
    maps["img1"][0, :3] = np.nan
    maps["img4"][5, 5] = np.inf
    with pytest.raises(ValueError) as err:
        score_maps({"cam": maps, "ok": _maps(masks, SIZE, seed=7)}, masks)
    msg = str(err.value)
    assert ("cam (maps['cam']): 2 map(s) have non-finite values (4 NaN or infinite pixels in all): img1 (3), "
            "img4 (1)") in msg
    assert "ok (" not in msg and "nonfinite='exclude'" in msg
    res = score_maps({"cam": maps}, masks, nonfinite="exclude")
    gone = res[res["image_id"].isin(["img1", "img4"])]
    assert gone["value"].isna().all() and not gone["degenerate"].any()
    assert set(gone["excluded"]) == {"map has 3 non-finite value(s)", "map has 1 non-finite value(s)"}
    assert res.loc[~res["image_id"].isin(["img1", "img4"]), "value"].notna().all()
    board = build_leaderboard(res, n_resamples=20)
    assert board["n_excluded"].eq(2).all() and board["n_valid"].eq(4).all()


def test_out_writes_the_run_folder_of_a_sweep_and_refuses_a_sweeps_own(tmp_path):
    masks = _masks()
    out = tmp_path / "scored"
    res = score_maps({"cam": _maps(masks, 8, seed=8), "noise": _maps(masks, SIZE, seed=9)}, masks, out=out)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), res)
    for f in ("leaderboard.csv", "leaderboard.md", "scorecard.html"):
        assert (out / f).is_file(), f
    assert not (out / "curves.parquet").exists() and not (out / "sanity.parquet").exists()  # no model
    info = json.loads((out / "run.json").read_text())
    assert info["score_maps"]["resize"].startswith("bilinear, align_corners=False")
    assert info["score_maps"]["notes"] == res.attrs["notes"] and info["suite"]["methods"] == ["cam", "noise"]
    assert set(pd.read_csv(out / "leaderboard.csv")["method"]) == {"cam", "noise"}
    (tmp_path / "sweep" / "cache").mkdir(parents=True)
    with pytest.raises(ValueError, match="is a sweep's run folder"):
        score_maps({"cam": _maps(masks, 8, seed=8)}, masks, out=tmp_path / "sweep")


def test_cli_errors_are_one_line_without_a_traceback(tmp_path, capsys):
    from bench.cli import main

    np.save(tmp_path / "cam.npy", np.ones((2, 4, 4)))
    assert main(["score", str(tmp_path / "cam.npy"), "--dataset", "synthetic-lidc_idri"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bench score: error: ") and "a lone .npy holds no image ids" in err
    assert "Traceback" not in err


def test_import_bench_stays_light_and_exports_the_twin():
    code = ("import sys, bench, bench.report; assert 'torch' not in sys.modules and 'pandas' not in sys.modules; "
            "print(' '.join(bench.__all__ + bench.report.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert {"score_maps", "build_leaderboard"} <= set(out.stdout.split())
    import bench
    import bench.report.leaderboard
    from bench.report import build_leaderboard

    assert bench.score_maps is score_maps and build_leaderboard is bench.report.leaderboard.leaderboard


# ----------------------------------------------------------------------------------------------
# slow: against the sweep's own rows (the session's smoke run)

DATASET = "synthetic-lidc_idri"
COMPARED = ["label", "target", "correct", "degenerate", "excluded"]
CLOSE = ["value", "lesion_area", "cell_area"]


def _train_dir(run: Path, dataset: str) -> Path:
    for d in sorted((run / "cache" / "train").iterdir()):
        if json.loads((d / "done.json").read_text())["spec"]["dataset"] == dataset:
            return d
    raise AssertionError(f"no train job for {dataset} in {run}")


def _matched(ours: pd.DataFrame, sweep: pd.DataFrame, methods) -> pd.DataFrame:
    sweep = sweep[(sweep["dataset"] == DATASET) & sweep["method"].isin(methods)]
    both = sweep.merge(ours, on=["method", "metric", "image_id"], how="left", suffixes=("_sweep", "_ours"),
                       indicator=True)
    assert len(sweep) > 0 and both["_merge"].eq("both").all(), "a sweep row has no row of bench score"
    return both


@pytest.mark.slow
def test_bench_score_on_bench_explain_maps_gives_the_sweeps_rows(smoke_run, tmp_path, capsys):
    from bench.cli import main

    train = _train_dir(smoke_run, DATASET)
    ckpt = str(train / "checkpoint.pt")
    methods = ["grad_cam", "fused_grad_cam", "saliency", "centre", "random"]  # the smoke suite's
    maps = tmp_path / "maps"
    assert main(["explain", "--checkpoint", ckpt, "--methods", ",".join(methods), "--out", str(maps)]) == 0
    out = tmp_path / "scored"
    assert main(["score", str(maps), "--checkpoint", ckpt, "--suite", "smoke", "--run", "smoke",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    ours = pd.read_parquet(out / "results.parquet")
    sweep = pd.read_parquet(smoke_run / "results.parquet")
    n_metrics = sweep["metric"].nunique()
    assert "# Leaderboard: smoke" in printed
    assert f"{len(ours)} result rows (5 method(s) x 13 image(s) x {n_metrics} metric(s))" in printed
    assert list(ours.columns) == list(sweep.columns) and dict(ours.dtypes) == dict(sweep.dtypes)
    test_ids = json.loads((maps / "explain.json").read_text())["ids"]
    assert sorted(ours["image_id"].unique()) == sorted(test_ids)  # the whole test split, the sweep's 8 among them
    assert sorted(ours["metric"].unique()) == sorted(sweep["metric"].unique())  # deletion/insertion too
    # random draws its noise per batch, so bench explain's (13 images a batch) and the sweep's (8) differ
    both = _matched(ours, sweep, [m for m in methods if m != "random"])
    for c in ("run", "dataset", "model", "seed", "fold", *COMPARED):
        assert (both[f"{c}_sweep"] == both[f"{c}_ours"]).all(), c
    # ROAD draws its imputation noise by an image's position in the call (bench.metrics.road): 13 images here, the
    # sweep's 8 there, so its values agree to the noise only; every other metric to float precision
    road = both["metric"].str.startswith("road")
    for c in CLOSE:
        np.testing.assert_allclose(both.loc[~road, f"{c}_ours"], both.loc[~road, f"{c}_sweep"], rtol=1e-5, atol=1e-6,
                                   err_msg=c)
    np.testing.assert_allclose(both.loc[road, "value_ours"], both.loc[road, "value_sweep"], atol=0.01)
    # the sanity check of the suite's methods (grad_cam, saliency): the sweep's table
    ours_sanity = pd.read_parquet(out / "sanity.parquet")
    sweep_sanity = pd.read_parquet(smoke_run / "sanity.parquet")
    sweep_sanity = sweep_sanity[sweep_sanity["dataset"] == DATASET].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours_sanity[sweep_sanity.columns], sweep_sanity, check_exact=False, atol=1e-6)
    for f in ("leaderboard.csv", "leaderboard.md", "scorecard.html", f"gallery/{DATASET}.npz", "curves.parquet"):
        assert (out / f).is_file(), f
    assert set(pd.read_csv(out / "leaderboard.csv")["method"]) == set(methods)


@pytest.mark.slow
def test_the_python_twin_on_the_sweeps_stored_maps_gives_its_rows_exactly(smoke_run, data_root):
    """Every method and reference, random included: the same maps give the same rows, with or without the model."""
    store = smoke_run / "cache" / "explain"
    maps = {}
    for d in sorted(store.iterdir()):
        spec = json.loads((d / "done.json").read_text())["spec"]
        if spec["dataset"] == DATASET:
            ids = json.loads((d / "images.json").read_text())["ids"]
            maps[spec["method"]] = dict(zip(ids, np.load(d / "maps.npy")))
    assert {"random", "oracle", "grad_cam"} <= set(maps)
    ckpt = _train_dir(smoke_run, DATASET) / "checkpoint.pt"
    ours = score_maps(maps, DATASET, checkpoint=ckpt, suite="smoke", sanity_methods=[], missing="skip", run="smoke")
    sweep = pd.read_parquet(smoke_run / "results.parquet")
    both = _matched(ours, sweep, list(maps))
    assert len(ours) == len(both)
    for c in ("run", "model", "seed", "fold", *COMPARED, "value", "lesion_area"):
        a, b = both[f"{c}_ours"], both[f"{c}_sweep"]
        assert ((a == b) | (a.isna() & b.isna())).all(), c
    assert np.allclose(ours["cell_area"], 1 / SIZE**2)  # not bench explain's: each map's own grid, as given

    # no model: the localisation rows only, the same values; phantoms assign no split, so a note says so
    alone = score_maps(maps, DATASET, root=str(data_root), missing="skip", run="smoke")
    assert set(alone["metric"]) == set(LOC)
    notes = " ".join(alone.attrs["notes"])
    assert "assigns no splits" in notes and "skipped: they need the model" in notes and "sanity check skipped" in notes
    same = _matched(alone, sweep[sweep["metric"].isin(LOC)], list(maps))
    assert (same["value_ours"].fillna(-1) == same["value_sweep"].fillna(-1)).all()
    assert alone["correct"].isna().all() and str(alone["correct"].dtype) == "boolean"
