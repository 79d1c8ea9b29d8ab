"""Suites: what a sweep runs, as a TOML file read into frozen dataclasses.

A suite is datasets x models x seeds (x folds) x methods x metrics, plus training, explanation and
scoring options. Built-in suites ship in ``bench/suites/``; any TOML file with the same keys works.
Suite files are data: they are parsed, never executed.
"""

from __future__ import annotations

import inspect
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
    options: dict = field(default_factory=dict)  # metric name -> {option: value} (e.g. a plugin metric's options)


@dataclass(frozen=True)
class ReportOptions:
    bootstrap: int = 1000
    gallery_per_class: int = 2
    # the roles of bench.report.reference.Roles: every method is tested against `reference`; `baselines` are the
    # maps every method must beat; the best of `model_blind` is the floor of the relative-to-ceiling view
    reference: str = "grad_cam"
    baselines: tuple[str, ...] = ("centre", "random")
    model_blind: tuple[str, ...] = ("centre", "random", "edge")
    # an image is "verified" (its prediction depends on the lesion) when removing the lesion lowers the target's
    # probability by at least this much (results column lesion_used; bench.metrics.lesion_use)
    verified_drop: float = 0.25


@dataclass(frozen=True)
class VerifyOptions:
    """Model-verified ground truth (``[verify]``): one job per trained model measures, for every explained image,
    the drop of the target's probability when its lesion is removed (results column ``lesion_drop``)."""

    enabled: bool = True
    dilate: int = 2  # px the mask is dilated by before inpainting (real data; a phantom is redrawn without its lesion)


@dataclass(frozen=True)
class ClassSensitivityOptions:
    """Class sensitivity (``[class_sensitivity]``): composites of two test images carrying lesions of two classes,
    each explained for both classes (``class_sensitivity.parquet``; bench.metrics.class_sensitivity)."""

    composites: int = 0  # composites per trained model and method; 0 = off
    datasets: tuple[str, ...] = ()  # run it on the suite's datasets among these; () = all (needs two lesion classes)
    methods: tuple[str, ...] = ()  # () = the suite's methods
    dilate: int = 2  # px around each lesion that is pasted with it, and half the least gap between the two
    seed: int = 0  # of the drawing of the image pairs


@dataclass(frozen=True)
class CheckpointOptions:
    """A model that is already trained, evaluated instead of training one (``[checkpoint]``, or ``checkpoint =
    "PATH"``; ``bench run SUITE --checkpoint PATH``). See :mod:`bench.sweep.checkpoints`."""

    path: str = ""  # "" = train as usual; else a bench checkpoint or a plain state dict (relative: to the cwd)
    model: str = ""  # plain state dict: the registered model name ("" = the suite's one model)
    classes: tuple[str, ...] = ()  # plain state dict: the class of each output, in order (the dataset's)


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
    # reference maps scored beside the methods, never ranked (bench.attribution.references): the lesion mask
    # (oracle), the mask at the explained layer's grid (oracle_grid), or at another layer (oracle_grid@<layer>)
    references: tuple[str, ...] = ("oracle", "oracle_grid")
    metrics: tuple[str, ...] = ()
    data: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    explain: ExplainOptions = field(default_factory=ExplainOptions)
    score: ScoreOptions = field(default_factory=ScoreOptions)
    report: ReportOptions = field(default_factory=ReportOptions)
    checkpoint: CheckpointOptions = field(default_factory=CheckpointOptions)
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    class_sensitivity: ClassSensitivityOptions = field(default_factory=ClassSensitivityOptions)
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
    naming the key and the file. Every method, metric, model and dataset name is checked, and so is every
    option that reaches a method (``explain.options``) or a metric (:func:`metric_options`): an option the
    method or metric does not take is a :class:`ConfigError` that names the file, the method or metric, the
    bad key and the valid ones.
    """
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = SUITE_DIR / f"{name_or_path}.toml"
        if not p.is_file():
            raise ConfigError(f"unknown suite {name_or_path!r}; built-in suites: {', '.join(suite_names())}, or a .toml path")
    raw = _checkpoint_table(apply_overrides(_checkpoint_table(read_toml(p)), list(overrides)))
    raw.setdefault("name", p.stem)
    suite = from_dict(Suite, raw, source=str(p))
    suite = _resolve_all(suite)
    suite = Suite(**{**suite.__dict__, "source": str(p)})
    _check_names(suite)
    _check_options(suite)
    _check_checkpoint(suite)
    return suite


def _checkpoint_table(raw: dict) -> dict:
    """``checkpoint = "PATH"`` (the short form) as the table ``[checkpoint] path = "PATH"``."""
    if isinstance(raw.get("checkpoint"), str):
        raw = {**raw, "checkpoint": {"path": raw["checkpoint"]}}
    return raw


def _check_checkpoint(suite: Suite) -> None:
    """A ``[checkpoint]`` names a readable checkpoint whose classes are each dataset's (every problem a clear
    error before anything runs: :func:`bench.sweep.checkpoints.checkpoint_models`)."""
    c = suite.checkpoint
    if not c.path:
        if c.model or c.classes:
            raise ConfigError(f"suite {suite.source or suite.name}: checkpoint.model / checkpoint.classes (--model, "
                              "--classes) describe a checkpoint, but no checkpoint.path (--checkpoint) is given")
        return
    from bench.sweep.checkpoints import checkpoint_models

    for dataset in suite.datasets:
        checkpoint_models(suite, dataset)


def computed_by(metric: str) -> str:
    """The computation that yields ``metric`` (deletion and insertion share ``deletion_insertion``, ROAD's two
    orders ``road``)."""
    from bench.metrics import METRICS

    return METRICS.meta(metric).get("computed_by", metric)


def score_jobs(metrics) -> dict[str, list[str]]:
    """``{computation: [the metrics of ``metrics`` it yields]}`` in the order of ``metrics``: one score job each."""
    jobs: dict[str, list[str]] = {}
    for m in metrics:
        jobs.setdefault(computed_by(m), []).append(m)
    return jobs


def metric_keywords(metric: str) -> set[str]:
    """The options ``metric`` takes: its meta ``options`` and the keyword-only parameters (but
    ``return_degenerate``) of the function the sweep calls (its ``computed_by`` computation, if any)."""
    import bench.metrics
    from bench.metrics import METRICS

    meta = METRICS.meta(metric)
    fn = getattr(bench.metrics, meta["computed_by"], None) if "computed_by" in meta else None
    params = inspect.signature(fn or METRICS.get(metric)).parameters.values()
    keywords = {p.name for p in params if p.kind == p.KEYWORD_ONLY} - {"return_degenerate"}
    return set(meta.get("options", {})) | keywords


def metric_options(suite: Suite, metric: str) -> dict[str, Any]:
    """The options the suite's ``[score]`` table gives the metric computation ``metric`` (a localisation
    metric, or ``deletion_insertion``): its named keys (``pointing_tolerance``, ...), then ``score.options.<metric>``."""
    s = suite.score
    own = dict(s.options.get(metric, {})) if isinstance(s.options.get(metric, {}), dict) else {}
    if metric == "pointing_game":
        return {"tolerance": s.pointing_tolerance, **own}
    if metric == "iou":
        return {"threshold": s.iou_threshold, **own}
    if metric == "deletion_insertion":
        return {"steps": s.deletion_steps, "batch_size": s.deletion_batch_size, **own}
    if metric == "road":  # ROAD's steps, noise and seed: score.options.road (defaults: bench.metrics.road)
        return {"batch_size": s.deletion_batch_size, **own}
    return own


def _refused_methods(model: str) -> dict[str, str]:
    """The methods registered model ``model`` does not run (method -> why; its ``unsupported_methods``)."""
    from bench.models import MODELS

    return dict(getattr(MODELS.get(model), "unsupported_methods", None) or {})


def _resolve_all(suite: Suite) -> Suite:
    """``methods = ["all"]``: every method that every model of the suite runs (a method a model refuses, e.g.
    guided backprop on a ViT, is left out, with a warning that names it and why; named explicitly, it is an
    error); ``metrics = ["all"]`` or none: every metric; ``score.sanity_methods = ["all"]``: the methods."""
    import warnings

    from bench.attribution import available_methods
    from bench.metrics import METRICS
    from bench.models import MODELS

    changes: dict[str, Any] = {}
    if suite.methods == ("all",):
        refused: dict[str, str] = {}
        for model in suite.models:
            if model in MODELS.names():  # an unknown model is _check_names' error
                for m, why in _refused_methods(model).items():
                    refused.setdefault(m, f"{model}: {why}")
        changes["methods"] = tuple(m for m in available_methods() if m not in refused)
        if refused:
            warnings.warn(f"suite {suite.source or suite.name}: methods = ['all'] leaves out "
                          + "; ".join(f"{m} ({why})" for m, why in refused.items()), stacklevel=3)
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

    from bench.attribution.references import REFERENCES, is_reference

    where = suite.source or suite.name
    bad = [r for r in suite.references if not is_reference(r)]
    if bad:
        raise ConfigError(f"suite {where}: unknown reference {bad}; valid: {', '.join(REFERENCES)}, "
                          "oracle_grid@<layer>")
    roles = (suite.report.reference, *suite.report.baselines, *suite.report.model_blind)
    for kind, names, valid in (
        ("method", suite.methods + tuple(suite.score.sanity_methods), available_methods()),
        ("method in [report] (reference, baselines, model_blind)", roles, available_methods()),
        ("metric", suite.metrics, METRICS.names()),
        ("model", suite.models, MODELS.names()),
    ):
        bad = [n for n in names if n not in valid]
        if bad:
            raise ConfigError(f"suite {where}: unknown {kind} {bad}; valid: {', '.join(valid)}")
    for model in suite.models:  # methods a model refuses (e.g. guided backprop on a ViT, which has no ReLU)
        refused = _refused_methods(model)
        bad = [m for m in dict.fromkeys(suite.methods + tuple(suite.score.sanity_methods)) if m in refused]
        if bad:
            raise ConfigError(f"suite {where}: model {model!r} does not run method(s) {bad}: "
                              + "; ".join(f"{m}: {refused[m]}" for m in bad) + ". Leave them out of methods")
    if not suite.datasets:
        raise ConfigError(f"suite {where}: no datasets listed")
    cs = suite.class_sensitivity
    from bench.data.cards import canonical_key

    for d in cs.datasets:  # those the suite does not run are left out (e.g. --set datasets=[...]); typos are errors
        try:
            canonical_key(d, suite.data.get("root", ""))
        except ValueError as exc:
            raise ConfigError(f"suite {where}: class_sensitivity.datasets: {exc}") from None
    bad = [m for m in cs.methods if m not in available_methods()]
    if bad:
        raise ConfigError(f"suite {where}: unknown method {bad} in class_sensitivity.methods; valid: "
                          f"{', '.join(available_methods())}")
    if cs.composites < 0 or cs.dilate < 0 or suite.verify.dilate < 0:
        raise ConfigError(f"suite {where}: class_sensitivity.composites, class_sensitivity.dilate and verify.dilate "
                          "must be >= 0")
    suite.run_config(suite.datasets[0], suite.models[0], suite.seeds[0])  # checks data/model/train keys


def _check_options(suite: Suite) -> None:
    """Every method option of ``explain.options`` and every metric option a method or metric does not take is
    an error (else it would fail every image of a job, or be ignored)."""
    from bench.attribution import METHODS

    where = suite.source or suite.name
    for method, options in suite.explain.options.items():
        if method not in METHODS:
            raise ConfigError(f"suite {where}: explain.options names unknown method {method!r}; "
                              f"valid: {', '.join(METHODS.names())}")
        if not isinstance(options, dict):
            raise ConfigError(f"suite {where}: explain.options.{method} must be a table of options, got {options!r}")
        _unknown_keys(where, f"method {method!r} (explain.options.{method})", options, METHODS.meta(method)["options"])
    from bench.metrics import METRICS

    computations = {computed_by(m) for m in METRICS.names()}
    for name, options in suite.score.options.items():
        if name not in computations:
            hint = " (deletion and insertion share score.options.deletion_insertion)" if name in METRICS else ""
            raise ConfigError(f"suite {where}: score.options names {name!r}, which is no metric computation{hint}; "
                              f"valid: {', '.join(sorted(computations))}")
        if not isinstance(options, dict):
            raise ConfigError(f"suite {where}: score.options.{name} must be a table of options, got {options!r}")
    for computation, metrics in score_jobs(suite.metrics).items():
        what = f"metric {metrics[0]!r}" + (f" (computed by {computation})" if computation != metrics[0] else "")
        _unknown_keys(where, what, metric_options(suite, computation), metric_keywords(metrics[0]))


def _unknown_keys(where: str, what: str, options: dict, valid) -> None:
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ConfigError(f"suite {where}: {what} has no option {', '.join(bad)}; valid options: "
                          f"{', '.join(sorted(valid)) or 'none'}")
