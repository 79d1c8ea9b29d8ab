"""bench.report.gallery: every column title and row label is whole, whatever the number and length of names."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.report.gallery import gallery_figure

# names like the registered methods', and longer ones (one without any place to wrap): 19 columns + the image
METHODS = ["grad_cam", "fused_grad_cam", "guided_backprop", "guided_grad_cam", "grad_cam_plus_plus", "score_cam",
           "layer_cam", "integrated_gradients", "smoothgrad", "saliency", "input_x_gradient", "occlusion", "rise",
           "centre", "random", "integrated_gradients_noise_tunnel_black_baseline", "deconvolution-with-guided-relu",
           "averyveryverylongmethodnamewithoutanyplacetobreakit", "x"]


def _gallery(names, ids, k=4, size=16) -> dict:
    rng = np.random.default_rng(0)
    masks = np.zeros((k, size, size), bool)
    masks[:, 4:10, 5:11] = True
    return dict(images=rng.uniform(0, 1, (k, 3, size, size)).astype(np.float32), masks=masks,
                labels=np.arange(k) % 2, ids=list(ids), class_names=["Normal", "Adenocarcinoma (malignant)"],
                maps={m: rng.random((k, size, size)).astype(np.float32) for m in names})


def _extents(fig, dpi=100):
    fig.set_dpi(dpi)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    cols = [t for t in ax.texts if t.get_gid() == "column-title"]
    rows = [t for t in ax.texts if t.get_gid() == "row-label"]
    return renderer, cols, rows


@pytest.mark.parametrize("dpi", [100, 110])  # the canvas's and the scorecard's
@pytest.mark.parametrize("n_methods", [1, 5, 19])
def test_column_titles_never_overlap_and_every_label_lies_inside_the_figure(n_methods, dpi):
    names = METHODS[:n_methods]
    ids = ["LIDC-IDRI-0001_slice_0042_nodule_3 p=0.97", "a", "synthetic-ham10000/ISIC_0024306.png p=0.51",
           "MPIP_case_12_patch_7"]
    fig = gallery_figure(_gallery(names, ids), title="synthetic-lidc_idri (test) - ff_vgg19, layer block5_conv3, "
                         "target: true class")
    renderer, cols, rows = _extents(fig, dpi)
    shown = [t.get_text().replace("\n", "") for t in cols]  # wrapped, never cut (in the report's method order)
    assert shown[0] == "image" and sorted(shown[1:]) == sorted(names)
    assert len(rows) == 4 and rows[0].get_text().endswith(ids[0])
    figure_box = fig.bbox
    col_boxes = [t.get_window_extent(renderer) for t in cols]
    for a, b in itertools.combinations(range(len(cols)), 2):
        assert not col_boxes[a].overlaps(col_boxes[b]), f"{cols[a].get_text()!r} overlaps {cols[b].get_text()!r}"
    for t in [*cols, *rows, fig.texts[0]]:  # fig.texts[0]: the title
        box = t.get_window_extent(renderer)
        assert (box.x0 >= figure_box.x0 and box.x1 <= figure_box.x1
                and box.y0 >= figure_box.y0 and box.y1 <= figure_box.y1), f"{t.get_text()!r} is cut: {box}"
    # the titles sit above the mosaic and the row labels left of it, never on it
    image_box = fig.axes[0].get_window_extent(renderer)
    assert all(b.y0 >= image_box.y1 - 1 for b in col_boxes)
    assert all(t.get_window_extent(renderer).x1 <= image_box.x0 + 1 for t in rows)


def test_a_long_word_is_cut_between_characters_not_shrunk():
    word = "averyveryverylongmethodnamewithoutanyplacetobreakit"
    fig = gallery_figure(_gallery([word], ["g0", "g1"], k=2))
    _, cols, _ = _extents(fig)
    assert cols[1].get_text().count("\n") >= 1 and cols[1].get_fontsize() == 7.5


def test_short_names_stay_on_one_line_at_the_usual_size():
    fig = gallery_figure(_gallery(["grad_cam", "saliency"], ["g0", "g1", "g2", "g3"]))
    _, cols, _ = _extents(fig)
    assert [t.get_text() for t in cols] == ["image", "grad_cam", "saliency"]
    assert {t.get_fontsize() for t in cols} == {7.5}
