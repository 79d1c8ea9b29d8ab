"""Reliability tests: fixtures, the counts for the note, and the uninterrupted reference run of ``smoke``.

The reference run is started in a subprocess as soon as collection finds a test that needs it, so
it runs beside the cheap tests and the kill chain instead of after them (the whole of
``tests/reliability`` must stay under three minutes on two shared cores).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from reliability_helpers import BackgroundRun, Toy, snapshot_code

REFERENCE = "smoke_reference"


def _code(config) -> Path:
    if getattr(config, "_bench_code", None) is None:
        config._bench_code = snapshot_code(Path(config._tmp_path_factory.mktemp("code")))
    return config._bench_code


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: start it only if a selected test needs it
def pytest_collection_modifyitems(session, config, items):
    if any(REFERENCE in getattr(item, "fixturenames", ()) for item in items):
        base = Path(config._tmp_path_factory.mktemp("reference"))  # the session's tmp factory
        config._bench_reference = BackgroundRun(base, _code(config))


@pytest.fixture(scope="session")
def code_snapshot(request) -> Path:
    """The copy of the package every ``bench`` subprocess of this session runs (see ``snapshot_code``)."""
    return _code(request.config)


def pytest_sessionfinish(session, exitstatus):
    run = getattr(session.config, "_bench_reference", None)
    if run is not None:
        run.stop()


@pytest.fixture(scope="session")
def note(request) -> dict:
    """Counts for the issue's note (bad inputs tried by kind, kill points survived), printed at the end."""
    if not hasattr(request.config, "_bench_note"):
        request.config._bench_note = {}
    return request.config._bench_note


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    counts = getattr(config, "_bench_note", None)
    if counts:
        terminalreporter.write_sep("-", "reliability counts")
        for key, value in counts.items():
            terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(scope="session")
def smoke_reference(request) -> Path:
    """The output folder of an uninterrupted ``bench run smoke`` (own data root, CPU, one thread)."""
    run = getattr(request.config, "_bench_reference", None)
    if run is None:  # pragma: no cover - collection always starts it
        base = Path(request.config._tmp_path_factory.mktemp("reference"))
        run = request.config._bench_reference = BackgroundRun(base, _code(request.config))
    t0 = time.time()
    out = run.wait()
    request.config._bench_reference_wait = time.time() - t0
    return out


@pytest.fixture
def toy(tmp_path, monkeypatch) -> Toy:
    monkeypatch.delenv("BENCH_MASK_ROOT", raising=False)
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    return Toy(tmp_path)
