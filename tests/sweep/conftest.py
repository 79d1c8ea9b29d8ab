"""A smoke run shared by the sweep tests (module scope: the suite runs once per module)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root of its own, so tests never touch the repository's datasets/."""
    root = tmp_path_factory.mktemp("data") / "datasets"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_root) -> Path:
    from bench.sweep import run_suite

    import torch

    out = tmp_path_factory.mktemp("runs") / "smoke"
    threads = torch.get_num_threads()
    try:
        run_suite("smoke", out=out, overrides=[f"data.root='{data_root}'", "train.threads=2"], progress=False)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture
def smoke_copy(smoke_run, tmp_path) -> Path:
    dst = tmp_path / "smoke"
    shutil.copytree(smoke_run, dst)
    return dst
