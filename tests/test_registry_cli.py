"""``bench list``: every registered name with its one-line facts, read from the real registries."""

from __future__ import annotations

import pytest

from bench.cli import main


def _lines(capsys, *argv: str) -> dict[str, str]:
    """Run ``bench list ARGV`` and return ``{first word: line}`` of what it printed."""
    assert main(["list", *argv]) == 0
    out = capsys.readouterr().out
    return {line.split()[0]: line for line in out.splitlines() if line.strip()}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("  ") if c.strip()]


def test_methods_show_family_layer_and_default_options(capsys):
    from bench.attribution import METHODS

    lines = _lines(capsys, "methods")
    assert lines["methods"] == f"methods ({len(METHODS.names())})"
    assert set(METHODS.names()) <= set(lines)
    assert _cells(lines["grad_cam"])[:3] == ["grad_cam", "cam", "yes"]
    assert _cells(lines["saliency"])[:3] == ["saliency", "gradient", "no"]
    assert _cells(lines["random"]) == ["random", "baseline", "no", "seed=0"]
    assert _cells(lines["centre"]) == ["centre", "baseline", "no", "sigma=0.25"]
    assert _cells(lines["edge"]) == ["edge", "baseline", "no", "-"]


def test_metrics_show_kind_and_direction(capsys):
    lines = _lines(capsys, "metrics")
    assert _cells(lines["deletion"]) == ["deletion", "faithfulness", "lower is better", "-"]
    assert _cells(lines["insertion"]) == ["insertion", "faithfulness", "higher is better", "-"]
    assert _cells(lines["pointing_game"]) == ["pointing_game", "localisation", "higher is better", "-"]
    assert _cells(lines["energy_pointing_game"])[-1] == "relevance_mass"


def test_models_show_their_cam_layers(capsys):
    from bench.models import create_model

    lines = _lines(capsys, "models")
    ff, vgg = _cells(lines["ff_vgg19"]), _cells(lines["vgg19"])
    assert ff[1] == "block5_conv3" and vgg[1] == "block5_conv4"
    layers = ff[2].split(", ")
    assert {"block3_pool", "block4_pool", "block5_conv3"} <= set(layers) and "block5_conv4" not in layers
    assert layers == list(create_model("ff_vgg19", 2, width=0.125, head_units=8).cam_layers)


def test_suites_and_datasets(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    lines = _lines(capsys, "suites")
    assert set(lines) >= {"suites", "smoke", "quick", "paper", "shortcuts"}
    assert _cells(lines["smoke"])[1].startswith("Two small phantoms, five methods, every metric")

    (tmp_path / "mine.toml").write_text('key = "mine"\ntitle = "Mine"\nmodality = "MRI"\nclasses = ["a", "b", "c"]\n'
                                        "counts = [1, 1, 1]\n")
    lines = _lines(capsys, "datasets", "--root", str(tmp_path))
    assert lines["datasets"] == "datasets (8)"  # the seven packaged cards and the user's own
    assert _cells(lines["ham10000"]) == ["ham10000", "dermoscopy", "Actinic Keratoses, Basal cell carcinoma, "
                                         "Benign keratosis, Melanoma, Melanocytic nevi"]
    assert _cells(lines["lidc_idri"]) == ["lidc_idri", "CT", "Benign, Malignant"]
    assert _cells(lines["mine"]) == ["mine", "MRI", "a, b, c"]


def test_no_argument_lists_all_five_kinds(capsys):
    lines = _lines(capsys)
    assert {"methods", "metrics", "models", "suites", "datasets"} <= set(lines)
    assert {"grad_cam", "deletion", "ff_vgg19", "smoke", "ham10000"} <= set(lines)


def test_an_unknown_kind_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["list", "widgets"])
    assert "invalid choice: 'widgets'" in capsys.readouterr().err
