"""Attribution methods behind one interface.

``explain(model, images, targets, method, *, layer=None, **options) -> (B, H, W)`` float32 maps at the
input resolution, not normalised. ``available_methods()`` lists the names; ``METHODS`` (a
:class:`bench.registry.Registry`) holds each method with its meta: ``family`` (cam / gradient /
perturbation / baseline), ``uses_layer``, ``cost`` (``{"forward": n, "backward": m}`` model passes per
image at the default options; :func:`method_cost` for other options), ``options`` (defaults) and
``stochastic``. Post-processing (channel reduction, ReLU, upsampling) lives in :mod:`.postprocess`.

Your own method: ``register_method(name, fn, family=..., postprocess=Rule(...), cost=..., version=...)``
(see :func:`bench.attribution.base.register_method` and docs/bring_your_own.md); from another distribution,
by an entry point in the group ``bench.methods`` (:mod:`bench.registry`).

One module per family: :mod:`.cam`, :mod:`.gradient`, :mod:`.perturbation`, :mod:`.baselines`.
"""

from __future__ import annotations

from bench.attribution import baselines, cam, gradient, perturbation  # noqa: F401  (register methods)
from bench.attribution.base import DEFAULT_BATCH, FAMILIES, METHODS, method_cost, register_method
from bench.attribution.core import available_methods, explain
from bench.attribution.postprocess import DEFAULT_RULES, Rule

__all__ = ["explain", "available_methods", "method_cost", "register_method", "Rule", "DEFAULT_RULES", "METHODS",
           "FAMILIES", "DEFAULT_BATCH"]
