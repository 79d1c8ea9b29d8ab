"""The ``METRICS`` registry and :func:`register_metric`, the public way to add a localisation metric.

A metric registered here is scored by the sweep like the built-ins: ``fn(saliency, mask,
return_degenerate=True, **options)`` on each explain job's maps, one row per image in ``results.parquet``,
ranked in the leaderboards by its ``direction``. Two ways to write one:

- *per map* (the simple way): ``fn(saliency, mask, **options) -> values``, ``saliency`` float ``(n, H, W)``
  at the mask's resolution (a smaller map is upsampled bilinearly first), ``mask`` bool ``(n, H, W)``, values
  float ``(n,)``. ``fn`` only ever sees maps that are finite and not constant, and masks that are not empty:
  :func:`register_metric` wraps it in the checks every built-in metric makes (:mod:`bench.metrics._maps`):
  an empty mask gives NaN (undefined, left out of means), a degenerate map (constant, NaN or infinity) the
  metric's worst value, flagged. It may be called from several threads at once (chunks of a batch), so it
  must be a pure function.
- *full* (as the built-ins): ``fn(saliency, mask, *, return_degenerate=False, **options)`` taking ``(H, W)`` or
  ``(B, H, W)`` maps and masks itself; registered as given when it has a ``return_degenerate`` parameter.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.metrics._maps import evaluate
from bench.registry import Registry

METRICS: Registry = Registry("metric", plugins=True)

DIRECTIONS = ("higher", "lower")


def _per_map(fn: Callable, name: str, direction: str, value_range: tuple[float, float]) -> Callable:
    """``fn(saliency (n, H, W), mask (n, H, W), **options) -> (n,)`` as a full metric (see the module docstring)."""
    worst = float(value_range[0] if direction == "higher" else value_range[1])

    @functools.wraps(fn)
    def metric(saliency, mask, *, return_degenerate: bool = False, **options: Any):
        def kernel(s, m, area, mn, mx, size, ws):
            n = s.shape[0]
            values = np.asarray(fn(s.reshape(n, *size), m.reshape(n, *size), **options), dtype=np.float64)
            if values.shape != (n,):
                raise ValueError(f"metric {name!r}: {fn.__qualname__} returned shape {values.shape} for {n} maps; "
                                 f"expected one value per map, shape ({n},)")
            return values, None

        values, degenerate = evaluate(saliency, mask, kernel, name=name, return_degenerate=True)
        values = np.where(degenerate, worst, values) if np.ndim(values) else (worst if degenerate else values)
        return (values, degenerate) if return_degenerate else values

    return metric


def register_metric(
    name: str,
    fn: Callable | None = None,
    *,
    direction: str | None = None,
    kind: str = "localisation",
    options: dict[str, Any] | None = None,
    range: tuple[float, float] = (0.0, 1.0),  # noqa: A002 - the meta key the built-ins use
    description: str = "",
    version: str = "0",
    aliases: tuple[str, ...] = (),
) -> Callable:
    """Register a localisation metric (map vs lesion mask): ``register_metric(name, fn, direction="higher")``,
    or as a decorator. Returns what is registered (``fn``, or ``fn`` wrapped as described in the module
    docstring).

    Args:
        direction: ``"higher"`` or ``"lower"``: which values are better (ranks, baselines, the tests against
            the reference method). Required.
        kind: ``"localisation"``, the only kind a sweep can score from outside (deletion and insertion, which
            run the model, are one built-in computation).
        options: keyword options and their defaults (a suite sets them under ``score.options.<name>``).
        range: the values' possible range; a degenerate map scores ``range[0]`` (higher is better) or
            ``range[1]`` (lower is better).
        description: one-line definition, shown in the scorecard's "How to read this" and ``bench list``.
        version: bump it when the metric's code changes; for a metric from outside the ``bench`` package it
            is part of the sweep's keys of its score jobs (:mod:`bench.sweep.sources`).
        aliases: other names for it.

    Raises:
        ValueError: no or a bad direction, another kind, a bad range, a name already registered.
        TypeError: ``fn`` is not callable, or has no parameter for an option of ``options``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"register_metric({name!r}): direction must be 'higher' or 'lower' (which values are "
                         f"better), got {direction!r}")
    if kind != "localisation":
        raise ValueError(f"register_metric({name!r}): kind must be 'localisation' (a map scored against the lesion "
                         f"mask), got {kind!r}; the faithfulness metrics are the built-in deletion/insertion")
    lo, hi = (float(v) for v in range)
    if not lo < hi:
        raise ValueError(f"register_metric({name!r}): range must be (low, high) with low < high, got {range!r}")
    if not isinstance(version, (str, int)) or isinstance(version, bool) or not str(version):
        raise ValueError(f"register_metric({name!r}): version must be a non-empty string, got {version!r}")
    defaults = dict(options or {})

    def _add(f: Callable) -> Callable:
        if not callable(f):
            raise TypeError(f"metric {name!r}: expected a function fn(saliency, mask, **options), "
                            f"got {type(f).__name__}")
        params = inspect.signature(f).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            missing = [k for k in defaults if k not in params]
            if missing:
                raise TypeError(f"metric {name!r}: {f.__qualname__}{inspect.signature(f)} has no parameter(s) "
                                f"{', '.join(missing)} for its options")
        obj = f if "return_degenerate" in params else _per_map(f, name, direction, (lo, hi))
        METRICS.register(name, obj, aliases=tuple(aliases), direction=direction, kind=kind, needs_model=False,
                         options=defaults, range=(lo, hi), description=str(description), version=str(version))
        return obj

    return _add if fn is None else _add(fn)


__all__ = ["METRICS", "DIRECTIONS", "register_metric"]
