"""Fixed facts the report needs: metric directions and definitions, the paper's Table 2.

Kept as data in this one module so that every table and figure reads them from the same place; a
metric's direction is not repeated here but read from ``bench.metrics.METRICS`` (meta ``direction``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The defaults of the three roles below; a suite's [report] table (reference, baselines, model_blind), `bench
# report --reference/--baselines/--model-blind` or leaderboard(..., reference=...) choose others.
BASELINES = ("centre", "random")  # methods that any useful explanation must beat
MODEL_BLIND = ("centre", "random", "edge")  # maps that ignore the model: the floor of the relative view
REFERENCE_METHOD = "grad_cam"  # every method is compared against this one, pairwise
ORACLE, GRID_ORACLE = "oracle", "oracle_grid"  # the ceilings (bench.attribution.references): not methods


@dataclass(frozen=True)
class Roles:
    """Which methods play which part in the leaderboards and the scorecard.

    - ``reference``: every other method is tested against it (``vs_<reference>*`` columns: paired Wilcoxon,
      Holm, Hodges-Lehmann; the ▲/▼ marks); default ``grad_cam``, the method the seed paper evaluates.
    - ``baselines``: the maps any useful explanation must beat (``beats_<baseline>`` columns, the † mark, drawn
      hatched / dashed in the figures); default ``centre`` and ``random``. May be empty.
    - ``model_blind``: the maps that ignore the model; the best of them is the floor (0) of the relative-to-
      ceiling view; default ``centre``, ``random``, ``edge``.

    A role names a method; a method the results do not hold simply plays no part (no comparisons, no floor).

    Raises:
        ValueError: an empty or non-string name, or a name twice in one role.
    """

    reference: str = REFERENCE_METHOD
    baselines: tuple[str, ...] = BASELINES
    model_blind: tuple[str, ...] = MODEL_BLIND

    def __post_init__(self) -> None:
        if not isinstance(self.reference, str) or not self.reference:
            raise ValueError(f"the reference method must be a method name, got {self.reference!r}")
        for role in ("baselines", "model_blind"):
            names = getattr(self, role)
            if isinstance(names, str):
                names = (names,)
            names = tuple(names)
            if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
                raise ValueError(f"{role} must be distinct method names, got {names!r}")
            object.__setattr__(self, role, names)


DEFAULT_ROLES = Roles()


def roles_of(board) -> Roles:
    """The roles a leaderboard was built with: ``board.attrs["roles"]`` (set by ``leaderboard``), else read from
    its columns (``beats_<baseline>``, ``vs_<reference>_p_holm``: a board read back from leaderboard.csv, or an
    overall ranking), else :data:`DEFAULT_ROLES`. ``model_blind`` is not in the columns: the default then."""
    roles = getattr(board, "attrs", {}).get("roles")
    if isinstance(roles, Roles):
        return roles
    cols = [str(c) for c in getattr(board, "columns", [])]
    if "beats_baselines" not in cols:
        return DEFAULT_ROLES
    baselines = tuple(c[len("beats_"):] for c in cols if c.startswith("beats_") and c != "beats_baselines")
    refs = [c[len("vs_"):-len("_p_holm")] for c in cols if c.startswith("vs_") and c.endswith("_p_holm")]
    return Roles(reference=refs[0] if refs else REFERENCE_METHOD, baselines=baselines)


def code_list(names) -> str:
    """``"`a`, `b` and `c`"`` (markdown), ``"none"`` for no names."""
    quoted = [f"`{n}`" for n in names]
    if not quoted:
        return "none"
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def is_oracle(method: str) -> bool:
    """Whether ``method`` is a reference map (``oracle``, ``oracle_grid``, ``oracle_grid@<layer>``): scored and
    shown like a method, never ranked or tested, the ceiling of the relative view."""
    return method == ORACLE or method == GRID_ORACLE or method.startswith(GRID_ORACLE + "@")


def ceiling_of(method: str) -> str:
    """The oracle a method's relative score is read against: the grid oracle of the explained layer for a
    map computed at a layer's resolution (the CAM family of ``bench.attribution.METHODS``), else the
    full-resolution oracle (pixel-level maps, guided Grad-CAM included; an unknown method counts as one)."""
    try:
        from bench.attribution import METHODS  # imported lazily: it imports torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return ORACLE
    return GRID_ORACLE if method in METHODS and METHODS.meta(method).get("family") == "cam" else ORACLE

# "How to read this": definition and direction, one sentence each (after REFERENCE.md section 3).
METRIC_HELP = {
    "pointing_game": "Hit (1) if the map's maximum falls inside the reference lesion mask, else 0; "
    "the mean is the hit rate. Empty masks are undefined and excluded.",
    "energy_pointing_game": "Share of the map's positive energy that lies inside the mask "
    "(relevance mass accuracy): 1 means all of the evidence is on the lesion.",
    "relevance_rank_accuracy": "Fraction of the K most salient pixels that lie inside the mask, "
    "K = the mask's area (Arras et al.).",
    "iou": "Intersection over union between the binarised map and the mask (0 = disjoint, 1 = identical).",
    "auprc": "Area under the precision-recall curve when each pixel's saliency scores 'inside the lesion' "
    "(Arun et al. 2021); chance level is the lesion's share of the image.",
    "deletion": "Area under the model's probability for the explained class as the most salient pixels are "
    "removed first (RISE): a faithful map makes the probability collapse quickly.",
    "insertion": "Area under the model's probability as the most salient pixels are restored first into a "
    "blurred image (RISE): a faithful map makes the probability rise quickly.",
    "road_morf": "ROAD, most relevant first (Rong et al. 2022): the model's probability for the explained class, "
    "averaged over 10-90 % of the pixels removed, most salient first, each removed pixel filled from its "
    "neighbours plus a little noise (so the hole's shape gives nothing away): a faithful map makes it fall fast.",
    "road_lerf": "ROAD, least relevant first: the same with the least salient pixels removed first; a faithful "
    "map keeps the probability high, since what it calls irrelevant should not matter.",
}

# The seed paper's Table 2 (FF-VGG19), keyed by the seed dataset key. Values in percent; None where the
# paper printed '-' (multi-class tasks). Source: Athanasoula, Apostolopoulos, Groumpos, "Evaluation of
# Grad-CAM for explaining Deep Learning's decisions on various medical imaging datasets", Table 2.
PAPER_CITATION = (
    "Athanasoula, Apostolopoulos, Groumpos: Evaluation of Grad-CAM for explaining Deep Learning's "
    "decisions on various medical imaging datasets, Table 2 (FF-VGG19)"
)
PAPER_TABLE2: dict[str, dict[str, float | None]] = {
    "pet_ct": dict(accuracy=69.77, sensitivity=69.76, specificity=65.76, auc=76.64, f1=60.93),
    "lidc_idri": dict(accuracy=82.52, sensitivity=76.29, specificity=88.70, auc=90.67, f1=80.80),
    "cov_x": dict(accuracy=84.94, sensitivity=None, specificity=None, auc=95.25, f1=None),
    "cov_ct": dict(accuracy=78.57, sensitivity=87.96, specificity=70.27, auc=83.48, f1=79.23),
    "cells": dict(accuracy=91.61, sensitivity=None, specificity=None, auc=94.46, f1=None),
    "mpip": dict(accuracy=66.08, sensitivity=85.29, specificity=33.75, auc=90.70, f1=39.26),
    "ham10000": dict(accuracy=77.93, sensitivity=None, specificity=None, auc=84.58, f1=None),
}
PAPER_NAMES = {
    "pet_ct": "PET/CT", "lidc_idri": "LIDC-IDRI", "cov_x": "COV_X", "cov_ct": "COV_CT",
    "cells": "Cells", "mpip": "MPIP", "ham10000": "MNIST (HAM10000)",
}


def paper_value(paper_key: str, column: str) -> float:
    """The paper's Table-2 value (percent) for ``paper_key`` and ``column``; NaN where not reported."""
    v = PAPER_TABLE2.get(paper_key, {}).get(column)
    return math.nan if v is None else float(v)


def direction(metric: str) -> str:
    """``"higher"`` or ``"lower"``: which values of ``metric`` are better (``bench.metrics.METRICS``,
    meta ``direction``).

    Raises:
        ValueError: the registry has no direction for the metric.
    """
    from bench.metrics import METRICS  # imported lazily: bench.metrics imports torch

    if metric in METRICS:
        d = METRICS.meta(metric).get("direction")
        if d in ("higher", "lower"):
            return d
    known = [n for n in METRICS.names() if METRICS.meta(n).get("direction") in ("higher", "lower")]
    raise ValueError(
        f"no direction known for metric {metric!r}: register it in bench.metrics.METRICS with "
        f"direction='higher' or 'lower' (known here: {', '.join(known)})"
    )


def metric_help(metric: str) -> str:
    """One-line definition of ``metric`` (registry meta ``description`` first, then the local text)."""
    try:
        from bench.metrics import METRICS
    except ImportError:
        METRICS = None
    if METRICS is not None and metric in METRICS:
        text = METRICS.meta(metric).get("description")
        if text:
            return str(text)
    return METRIC_HELP.get(metric, "")
