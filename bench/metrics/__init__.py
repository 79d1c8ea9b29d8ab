"""Metrics: classification (the paper's Table 2) and scores of explanation maps.

``METRICS`` (a :class:`bench.registry.Registry`) holds every per-image explanation metric with meta:

- ``direction``: "higher" or "lower" (which is better);
- ``kind``: "localisation" (map vs lesion mask) or "faithfulness" (map vs the model's behaviour);
- ``needs_model``: False for localisation, True for faithfulness;
- ``options``: the keyword options and their defaults;
- ``range``: the possible values, ``(0.0, 1.0)`` for all of them;
- ``version`` (only for a metric registered from outside the ``bench`` package, default ``"0"``): hashed
  into the sweep's score jobs' keys (:mod:`bench.sweep.sources`, which hashes the package's own code from
  its source); bump it when the metric's code changes, or the sweep serves results computed by the old code.

Generic calling convention (what the sweep does):

- localisation (``needs_model=False``)::

      values, degenerate = METRICS.get(name)(saliency, mask, return_degenerate=True, **options)

  ``saliency`` (B, H, W) any real values, ``mask`` (B, H, W) bool -> float64 (B,) values (NaN:
  empty mask, undefined) and bool (B,) ``degenerate`` (constant / non-finite map scored 0.0).
  Fast path with identical results: ``localisation_scores(saliency, mask, names, **options)`` ->
  ``{name: (values, degenerate)}`` validates, upsamples and reads each chunk once for all of them.
- faithfulness (``needs_model=True``): deletion and insertion come from one call of
  :func:`deletion_insertion`, named in meta ``computed_by``; meta ``output`` is the key of the
  returned dict that holds the entry's (B,) values::

      out = deletion_insertion(model, images, saliency, targets, **options)
      values, degenerate = out[meta["output"]], out["degenerate"]

  As for localisation, a degenerate map (constant, or any NaN or infinity) scores the worst value,
  deletion 1.0 and insertion 0.0, and is flagged; its curves are not computed (NaN). ``out`` also holds
  the curves for curves.parquet, whose means leave out degenerate maps and excluded images (``n`` counts
  the images averaged).

  (``METRICS.get("deletion")`` is also callable on its own, at the cost of both curves.)

  ROAD's two orders, ``road_morf`` (lower is better) and ``road_lerf`` (higher is better), come the same way
  from one call of :func:`road` (meta ``computed_by`` ``"road"``; degenerate maps 1.0 and 0.0).

The sanity check :func:`randomisation_test` scores a method, not an image, so it is not registered.
Nor are :func:`class_sensitivity` (two maps of one image, asked for two classes, against two masks; higher is
better, in [-1, 1]) and :func:`lesion_drop` (what the model does when the lesion is removed: not a score of a map).

Your own localisation metric: :func:`register_metric` (:mod:`bench.metrics.base`; docs/bring_your_own.md), or
from another distribution an entry point in the group ``bench.metrics`` (:mod:`bench.registry`).
"""

from bench.metrics.classification import classification_report
from bench.metrics.faithfulness import deletion_auc, deletion_insertion, insertion_auc
from bench.metrics.localisation import (
    auprc,
    degenerate_maps,
    energy_pointing_game,
    iou,
    localisation_scores,
    otsu_thresholds,
    pointing_game,
    relevance_rank_accuracy,
)
from bench.metrics.base import METRICS, register_metric
from bench.metrics.road import noisy_linear_impute, road, road_lerf, road_morf
from bench.metrics.sanity import randomisation_stages, randomisation_test
from bench.metrics.class_sensitivity import class_sensitivity
from bench.metrics.lesion_use import VERIFIED_DROP, lesion_drop, lesion_used

_LOC = {"direction": "higher", "kind": "localisation", "needs_model": False, "range": (0.0, 1.0)}
METRICS.register("pointing_game", pointing_game, options={"tolerance": 0.0}, **_LOC)
METRICS.register("energy_pointing_game", energy_pointing_game, aliases=("relevance_mass",), options={}, **_LOC)
METRICS.register("relevance_rank_accuracy", relevance_rank_accuracy, options={}, **_LOC)
METRICS.register("iou", iou, options={"threshold": "otsu"}, **_LOC)
METRICS.register("auprc", auprc, options={}, **_LOC)

_FAITH = {
    "kind": "faithfulness",
    "needs_model": True,
    "range": (0.0, 1.0),
    "computed_by": "deletion_insertion",
    "options": {"steps": 32, "substrate": "zeros", "blur_sigma": 5.0, "blur_kernel": 11},
}
METRICS.register("deletion", deletion_auc, direction="lower", output="deletion", **_FAITH)
METRICS.register("insertion", insertion_auc, direction="higher", output="insertion", **_FAITH)

# ROAD (Rong et al. 2022): both orders from one call of ``road`` (bench/metrics/road.py)
_ROAD = {**_FAITH, "computed_by": "road", "options": {"steps": 10, "noise": 0.01, "seed": 0}}
METRICS.register("road_morf", road_morf, direction="lower", output="road_morf", **_ROAD)
METRICS.register("road_lerf", road_lerf, direction="higher", output="road_lerf", **_ROAD)


def localisation_metrics() -> list[str]:
    """Names of the registered localisation metrics (called as ``fn(saliency, mask, ...)``)."""
    return [n for n in METRICS.names() if METRICS.meta(n)["kind"] == "localisation"]


__all__ = [
    "METRICS",
    "register_metric",
    "localisation_metrics",
    "classification_report",
    "pointing_game",
    "energy_pointing_game",
    "relevance_rank_accuracy",
    "iou",
    "auprc",
    "localisation_scores",
    "degenerate_maps",
    "otsu_thresholds",
    "deletion_insertion",
    "deletion_auc",
    "insertion_auc",
    "road",
    "road_morf",
    "road_lerf",
    "noisy_linear_impute",
    "randomisation_test",
    "randomisation_stages",
    "class_sensitivity",
    "lesion_drop",
    "lesion_used",
    "VERIFIED_DROP",
]
