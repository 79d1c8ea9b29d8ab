"""Helpers of the reliability tests: ``bench`` subprocesses, and a hand-made prepared dataset."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def snapshot_code(dest: Path) -> Path:
    """Copy the ``bench`` package (the seed cards ship inside it, ``bench/cards/``) to ``dest`` and return it.

    The subprocess runs import ``bench`` from there (``bench_env(code)``), so every run of a session uses
    the same code even while someone edits the working tree: the job keys hash the sources, and an
    edit between two runs would (rightly) recompute, and may change, results.
    """
    shutil.copytree(REPO / "bench", dest / "bench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def bench_env(code: Path) -> dict[str, str]:
    """Environment of a ``bench`` subprocess: the package from ``code`` (see :func:`snapshot_code`), CPU
    only, one thread (so two runs never differ by thread count, and two of them share two cores fairly),
    no data/mask root inherited from the caller."""
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_DATA_ROOT", "BENCH_MASK_ROOT", "BENCH_DEBUG")}
    env.update(PYTHONPATH=str(code), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONHASHSEED="0")
    return env


def bench_run_cmd(out: Path, data_root: Path, *extra: str) -> list[str]:
    """``bench run smoke --out OUT --set data.root='ROOT'`` as a command line."""
    return [sys.executable, "-m", "bench.cli", "run", "smoke", "--out", str(out),
            "--set", f"data.root='{data_root}'", *extra]


class BackgroundRun:
    """A ``bench run smoke`` started in the background into its own data root and output folder."""

    def __init__(self, base: Path, code: Path) -> None:
        self.data_root = base / "data" / "datasets"
        self.data_root.mkdir(parents=True)
        self.out = base / "out"
        self.log = base / "log.txt"
        self._fh = open(self.log, "wb")
        cmd = bench_run_cmd(self.out, self.data_root, "--no-report")  # the report is a function of the tables
        self.proc = subprocess.Popen(cmd, cwd=code, env=bench_env(code),
                                     stdout=self._fh, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 900) -> Path:
        rc = self.proc.wait(timeout=timeout)
        self._fh.close()
        if rc != 0:
            raise AssertionError(f"the reference smoke run failed (rc {rc}):\n{self.log.read_text()[-3000:]}")
        return self.out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._fh.close()


# ---------------------------------------------------------------------------------------------
# a hand-made prepared dataset


CARD = 'key = "toy"\ntitle = "Toy"\nmodality = "test"\nclasses = ["neg", "pos"]\ncounts = [2, 2]\npositive = "pos"\n'


class Toy:
    """A prepared dataset ``toy`` under ``<tmp>/datasets`` (card in the data root) with masks under
    ``<tmp>/reference_masks/toy``. ``add`` writes an image (and mask) and a manifest row."""

    def __init__(self, tmp: Path) -> None:
        import numpy as np

        self.root = tmp / "datasets"
        self.dir = self.root / "toy"
        self.mdir = tmp / "reference_masks" / "toy"
        self.dir.mkdir(parents=True)
        self.mdir.mkdir(parents=True)
        (self.root / "toy.toml").write_text(CARD)
        self.rows: list[dict] = []
        rng = np.random.default_rng(0)
        self.grey = (rng.random((16, 16)) * 255).astype(np.uint8)
        self.mask = np.zeros((16, 16), np.uint8)
        self.mask[4:9, 5:11] = 255

    def add(self, image: str, label: str = "neg", mask: str = "", split: str = "", group: str = "") -> int:
        """Append a manifest row; returns its line number (the header is line 1)."""
        self.rows.append({"image": image, "label": label, "mask": mask, "group": group, "split": split})
        return len(self.rows) + 1

    def good(self, name: str, label: str = "neg", with_mask: bool = False, split: str = "") -> int:
        from PIL import Image

        Image.fromarray(self.grey).save(self.dir / name)
        mask = ""
        if with_mask:
            mask = f"{Path(name).stem}_m.png"
            Image.fromarray(self.mask).save(self.mdir / mask)
        return self.add(name, label, mask, split)

    def write(self, header: str = "image,label,mask,group,split") -> Path:
        cols = header.split(",")
        lines = [header] + [",".join(r.get(c, "") for c in cols) for r in self.rows]
        path = self.dir / "manifest.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
