"""Which images to show or explain: one class-balanced picker for the sweep, the gallery and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def pick_per_class(
    labels: Sequence[int] | np.ndarray,
    candidates: Iterable[int] | None = None,
    *,
    total: int | None = None,
    per_class: int | None = None,
) -> list[int]:
    """Indices interleaved over the classes: one of each class in ascending class order, then the next.

    Args:
        labels: (N,) class index of every image.
        candidates: the indices that may be picked, in the order each class takes them (default
            ``range(N)``: dataset order).
        total: at most this many indices in all (None: no limit).
        per_class: at most this many of each class (None: no limit).

    Returns:
        the picked indices, round-robin over the classes present among ``candidates``; a class that
        runs out drops out of the rotation. Empty when ``candidates`` is empty or a limit is 0.
    """
    labels = np.asarray(labels)
    order = range(len(labels)) if candidates is None else candidates
    by_class: dict[int, list[int]] = {}
    for i in order:
        queue = by_class.setdefault(int(labels[i]), [])
        if per_class is None or len(queue) < per_class:
            queue.append(int(i))
    queues = [by_class[c][::-1] for c in sorted(by_class)]  # reversed: pop() takes the next one
    limit = sum(len(q) for q in queues) if total is None else max(int(total), 0)
    picked: list[int] = []
    while len(picked) < limit and any(queues):
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop())
    return picked


__all__ = ["pick_per_class"]
