"""A built wheel installs and runs from any directory: the seed cards ship inside the package, and the
default data root of an installed package is ``./datasets`` of the current directory, never site-packages.

The wheel is built offline (``--no-build-isolation``: setuptools comes from this venv) from a copy of the
sources, so the working tree gets no ``build/`` or ``*.egg-info``; it is installed with ``--no-deps`` into a
fresh venv that sees this venv's site-packages through a ``.pth`` file (torch etc. need no download; the
``.pth`` files there, among them the editable install of ``bench``, are not processed, so ``bench`` is
imported from the wheel).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEED_CARDS = {"cells", "cov_ct", "cov_x", "ham10000", "lidc_idri", "mpip", "pet_ct"}


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel of this checkout installed; returns its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "bench", src / "bench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", wheels, src])
    wheel, = wheels.glob("bench-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv])
    purelib = Path(_run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
                   .stdout.strip())
    ours = [*site.getsitepackages(), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel])
    # after the install, so that pip does not see this venv's (editable) bench as already installed
    (purelib / "_parent_env.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    return venv / "bin"


def _env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BENCH_DATA_ROOT", "BENCH_MASK_ROOT", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="2", **more)
    return env


def _card_keys(listing: str) -> set[str]:
    """The keys of the table ``bench datasets`` prints (after its ``key aliases ...`` header line)."""
    lines = listing.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("key "))
    return {line.split()[0] for line in lines[start + 1:] if line.strip() and not line.startswith("phantoms:")}


@pytest.mark.slow
def test_the_wheel_ships_the_cards_and_never_points_into_site_packages(installed, tmp_path):
    where = _run([installed / "python", "-c", "import bench.data.paths as p; print(p.__file__); "
                  "print(p.source_checkout()); print(sorted(x.stem for x in p.CARDS_DIR.glob('*.toml')))"],
                 cwd=tmp_path, env=_env()).stdout.splitlines()
    assert Path(where[0]).is_relative_to(installed.parent), f"bench imported from {where[0]}, not the wheel"
    assert where[1] == "None"
    assert eval(where[2]) == sorted(SEED_CARDS)

    listing = _run([installed / "bench", "datasets"], cwd=tmp_path, env=_env()).stdout
    assert f"data root: {tmp_path.resolve() / 'datasets'}" in listing.splitlines()[0]  # ./datasets, not site-packages
    assert _card_keys(listing) == SEED_CARDS


@pytest.mark.slow
def test_an_installed_bench_runs_the_smoke_suite_from_another_directory(installed, tmp_path):
    data, out, elsewhere = tmp_path / "data", tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(BENCH_DATA_ROOT=str(data))
    _run([installed / "bench", "run", "smoke", "--out", out, "--set", "train.epochs=1",
          "--set", "datasets=['synthetic-cov_ct']", "--set", "train.threads=2"],
         cwd=elsewhere, env=env, timeout=240)
    assert (out / "results.parquet").is_file() and (out / "scorecard.html").is_file()
    assert (data / "synthetic-cov_ct" / "manifest.csv").is_file()
    assert not (elsewhere / "datasets").exists()  # BENCH_DATA_ROOT was used

    listing = _run([installed / "bench", "datasets"], cwd=elsewhere, env=env).stdout
    assert f"data root: {data}" in listing
    assert _card_keys(listing) == SEED_CARDS
