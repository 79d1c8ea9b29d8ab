"""Fixtures of the report tests: a fake run folder (see fake_run.py) and its report, built once."""

from __future__ import annotations

import pytest
from fake_run import RESAMPLES, make_fake_run

from bench.report.scorecard import build_report



@pytest.fixture(scope="session")
def full_run(tmp_path_factory):
    """(run folder, {name: path}) of a fake run with every optional input, reported once."""
    run = make_fake_run(tmp_path_factory.mktemp("run_full"))
    return run, build_report(run, n_resamples=RESAMPLES)
