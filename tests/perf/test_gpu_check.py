"""``make gpu-check`` (bench.perf.gpu_check) where there is no GPU: its one-line refusal, and its pieces on
the CPU at toy size."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bench.perf import gpu_check
from bench.perf.gpu_check import map_agreement


def test_without_a_gpu_it_says_so_in_one_line_and_fails(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no CUDA GPU" in err and "--device cpu --tiny" in err
    assert not (tmp_path / "r.md").exists()


def test_map_agreement_on_known_maps():
    a = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    same = map_agreement(a, a)
    assert same["spearman"] == pytest.approx(1.0) and same["pearson"] == pytest.approx(1.0)
    assert same["max_abs_diff"] == 0 and same["rel_diff"] == 0 and same["n_constant"] == 0
    b = a.copy()
    b[0, 0, 0] += 3.1  # the smallest pixel of image 0 becomes the 4th smallest: ranks move, values barely
    near = map_agreement(b, a)
    assert near["min_spearman"] < 1 and near["max_abs_diff"] == pytest.approx(3.1)
    assert near["rel_diff"] == pytest.approx(3.1 / 31)
    flat = map_agreement(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))
    assert math.isnan(flat["spearman"]) and flat["n_constant"] == 1 and flat["rel_diff"] == 0


@pytest.mark.slow
def test_the_check_runs_on_the_cpu_at_toy_size(tmp_path):
    """Every step of the check on the CPU (``--device cpu --tiny``) in a tight budget: the steps it reaches give
    numbers, the ones it cuts are named in the report."""
    out = tmp_path / "gpu-check.md"
    rc = gpu_check.main(["--device", "cpu", "--tiny", "--budget", "25", "--out", str(out),
                         "--data-root", str(tmp_path / "data")])
    assert rc == 0
    text = out.read_text()
    r = json.loads(out.with_suffix(".json").read_text())
    assert "error" not in r, r.get("error")
    assert text.startswith("# GPU check") and "## Train" in text and r["train"]["images_per_s"] > 0
    if "repeat_identical" in r["train"]:
        assert r["train"]["repeat_identical"] is True  # the CPU repeats bit for bit
    else:
        assert any(line.startswith("train: the repeat") for line in r["over"])
    rows = r["explain"]["rows"]
    done = [m for m, v in rows.items() if "skipped" not in v]
    assert done and all(rows[m]["finite"] for m in done)
    assert all(f"| {m} | skipped" in text for m, v in rows.items() if "skipped" in v)
    for m, v in r.get("agreement", {}).get("rows", {}).items():  # the same device twice: identical maps
        if "skipped" not in v:
            assert v["max_abs_diff"] == 0 and v["repeat_max_abs_diff"] == 0, m
    assert ("stopped early" in text) == bool(r["over"])
