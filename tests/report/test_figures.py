"""bench.report.figures: what the bar chart draws for defined and undefined means."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.report.figures import bar_chart


def _board(mean_b1=np.nan) -> pd.DataFrame:
    rows = []
    for method, means in (("grad_cam", (0.30, 0.40)), ("score_cam", (0.25, mean_b1))):
        for dataset, m in zip(("d1", "d2"), means):
            rows.append(dict(dataset=dataset, model="m", method=method, metric="deletion", mean=m,
                             ci_low=m - 0.05, ci_high=m + 0.05))
    return pd.DataFrame(rows)


def test_an_undefined_mean_is_a_gap_with_a_mark_not_a_zero_bar():
    fig = bar_chart(_board(), "deletion", "m")
    ax = fig.axes[0]
    bars = [p for c in ax.containers for p in getattr(c, "patches", [])]
    heights = sorted(round(p.get_height(), 6) for p in bars)
    assert heights == [0.25, 0.3, 0.4]  # three defined means; no bar of height 0 for the undefined one
    texts = [t for t in ax.texts if t.get_text() == "n/a"]
    assert len(texts) == 1 and texts[0].get_visible()
    # the mark sits where score_cam's bar on d2 would be (right half of the d2 group)
    x_mark = texts[0].get_position()[0]
    assert 1.0 < x_mark < 1.4
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["grad_cam", "score_cam"]


def test_a_method_without_any_defined_mean_keeps_its_legend_entry():
    board = _board()
    board.loc[board["method"] == "score_cam", "mean"] = np.nan
    ax = bar_chart(board, "deletion", "m").axes[0]
    assert sum(t.get_text() == "n/a" for t in ax.texts) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["grad_cam", "score_cam"]
    defined = bar_chart(_board(mean_b1=0.2), "deletion", "m").axes[0]
    assert not [t for t in defined.texts if t.get_text() == "n/a"]
