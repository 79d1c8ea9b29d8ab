"""Safe loading: a checkpoint carrying pickled code is refused (and the code never runs); suite and card
files are TOML data, never executed; no module of the package evaluates or unpickles anything."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from bench.config import ConfigError
from bench.sweep import load_suite
from bench.train import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _tried(note: dict, kind: str, n: int = 1) -> None:
    counts = note.setdefault("bad inputs tried, by kind", {})
    counts[kind] = counts.get(kind, 0) + n


class _Payload:
    """Unpickling this runs ``os.system`` (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint (the format ``bench train`` writes) of an untrained smoke-sized model."""
    from bench.config import load_run_config
    from bench.data.splits import Split
    from bench.train import TrainResult, build_model, save_checkpoint

    cfg = load_run_config("smoke", data={"dataset": "synthetic-cov_ct"})
    model = build_model(cfg, 2).eval()
    res = TrainResult(model=model, config=cfg, class_names=["COVID-19", "Normal"], metrics={"n": 0},
                      split=Split(*[torch.zeros(0)] * 3), test_ids=[], test_labels=None, test_probs=None)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt", res)


def test_a_bench_checkpoint_loads(checkpoint):
    model, info = load_checkpoint(checkpoint)
    assert info["class_names"] == ["COVID-19", "Normal"] and not model.training


@pytest.mark.parametrize("where", ["top level", "inside the state dict", "inside the config"])
def test_a_checkpoint_with_pickled_code_is_refused_and_the_code_never_runs(note, checkpoint, tmp_path, where):
    marker = tmp_path / "pwned"
    blob = torch.load(checkpoint, weights_only=True)
    if where == "top level":
        blob["extra"] = _Payload(marker)
    elif where == "inside the state dict":
        blob["state_dict"]["evil"] = _Payload(marker)
    else:
        blob["config"]["train"]["lr"] = _Payload(marker)
    bad = tmp_path / "evil.pt"
    torch.save(blob, bad)
    _tried(note, "checkpoint")
    with pytest.raises(ValueError, match=r"evil\.pt: refused to load.*never unpickles code"):
        load_checkpoint(bad)
    assert not marker.exists()


@pytest.mark.parametrize("content, says", [
    (b"", "refused to load"),
    (b"not a checkpoint at all", "refused to load"),
    ("truncated", "refused to load"),
    ("tensor only", "not a bench checkpoint"),
    ("wrong shapes", "does not match the model"),
])
def test_broken_checkpoints_are_clear_errors(note, checkpoint, tmp_path, content, says):
    _tried(note, "checkpoint")
    bad = tmp_path / "broken.pt"
    if content == "truncated":
        data = checkpoint.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif content == "tensor only":
        torch.save(torch.zeros(3), bad)
    elif content == "wrong shapes":
        blob = torch.load(checkpoint, weights_only=True)
        key = next(k for k, v in blob["state_dict"].items() if v.ndim == 4)
        blob["state_dict"][key] = torch.zeros(1, 1, 1, 1)
        torch.save(blob, bad)
    else:
        bad.write_bytes(content)
    with pytest.raises(ValueError, match=says) as err:
        load_checkpoint(bad)
    assert "broken.pt" in str(err.value)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_suite_files_are_data_never_executed(note, tmp_path):
    _tried(note, "suite", 4)
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    python_suite = tmp_path / "evil.toml"
    python_suite.write_text(f"import os\n{code}\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_suite(python_suite)
    string_suite = tmp_path / "strings.toml"
    string_suite.write_text(f'datasets = ["synthetic-cov_ct"]\nmethods = ["{code}"]\n')
    with pytest.raises(ConfigError, match="unknown method"):
        load_suite(string_suite)
    with pytest.raises(ConfigError, match="train.lr must be float"):
        load_suite("smoke", [f"train.lr={code}"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_suite("smoke", [f"{code}=1"])
    assert not marker.exists()


def test_no_module_evaluates_or_unpickles():
    """A static guard: no eval/exec, no pickle, no torch.load without weights_only, no allow_pickle."""
    pattern = re.compile(r"(?<!\.)\beval\(|(?<!\.)\bexec\(|\bpickle\b|\bdill\b|allow_pickle\s*=\s*True|weights_only\s*=\s*False"
                         r"|yaml\.load\(|shell\s*=\s*True|__import__\(")
    hits = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code) or ("torch.load(" in code and "weights_only=True" not in code):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)
