"""A Fig. 1-style gallery: images with their lesion outline, and each method's map as an overlay.

Reads ``gallery/<dataset>.npz`` (docs/CONTRACTS.md): ``images (K,3,H,W)`` in [0, 1], ``masks (K,H,W)``,
``labels (K,)``, ``ids``, ``class_names`` and ``map__<method> (K,H,W)``. Maps are min-max scaled per
image *for display only* (the scores never see this scaling); the reference mask is drawn as a white
outline; a constant map is labelled "constant". At most ``max_rows`` images are shown, taken
round-robin over classes so each class appears.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bench.data.selection import pick_per_class
from bench.report.figures import new_figure, ordered_methods


def load_gallery(path: str | Path) -> dict:
    """The arrays of one gallery file as a dict; ``maps`` maps method -> ``(K, H, W)`` float array.

    Raises:
        ValueError: the file lacks ``images`` or the shapes disagree (names the file).
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    if "images" not in data:
        raise ValueError(f"{path}: gallery file has no 'images' array (has {sorted(data)})")
    images = np.asarray(data["images"], dtype=np.float32)
    k = images.shape[0]
    if images.ndim != 4:
        raise ValueError(f"{path}: images must be (K, 3, H, W), got {images.shape}")
    masks = np.asarray(data.get("masks", np.zeros((k, *images.shape[2:]), bool)), dtype=bool)
    labels = np.asarray(data.get("labels", np.zeros(k, int)))
    ids = [str(s) for s in data.get("ids", np.array([f"#{i}" for i in range(k)]))]
    class_names = [str(s) for s in data.get("class_names", np.array([]))]
    maps = {name[len("map__"):]: np.asarray(v, dtype=np.float32) for name, v in data.items() if name.startswith("map__")}
    for m, v in maps.items():
        if v.shape != (k, *images.shape[2:]):
            raise ValueError(f"{path}: map__{m} has shape {v.shape}, expected {(k, *images.shape[2:])}")
    return dict(images=images, masks=masks, labels=labels, ids=ids, class_names=class_names, maps=maps)


def _rgb(image: np.ndarray) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) clipped."""
    return np.clip(np.transpose(np.asarray(image, dtype=np.float64), (1, 2, 0)), 0.0, 1.0)


def _scale(m: np.ndarray) -> np.ndarray:
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (a 1-pixel inner outline)."""
    m = np.pad(mask, 1, constant_values=False)
    interior = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~interior


def _upsample(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def compose_tiles(data: dict, rows: list[int], names: list[str], *, tile: int = 96, gap: int = 4) -> np.ndarray:
    """The gallery as one RGB mosaic ``(R*(tile+gap), C*(tile+gap), 3)``: column 0 the image, then
    each method's map (jet, alpha 0.45) over the grey image; the mask outline in white on every tile."""
    import matplotlib

    jet = matplotlib.colormaps["jet"]
    images, masks, maps = data["images"], data["masks"], data["maps"]
    h, w = images.shape[2:]
    k = max(1, tile // max(h, w))
    th, tw = h * k, w * k
    ncol = 1 + len(names)
    mosaic = np.ones((len(rows) * (th + gap), ncol * (tw + gap), 3))
    for r, i in enumerate(rows):
        rgb = _rgb(images[i])
        grey = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2)
        outline = _outline(_upsample(masks[i].astype(bool), k))
        tiles = [rgb]
        for name in names:
            heat = jet(_scale(maps[name][i]))[..., :3]
            tiles.append(0.55 * grey + 0.45 * heat)
        for c, t in enumerate(tiles):
            t = _upsample(t, k)
            t[outline] = 1.0
            y, x = r * (th + gap), c * (tw + gap)
            mosaic[y : y + th, x : x + tw] = t
    return mosaic


COLUMN_PT, ROW_PT, TITLE_PT = 7.5, 7.0, 9.0  # font sizes (points) of the column titles, row labels, title
LABEL_PAD = 0.05  # inches between a label and the mosaic
# text is measured at these resolutions and the widest kept: hinted glyphs are not exactly proportional to
# the dpi (a label measured at 100 dpi is up to 4% wider in the scorecard's 110 dpi image)
MEASURE_DPI = (100, 110, 150)


def _text_size(fig: Figure, text: str, size: float) -> tuple[float, float]:
    """Width and height in inches of ``text`` (may hold newlines) drawn at ``size`` points: the largest over
    :data:`MEASURE_DPI`."""
    from matplotlib.backends.backend_agg import RendererAgg

    t = fig.text(0, 0, text, fontsize=size, linespacing=1.0)
    try:
        boxes = [(t.get_window_extent(RendererAgg(1, 1, dpi)), dpi) for dpi in MEASURE_DPI]
    finally:
        t.remove()
    return max(b.width / dpi for b, dpi in boxes), max(b.height / dpi for b, dpi in boxes)


def _pieces(fig: Figure, name: str, width: float, size: float) -> list[str]:
    """``name`` cut after each ``_``, ``-`` or space; a piece still wider than ``width`` is cut between
    characters."""
    out = []
    for piece in [p for p in re.split(r"(?<=[_\-\s])", name) if p] or [name]:
        while len(piece) > 1 and _text_size(fig, piece.rstrip(), size)[0] > width:
            n = next(n for n in range(len(piece) - 1, 0, -1) if n == 1 or _text_size(fig, piece[:n], size)[0] <= width)
            out.append(piece[:n])
            piece = piece[n:]
        out.append(piece)
    return out


def fit_label(fig: Figure, name: str, width: float, size: float = COLUMN_PT) -> tuple[str, float]:
    """``name`` wrapped into lines at most ``width`` inches wide (after ``_``, ``-`` or a space; a word longer
    than a line between characters), and the font size to draw it at (``size``; smaller only if one character
    is wider than ``width``).

    So that a column title never runs into its neighbour (``fused_grad_cam`` into ``guided_backprop``),
    whatever the number and length of the method names.
    """
    lines, line = [], ""
    for piece in _pieces(fig, name, width, size):
        if line and _text_size(fig, (line + piece).rstrip(), size)[0] > width:
            lines.append(line.rstrip())
            line = piece
        else:
            line += piece
    lines.append(line.rstrip())
    widest = max(_text_size(fig, s, size)[0] for s in lines)
    if widest > width:
        size *= 0.97 * width / widest
    return "\n".join(lines), size


def gallery_figure(data: dict, *, title: str = "", max_rows: int = 8, methods: list[str] | None = None) -> Figure | None:
    """Rows = images (class and id on the left), columns = the image, then one overlay per method.

    Drawn as a single mosaic image (one ``imshow``), which keeps a 8 x 15 gallery fast to render. Every label
    is whole: the column titles are wrapped (or, for one long word, set smaller) to the width of a column, and
    the margins are sized from the measured extents of the titles, the row labels and the title.
    """
    images, labels = data["images"], data["labels"]
    if len(images) == 0:
        return None
    maps = data["maps"]
    names = methods or ordered_methods(maps)
    rows = pick_per_class(labels, total=max_rows)
    tile, gap = 96, 4
    mosaic = compose_tiles(data, rows, names, tile=tile, gap=gap)
    mh, mw = mosaic.shape[:2]
    inch = 1.15 / (tile + gap)  # about 1.15 inch per tile
    fig = new_figure(mw * inch + 1.0, mh * inch + 0.4)  # resized below, once the labels are measured

    columns = [fit_label(fig, s, (tile + gap) * inch - 0.1) for s in ["image", *names]]
    class_names = data["class_names"]
    labels_txt = []
    for i in rows:
        lab = int(labels[i])
        cname = class_names[lab] if 0 <= lab < len(class_names) else str(lab)
        labels_txt.append(f"{cname}\n{data['ids'][i]}")
    left = LABEL_PAD + max(_text_size(fig, s, ROW_PT)[0] for s in labels_txt) + 0.08
    heads = LABEL_PAD + max(_text_size(fig, s, pt)[1] for s, pt in columns) + 0.05
    title_w, title_h = _text_size(fig, title, TITLE_PT) if title else (0.0, 0.0)
    top = heads + (title_h + 0.1 if title else 0.0)
    right, bottom = 0.05, 0.05
    width = max(mw * inch + left + right, title_w + 0.2)
    right = width - mw * inch - left  # any extra width (a long title) goes to the right margin
    height = mh * inch + top + bottom
    fig.set_size_inches(width, height)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)

    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    step_x, step_y = mw / (1 + len(names)), mh / len(rows)
    # titles and labels as annotations (a tick label's own font size is lost when the ticks are rebuilt);
    # gid "column-title" / "row-label" lets a test find them
    pad = LABEL_PAD * 72  # points
    for c, (text, pt) in enumerate(columns):
        ax.annotate(text, xy=(step_x * (c + 0.5) - gap / 2, 1), xycoords=("data", "axes fraction"), xytext=(0, pad),
                    textcoords="offset points", ha="center", va="bottom", fontsize=pt, linespacing=1.0,
                    annotation_clip=False, gid="column-title")
    for r, text in enumerate(labels_txt):
        ax.annotate(text, xy=(0, step_y * (r + 0.5) - gap / 2), xycoords=("axes fraction", "data"), xytext=(-pad, 0),
                    textcoords="offset points", ha="right", va="center", fontsize=ROW_PT, linespacing=1.0,
                    annotation_clip=False, gid="row-label")
    ax.set_xticks([])
    ax.set_yticks([])
    for r, i in enumerate(rows):  # say so where a map is constant (it is drawn as all-zero)
        for c, name in enumerate(names, start=1):
            m = maps[name][i]
            if not np.isfinite(m).all() or float(np.nanmax(m)) == float(np.nanmin(m)):
                ax.text(step_x * c + 3, step_y * (r + 1) - gap - 3, "constant", fontsize=6, color="white",
                        ha="left", va="bottom")
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=TITLE_PT, y=1 - 0.05 / height, va="top")
    return fig
