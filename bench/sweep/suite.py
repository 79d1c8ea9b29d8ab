"""Suites: what a sweep runs, as a TOML file read into frozen dataclasses.

A suite is datasets x models x seeds (x folds) x methods x metrics, plus training, explanation and
scoring options. Built-in suites ship in ``bench/suites/``; any TOML file with the same keys works.
Suite files are data: they are parsed, never executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import ConfigError, RunConfig, apply_overrides, from_dict, load_run_config, read_toml

SUITE_DIR = Path(__file__).resolve().parent.parent / "suites"


@dataclass(frozen=True)
class ExplainOptions:
    max_images: int = 48  # test images with a lesion mask explained per (dataset, model, seed, fold)
    batch_size: int = 32
    layer: str = ""  # "" = the model's default_cam_layer
    seed: int = 0  # for the stochastic methods
    options: dict = field(default_factory=dict)  # method name -> {option: value}


@dataclass(frozen=True)
class ScoreOptions:
    pointing_tolerance: float = 0.0  # pixels
    iou_threshold: Any = "otsu"  # "otsu" or a float in [0, 1]
    deletion_steps: int = 16
    deletion_batch_size: int = 256
    sanity_methods: tuple[str, ...] = ()  # methods given the randomisation test; ("all",) = every method
    sanity_images: int = 8


@dataclass(frozen=True)
class ReportOptions:
    bootstrap: int = 1000
    gallery_per_class: int = 2


@dataclass(frozen=True)
class Suite:
    name: str = "custom"
    description: str = ""
    preset: str = "quick"  # training preset (bench/presets) the [data]/[model]/[train] tables refine
    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ("ff_vgg19",)
    seeds: tuple[int, ...] = (0,)
    folds: tuple[int, ...] = ()  # which CV folds to run; () = all folds of data.folds
    methods: tuple[str, ...] = ("grad_cam",)
    metrics: tuple[str, ...] = ()
    data: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    explain: ExplainOptions = field(default_factory=ExplainOptions)
    score: ScoreOptions = field(default_factory=ScoreOptions)
    report: ReportOptions = field(default_factory=ReportOptions)
    source: str = ""

    def run_config(self, dataset: str, model: str, seed: int) -> RunConfig:
        """The resolved training configuration of one (dataset, model, seed)."""
        return load_run_config(
            self.preset,
            data={**self.data, "dataset": dataset},
            model={**self.model, "name": model},
            train={**self.train, "seed": seed},
        )

    def fold_indices(self, cfg: RunConfig) -> list[int]:
        folds = list(self.folds) or list(range(cfg.data.folds))
        bad = [f for f in folds if not 0 <= f < cfg.data.folds]
        if bad:
            raise ConfigError(f"suite {self.name}: folds {bad} out of range for data.folds={cfg.data.folds}")
        return folds


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.toml"))


def load_suite(name_or_path: str | Path = "quick", overrides: list[str] | tuple[str, ...] = ()) -> Suite:
    """Load a built-in suite by name or a suite TOML file, then apply ``key=value`` overrides.

    Overrides address the suite's keys: ``explain.max_images=8``, ``train.epochs=2``,
    ``methods=["grad_cam","centre"]``. Unknown keys and wrong types raise :class:`ConfigError`
    naming the key and the file. Every method, metric, model and dataset name is checked.
    """
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = SUITE_DIR / f"{name_or_path}.toml"
        if not p.is_file():
            raise ConfigError(f"unknown suite {name_or_path!r}; built-in suites: {', '.join(suite_names())}, or a .toml path")
    raw = apply_overrides(read_toml(p), list(overrides))
    raw.setdefault("name", p.stem)
    suite = from_dict(Suite, raw, source=str(p))
    suite = _resolve_all(suite)
    _check_names(suite)
    return Suite(**{**suite.__dict__, "source": str(p)})


def _resolve_all(suite: Suite) -> Suite:
    from bench.attribution import available_methods
    from bench.metrics import METRICS

    changes: dict[str, Any] = {}
    if suite.methods == ("all",):
        changes["methods"] = tuple(available_methods())
    if suite.metrics in ((), ("all",)):
        changes["metrics"] = tuple(METRICS.names())
    if suite.score.sanity_methods == ("all",):
        from dataclasses import replace

        changes["score"] = replace(suite.score, sanity_methods=changes.get("methods", suite.methods))
    return Suite(**{**suite.__dict__, **changes}) if changes else suite


def _check_names(suite: Suite) -> None:
    from bench.attribution import available_methods
    from bench.metrics import METRICS
    from bench.models import MODELS

    where = suite.source or suite.name
    for kind, names, valid in (
        ("method", suite.methods + tuple(suite.score.sanity_methods), available_methods()),
        ("metric", suite.metrics, METRICS.names()),
        ("model", suite.models, MODELS.names()),
    ):
        bad = [n for n in names if n not in valid]
        if bad:
            raise ConfigError(f"suite {where}: unknown {kind} {bad}; valid: {', '.join(valid)}")
    if not suite.datasets:
        raise ConfigError(f"suite {where}: no datasets listed")
    suite.run_config(suite.datasets[0], suite.models[0], suite.seeds[0])  # checks data/model/train keys
