"""Configuration: TOML files read into frozen dataclasses.

Every run is described by a :class:`RunConfig` (sections ``data``, ``model``, ``train``). Presets
(``smoke``, ``quick``, ``paper``) are TOML files shipped in ``bench/presets/``. Unknown keys and
wrong types are errors naming the key and the file; ``--set section.key=value`` overrides a value
(the value is parsed as a TOML literal, falling back to a plain string).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

PRESET_DIR = Path(__file__).parent / "presets"

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message names the key and the source."""


@dataclass(frozen=True)
class DataConfig:
    """Which dataset and how its images are fed to the model."""

    dataset: str = "synthetic-lidc_idri"
    root: str = ""  # data root; "" = the default (BENCH_DATA_ROOT, else <repo>/datasets or ./datasets)
    image_size: int = 64  # square side in pixels the images and masks are resized to
    phantom_seed: int = 0  # phantoms: generator seed (fixed across training seeds: one dataset, many runs)
    phantom_scale: float = 0.2  # phantoms: fraction of the paper's Table 1 counts
    phantom_min_per_class: int = 60  # phantoms: at least this many images per class
    phantom_max_per_class: int = 200  # phantoms: at most this many images per class
    # phantoms: at least this many images in all, every class raised evenly to ceil(n / classes) (above
    # phantom_max_per_class if need be); 0 = no floor
    phantom_min_images: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.15
    folds: int = 1  # 1 = one stratified, grouped train/val/test split; k > 1 = k-fold CV
    # the split's shuffling seed, fixed across training seeds (as phantom_seed): the models of several seeds are
    # trained on one split and tested on the same images, so seeds compare models, not test sets
    split_seed: int = 0
    augment: bool = True  # flips and small rotations, applied to image and mask together
    confounder: str = ""  # shortcut suite: "" = none, else the cue's name (see bench.data.phantoms)
    confounder_p: float = 0.0  # probability the cue marks the chosen class in train/val
    # DataLoader processes reading training batches from the decoded cache (bench.data.batches); 0 = the
    # training process. Results do not depend on it (the batch order is drawn from the run's seed).
    workers: int = 0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "ff_vgg19"
    width: float = 0.25  # channel multiplier; 1.0 is the paper's network
    head_units: int = 2500
    batch_norm: bool = False  # BatchNorm after every backbone conv (vgg19_bn layout); the paper has none
    bn_momentum: float = 0.01  # PyTorch convention; 0.01 = Keras's 0.99, the authors' default
    pretrained: str = ""  # path to a local weights file; "" = from scratch, as in the paper
    freeze_backbone: bool = False
    # the fields above go to the models that declare them (bench.models.model_options; FF-VGG19 takes all, resnet50
    # only pretrained and freeze_backbone); options = the model's own further options, passed as they are
    # (e.g. {image_size = 64} for vit_b_16); one the model does not declare is an error
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: str = "constant"  # "constant", or "cosine": annealed per step to 0 over all epochs
    weight_decay: float = 0.0
    patience: int = 4  # early stopping on validation loss; 0 disables
    min_epochs: int = 0  # early stopping never ends training before this epoch
    seed: int = 0
    device: str = "auto"  # "auto" = cuda when available, else cpu
    threads: int = 0  # torch CPU threads; 0 = torch's default
    max_steps: int = 0  # stop after this many optimiser steps in total; 0 = no limit
    # mixed precision on CUDA: "off" | "bf16" | "fp16" (fp16 with a GradScaler); the CPU refuses all but "off"
    autocast: str = "off"
    # CUDA: deterministic cuDNN/cuBLAS (bench.device.set_deterministic), so one seed repeats bit for bit on one
    # GPU; false lets cuDNN pick the fastest kernels. The CPU is deterministic either way.
    deterministic: bool = True


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------
# generic dict -> dataclass with checking


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{key}] must be a table, got {type(value).__name__}")
        return from_dict(tp, value, source=source, prefix=key)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            try:
                return _coerce(value, arm, key, source)
            except ConfigError:
                continue
        raise ConfigError(f"{source}: {key} = {value!r} does not match {tp}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        (arg, *_rest) = typing.get_args(tp) or (Any,)
        return tuple(_coerce(v, arg, f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a table, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is type(None) and value is None:
        return None
    if not isinstance(tp, type) or (isinstance(value, bool) and tp is not bool) or not isinstance(value, tp):
        raise ConfigError(
            f"{source}: {key} must be {_type_name(tp)}, got {type(value).__name__} {value!r}"
        )
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, source: str = "<dict>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise :class:`ConfigError`."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(
                f"{source}: unknown key {full!r}; valid keys here: {', '.join(sorted(names))}"
            )
        kwargs[key] = _coerce(value, hints[key], full, source)
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain dict of a (nested) config dataclass, for saving beside results."""
    return dataclasses.asdict(obj)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> (["train", "epochs"], 3). The value is read as a TOML literal."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of nested dict ``data`` with ``section.key=value`` overrides applied."""
    import copy

    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a syntax error names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_run_config(
    preset: str = "quick", overrides: list[str] | tuple[str, ...] = (), **sections: dict[str, Any]
) -> RunConfig:
    """Resolve a preset name or TOML path, then ``sections`` (dicts merged per section), then overrides."""
    path = Path(preset)
    if not path.suffix:
        path = PRESET_DIR / f"{preset}.toml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(preset_names())}")
    data = read_toml(path)
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    data = apply_overrides(data, overrides)
    return from_dict(RunConfig, data, source=str(path))
