"""The ``MODELS`` registry and :func:`register_model`, the public way to add a model.

A model factory is ``factory(num_classes, **options) -> nn.Module``: the module maps ``(B, 3, H, W)`` images in
[0, 1] to ``(B, num_classes)`` logits and names the layers the CAM methods may explain: ``cam_layers`` (a dict,
layer name -> module whose output is a ``(B, C, h, w)`` feature map, input to output order) and
``default_cam_layer`` (one of those names). The methods that use no layer need neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.registry import Registry

MODELS: Registry = Registry("model", plugins=True)


def register_model(
    name: str,
    factory: Callable | None = None,
    *,
    version: str = "0",
    description: str = "",
    **meta: Any,
) -> Callable:
    """Register a model factory ``factory(num_classes, **options) -> nn.Module`` (see the module docstring):
    ``register_model(name, factory)``, or as a decorator. Returns ``factory``.

    Args:
        version: bump it when the model's code changes: for a model registered from outside the ``bench``
            package it is part of the sweep's keys of the jobs that train it (and so of everything computed from
            them; :mod:`bench.sweep.sources`).
        description: one line for ``bench list``.
        **meta: further facts kept in ``MODELS.meta(name)`` (e.g. ``options``: the options it takes and their
            defaults).

    Raises:
        ValueError: the name is already registered, or a bad ``version``.
        TypeError: ``factory`` is not callable.
    """
    if not isinstance(version, (str, int)) or isinstance(version, bool) or not str(version):
        raise ValueError(f"register_model({name!r}): version must be a non-empty string, got {version!r}")

    def _add(f: Callable) -> Callable:
        if not callable(f):
            raise TypeError(f"model {name!r}: expected a factory(num_classes, **options) -> nn.Module, "
                            f"got {type(f).__name__}")
        MODELS.register(name, f, version=str(version), description=str(description), **meta)
        return f

    return _add if factory is None else _add(factory)


__all__ = ["MODELS", "register_model"]
