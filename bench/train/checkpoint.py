"""Checkpoints: building the model a configuration describes, saving it, and loading it back safely.

A checkpoint holds only tensors and plain data (it loads with ``weights_only=True``): the weights,
the run configuration, the class names, the test metrics and :func:`environment`.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.config import RunConfig, from_dict, to_dict
from bench.models import create_model, model_options
from bench.train.result import TrainResult
from bench.version import VERSION

CHECKPOINT_FORMAT = 1


def environment() -> dict[str, str]:
    """Versions and hardware, saved beside every result."""
    import numpy
    import sklearn

    return {
        "bench": VERSION, "torch": str(torch.__version__), "numpy": numpy.__version__,
        "sklearn": sklearn.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(), "threads": str(torch.get_num_threads()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }


def build_model(cfg: RunConfig, num_classes: int, **override: Any) -> nn.Module:
    """The model ``cfg.model`` describes (``override`` replaces options, e.g. ``pretrained=""``).

    Of ``cfg.model``'s fields (width, head_units, batch_norm, bn_momentum, pretrained, freeze_backbone) the model
    gets those it declares (:func:`bench.models.model_options`): FF-VGG19 all of them, VGG19 all but bn_momentum,
    resnet50 only pretrained and freeze_backbone. ``cfg.model.options`` are the model's own options, passed as they
    are (an option it does not declare is a ``ValueError``); so are the ``override`` keys it declares.
    """
    m = cfg.model
    fields = {"width": m.width, "head_units": m.head_units, "pretrained": m.pretrained,
              "freeze_backbone": m.freeze_backbone, "batch_norm": m.batch_norm, "bn_momentum": m.bn_momentum}
    declared = model_options(m.name)
    twice = sorted(set(m.options) & set(fields))
    if twice:
        raise ValueError(f"model.options sets {', '.join(twice)}: set model.{twice[0]} instead")
    if declared is None:  # a factory(num_classes, **options): only what the configuration names explicitly
        options = dict(m.options)
    else:
        options = {k: v for k, v in fields.items() if k in declared}
        options.update(m.options)
        override = {k: v for k, v in override.items() if k in declared}
    return create_model(m.name, num_classes, **{**options, **override})


def save_checkpoint(path: str | Path, result: TrainResult) -> Path:
    """Write ``path`` atomically. Holds only tensors and plain data (loads with ``weights_only=True``)."""
    path = Path(path)
    blob = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "config": to_dict(result.config),
        "class_names": list(result.class_names),
        "metrics": {k: v for k, v in result.metrics.items() if k != "per_class"},
        "versions": environment(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, *, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path``; returns ``(model in eval mode, info)``.

    ``info`` holds ``config`` (a :class:`RunConfig`), ``class_names``, ``metrics``, ``versions``.
    Loads with ``weights_only=True``: a file that carries pickled code is refused.

    Raises:
        ValueError: not a bench checkpoint, unsafe content, or weights that do not fit the model its
            config describes (the message lists the mismatching keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for code, RuntimeError for a corrupt zip
        why = (str(exc).strip().splitlines() or ["an empty or truncated file"])[0]  # EOFError has no message
        raise ValueError(
            f"{path}: refused to load: {type(exc).__name__}: {why} "
            "(checkpoints must hold only tensors and plain data; bench never unpickles code)"
        ) from None
    if not isinstance(blob, dict) or "state_dict" not in blob or "config" not in blob:
        raise ValueError(f"{path}: not a bench checkpoint (expected keys state_dict, config, class_names)")
    cfg = from_dict(RunConfig, blob["config"], source=str(path))
    model = build_model(cfg, len(blob["class_names"]), pretrained="")
    check_state_dict(model, blob["state_dict"], source=str(path))
    model.load_state_dict(blob["state_dict"])
    info = {k: v for k, v in blob.items() if k != "state_dict"}
    info["config"] = cfg
    return model.to(device).eval(), info


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Raise a ``ValueError`` naming every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:3]))
        raise ValueError(f"{source}: checkpoint does not match the model its config describes: " + ", ".join(parts))


__all__ = ["CHECKPOINT_FORMAT", "build_model", "check_state_dict", "environment", "load_checkpoint", "save_checkpoint"]
