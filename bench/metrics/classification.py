"""Classification metrics as in the seed paper's Table 2: accuracy, sensitivity, specificity, AUC, F1.

Binary tasks report the values for the positive class named in the dataset card. Multi-class tasks
report macro averages over classes (AUC one-vs-rest), plus a per-class table; the paper left these
blank, we report them. All values are fractions in [0, 1] (tables show percentages).

Undefined values (a class absent from ``y_true``, or never predicted for precision) are NaN with a
``UndefinedMetricWarning``-style warning; macro averages skip NaN entries (nanmean).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

TABLE2_COLUMNS = ("accuracy", "sensitivity", "specificity", "auc", "f1")


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the given data (e.g. a class absent from the test split)."""


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, y_prob: np.ndarray, k: int) -> dict[str, float]:
    t, p = y_true == k, y_pred == k
    tp, fp = np.sum(t & p), np.sum(~t & p)
    fn, tn = np.sum(t & ~p), np.sum(~t & ~p)
    sens, spec, prec = _ratio(tp, tp + fn), _ratio(tn, tn + fp), _ratio(tp, tp + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn) if (tp + fn) > 0 else float("nan")
    auc = float(roc_auc_score(t, y_prob[:, k])) if 0 < t.sum() < len(t) else float("nan")
    return {"support": int(t.sum()), "sensitivity": sens, "specificity": spec, "precision": prec, "f1": f1, "auc": auc}


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_prob: np.ndarray,
    *,
    positive: int | str | None = None,
    class_names: Sequence[str] | None = None,
) -> dict:
    """Table-2 metrics of predicted class probabilities.

    Args:
        y_true: ``(N,)`` integer class indices in ``[0, C)``.
        y_prob: ``(N, C)`` class probabilities (rows need not sum to 1; argmax is the prediction).
        positive: binary tasks only: the positive class, as index or name (needs ``class_names``);
            default index 1.
        class_names: ``C`` names, used for ``positive`` and the per-class table.

    Returns:
        dict with ``n``, ``accuracy``, ``sensitivity``, ``specificity``, ``auc``, ``f1`` (floats in
        [0, 1] or NaN), ``average`` ("binary" or "macro"), ``positive`` (name or index, binary only)
        and ``per_class``: a list of dicts (class, support, sensitivity, specificity, precision, f1, auc).
        Sensitivity = TP/(TP+FN), specificity = TN/(TN+FP), F1 = 2TP/(2TP+FP+FN), AUC = area under
        the ROC curve of the class's probability (one-vs-rest); all computed per class.

    Raises:
        ValueError: shapes disagree, labels out of range, or an unknown positive class.
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim != 2 or y_true.ndim != 1 or len(y_true) != len(y_prob):
        raise ValueError(f"expected y_true (N,) and y_prob (N, C); got {y_true.shape} and {y_prob.shape}")
    n, c = y_prob.shape
    if c < 2:
        raise ValueError(f"y_prob needs at least 2 classes, got shape {y_prob.shape}")
    if n and (y_true.min() < 0 or y_true.max() >= c or not np.issubdtype(y_true.dtype, np.integer)):
        raise ValueError(f"y_true must hold integer classes in [0, {c}), got values {np.unique(y_true)[:10]}")
    names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
    if len(names) != c:
        raise ValueError(f"{len(names)} class_names for {c} classes in y_prob")
    y_pred = y_prob.argmax(axis=1) if n else np.zeros(0, dtype=int)
    per = [dict(**{"class": names[k]}, **_per_class(y_true, y_pred, y_prob, k)) for k in range(c)]
    absent = [p["class"] for p in per if p["support"] == 0]
    if absent or n == 0:
        warnings.warn(
            f"classes absent from y_true: {absent or names}; their sensitivity, F1 and AUC are NaN",
            UndefinedMetricWarning,
            stacklevel=2,
        )
    out: dict = {"n": int(n), "accuracy": float(np.mean(y_pred == y_true)) if n else float("nan")}
    if c == 2:
        if positive is None:
            pos = 1
        elif isinstance(positive, str):
            if positive not in names:
                raise ValueError(f"positive class {positive!r} is not one of {names}")
            pos = names.index(positive)
        else:
            pos = int(positive)
            if pos not in (0, 1):
                raise ValueError(f"positive class index must be 0 or 1, got {positive}")
        out.update({k: per[pos][k] for k in ("sensitivity", "specificity", "auc", "f1")})
        out.update(average="binary", positive=names[pos])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, said above
            for key in ("sensitivity", "specificity", "auc", "f1"):
                vals = np.array([p[key] for p in per], dtype=float)
                out[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        out.update(average="macro", positive=None)
    out["per_class"] = per
    return out
