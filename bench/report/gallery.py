"""A Fig. 1-style gallery: images with their lesion outline, and each method's map as an overlay.

Reads ``gallery/<dataset>.npz`` (docs/CONTRACTS.md): ``images (K,3,H,W)`` in [0, 1], ``masks (K,H,W)``,
``labels (K,)``, ``ids``, ``class_names`` and ``map__<method> (K,H,W)``. Maps are min-max scaled per
image *for display only* (the scores never see this scaling); the reference mask is drawn as a white
outline; a constant map is labelled "constant". At most ``max_rows`` images are shown, taken
round-robin over classes so each class appears.
"""

from __future__ import annotations

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


def gallery_figure(data: dict, *, title: str = "", max_rows: int = 8, methods: list[str] | None = None) -> Figure | None:
    """Rows = images (class and id on the left), columns = the image, then one overlay per method.

    Drawn as a single mosaic image (one ``imshow``), which keeps a 8 x 15 gallery fast to render.
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
    top = 0.6 if title else 0.35
    fig = new_figure(mw * inch + 1.0, mh * inch + top + 0.05, left=0.95, right=0.05, bottom=0.05, top=top)
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    step_x, step_y = mw / (1 + len(names)), mh / len(rows)
    ax.set_xticks([step_x * (c + 0.5) - gap / 2 for c in range(1 + len(names))], ["image", *names], fontsize=7.5)
    ax.xaxis.tick_top()
    class_names = data["class_names"]
    labels_txt = []
    for i in rows:
        lab = int(labels[i])
        cname = class_names[lab] if 0 <= lab < len(class_names) else str(lab)
        labels_txt.append(f"{cname}\n{data['ids'][i]}")
    ax.set_yticks([step_y * (r + 0.5) - gap / 2 for r in range(len(rows))], labels_txt, fontsize=7)
    ax.tick_params(length=0)
    for r, i in enumerate(rows):  # say so where a map is constant (it is drawn as all-zero)
        for c, name in enumerate(names, start=1):
            m = maps[name][i]
            if not np.isfinite(m).all() or float(np.nanmax(m)) == float(np.nanmin(m)):
                ax.text(step_x * c + 3, step_y * (r + 1) - gap - 3, "constant", fontsize=6, color="white",
                        ha="left", va="bottom")
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
