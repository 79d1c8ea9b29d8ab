"""The smoke suite end to end on the GPU, and the perf scaling stages there."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = [pytest.mark.cuda, pytest.mark.slow]


def test_the_smoke_suite_runs_on_the_gpu(cuda_root, tmp_path):
    from bench.sweep import run_suite

    out = tmp_path / "smoke"
    results = run_suite("smoke", out=out, overrides=[f"data.root='{cuda_root}'", "train.device='cuda'"],
                        progress=False)
    assert len(results) > 0 and (out / "results.parquet").is_file()
    errors = (out / "errors.jsonl").read_text().strip() if (out / "errors.jsonl").is_file() else ""
    assert not errors, errors
    values = pd.read_parquet(out / "results.parquet")["value"]
    assert values.notna().any()
    assert json.loads((out / "run.json").read_text())  # the run's record, hardware included


def test_the_scaling_stages_run_on_the_gpu(cuda_root):
    from bench.perf.scaling import Stages
    from bench.sweep.suite import load_suite

    suite = load_suite("smoke", ["train.device='cuda'", "train.epochs=1"])
    st = Stages(suite, "synthetic-lidc_idri", str(cuda_root), log=lambda msg: None)
    assert st.device.type == "cuda"
    times = st.explain_and_score(4, 32)
    assert set(times) == set(suite.methods)
    assert st.sanity(32, 2, ["grad_cam"]) > 0
    assert st.cam_channels(32) > 0
