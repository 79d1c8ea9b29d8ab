"""Train / validation / test splits: stratified by class, grouped by patient or lesion id.

No group ever appears in two parts of a split (repeat photos of one lesion, slices of one patient).
Built on scikit-learn's ``StratifiedGroupKFold`` (shuffled, seeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


# The shortcut suite's second test split (bench.data.phantoms.generate): never trained on, never in a
# Split; the sweep evaluates the trained model on it (the cue independent of the class there).
DECORRELATED = "decorrelated"


@dataclass(frozen=True)
class Split:
    """Index arrays into the dataset (int64, sorted, disjoint)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    fold: int = 0


def _kfold(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int):
    n_groups = len(np.unique(groups))
    n_splits = max(2, min(n_splits, n_groups))
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(labels)), labels, groups))


def _carve_val(idx: np.ndarray, labels, groups, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if fraction <= 0:
        return np.sort(idx), np.zeros(0, dtype=np.int64)
    parts = _kfold(labels[idx], groups[idx], int(round(1 / fraction)), seed)
    train, val = parts[0]
    return np.sort(idx[train]), np.sort(idx[val])


def make_splits(
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[str] | np.ndarray | None = None,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.15,
    folds: int = 1,
    seed: int = 0,
) -> list[Split]:
    """Stratified, group-aware splits.

    Args:
        labels: ``(N,)`` class indices.
        groups: ``(N,)`` patient/lesion ids; ``None`` or empty strings = each image its own group.
        test_fraction: share of images in the test part when ``folds == 1`` (approximate: whole groups).
        val_fraction: share of all images held out of training for early stopping.
        folds: 1 = one split; k > 1 = k-fold cross-validation (each image is in exactly one test fold).
        seed: shuffling seed.

    Returns:
        ``folds`` :class:`Split` objects.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if groups is None:
        groups = np.arange(n).astype(str)
    groups = np.asarray([g if str(g) else f"__image{i}" for i, g in enumerate(groups)], dtype=object)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} labels")
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    if not 0 < test_fraction < 1 and folds == 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    k = folds if folds > 1 else int(round(1 / test_fraction))
    outer = _kfold(labels, groups, k, seed)
    out = []
    for f, (rest, test) in enumerate(outer[: folds if folds > 1 else 1]):
        val_share = val_fraction / max(1e-9, 1 - len(test) / n)
        train, val = _carve_val(rest, labels, groups, val_share, seed + 1 + f)
        out.append(Split(train=train, val=val, test=np.sort(test), fold=f))
    return out


def splits_from_column(splits: Sequence[str]) -> Split | None:
    """A :class:`Split` from a manifest's ``split`` column, or ``None`` if any entry is empty.

    Rows of the ``decorrelated`` split belong to none of its parts."""
    col = np.asarray([str(s).strip().lower() for s in splits])
    if len(col) == 0 or np.any(col == "") or not np.isin(col, ["train", "val", "test", DECORRELATED]).all():
        return None
    idx = np.arange(len(col))
    return Split(train=idx[col == "train"], val=idx[col == "val"], test=idx[col == "test"])
