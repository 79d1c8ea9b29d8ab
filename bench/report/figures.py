"""Figures of the scorecard (matplotlib, no pyplot: each function builds its own ``Figure`` on Agg).

Every function takes the stored tables and returns a ``matplotlib.figure.Figure`` (or ``None`` when
there is nothing to draw); :func:`save_png` writes one to disk and returns the PNG bytes. No global
matplotlib state is touched, so the report is safe to build from any thread or test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report.reference import BASELINES, REFERENCE_METHOD, direction, roles_of

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
_BASELINE_COLOURS = {"centre": "#7f7f7f", "random": "#bcbcbc"}
_GREYS = ("#7f7f7f", "#bcbcbc", "#595959", "#a5a5a5", "#3f3f3f", "#d9d9d9")  # baselines, in the order given


def new_figure(
    width: float, height: float, *, left: float = 0.7, right: float = 0.2, bottom: float = 0.6, top: float = 0.45,
    wspace: float = 0.15, hspace: float = 0.5,
) -> Figure:
    """A ``Figure`` with an Agg canvas (no pyplot) and fixed margins in inches.

    Fixed margins instead of constrained layout: the layout solver was most of the rendering time.
    """
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wspace, hspace=hspace)
    return fig


def legend_width(labels) -> float:
    """Inches a legend of ``labels`` needs at font size 8 (handle + text)."""
    return 0.65 + 0.07 * max((len(str(s)) for s in labels), default=4)


def save_figure(fig: Figure, path: str | Path | None = None, *, fmt: str = "png", dpi: int = 110) -> bytes:
    """Render ``fig`` as ``fmt`` ("png", or "jpeg" at quality 88 for photo-like galleries), write the
    bytes to ``path`` if given, and return them."""
    import io

    buf = io.BytesIO()
    kwargs = {"pil_kwargs": {"quality": 88}} if fmt == "jpeg" else {}
    fig.savefig(buf, format=fmt, dpi=dpi, **kwargs)
    data = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def save_png(fig: Figure, path: str | Path | None = None, *, dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG bytes, write them to ``path`` if given; returns the bytes."""
    return save_figure(fig, path, fmt="png", dpi=dpi)


def figure_legend(fig: Figure, handles, labels, width: float, top: float = 0.6) -> None:
    """A legend in the right margin (``width`` inches), aligned with the top of the axes."""
    w, h = fig.get_figwidth(), fig.get_figheight()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1 - (width - 0.1) / w, 1 - top / h))


def method_colours(methods, *, baselines: tuple[str, ...] = BASELINES) -> dict[str, str]:
    """A fixed colour per method (sorted names, tab10/tab20), the baselines in greys (``centre`` and ``random``
    in their own greys whatever the order)."""
    import matplotlib

    greys = {**{b: _GREYS[i % len(_GREYS)] for i, b in enumerate(baselines)}, **_BASELINE_COLOURS}
    greys = {b: greys[b] for b in baselines}
    names = sorted(m for m in set(methods) if m not in greys)
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    colours = {m: matplotlib.colors.to_hex(cmap(i % cmap.N)) for i, m in enumerate(names)}
    colours.update({m: c for m, c in greys.items() if m in set(methods)})
    return colours


def ordered_methods(methods, *, reference: str = REFERENCE_METHOD, baselines: tuple[str, ...] = BASELINES) -> list[str]:
    """The reference method (default grad_cam) first, the other methods by name, the baselines last."""
    ms = sorted(set(methods))
    first = [reference] if reference in ms and reference not in baselines else []
    return first + [m for m in ms if m not in baselines and m not in first] + [m for m in baselines if m in ms]


def bar_chart(board: pd.DataFrame, metric: str, model: str, colours: dict[str, str] | None = None) -> Figure | None:
    """Grouped bars: datasets on x, one bar per method, error bars = the bootstrap CI.

    An undefined mean (NaN: no valid image, e.g. every mask empty) is a gap with a grey "n/a" mark at the
    foot of its slot, never a bar of height 0 (a 0 deletion score would look like the best). A method not
    run on a dataset is a gap without a mark. Every method keeps its legend entry.
    """
    import matplotlib
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    sub = board[(board["metric"] == metric) & (board["model"] == model)]
    if sub.empty:
        return None
    datasets = sorted(sub["dataset"].unique())
    roles = roles_of(board)
    methods = ordered_methods(sub["method"], reference=roles.reference, baselines=roles.baselines)
    colours = colours or method_colours(methods, baselines=roles.baselines)
    n = len(methods)
    width = 0.8 / max(n, 1)
    lw = legend_width(methods)
    # rotate the dataset names when they would not fit under their group of bars
    rotate = max(len(d) for d in datasets) * 0.075 > 0.16 * n
    fig = new_figure(min(16.0, max(6.0, 1.0 + lw + 0.16 * n * len(datasets))), 3.6, right=lw,
                     bottom=1.0 if rotate else 0.5)
    with matplotlib.rc_context(STYLE):
        ax = fig.add_subplot()
        x = np.arange(len(datasets))
        foot = blended_transform_factory(ax.transData, ax.transAxes)  # x in data, y in axes fractions
        handles = []
        for i, m in enumerate(methods):
            r = sub[sub["method"] == m].set_index("dataset").reindex(datasets)
            mean = r["mean"].to_numpy(float)
            err = np.vstack([mean - r["ci_low"].to_numpy(float), r["ci_high"].to_numpy(float) - mean])
            xs = x - 0.4 + width * (i + 0.5)
            ok = np.isfinite(mean)
            style = dict(facecolor=colours.get(m, "#333333"), hatch="//" if m in roles.baselines else None,
                         edgecolor="white", linewidth=0.3)
            if ok.any():
                ax.bar(xs[ok], mean[ok], width, yerr=np.nan_to_num(err[:, ok]), label=m,
                       error_kw=dict(lw=0.8, capsize=1.5), **style)
            handles.append(Patch(label=m, **style))
            for xi in xs[~ok & r["method"].notna().to_numpy()]:  # a row with an undefined mean
                ax.text(xi, 0.01, "n/a", transform=foot, rotation=90, ha="center", va="bottom", fontsize=6,
                        color="#555555")
        ax.set_xticks(x, datasets, rotation=20 if rotate else 0, ha="right" if rotate else "center")
        arrow = "↑" if direction(metric) == "higher" else "↓"
        ax.set_ylabel(f"{metric} {arrow}")
        ax.set_title(f"{metric} ({direction(metric)} is better), mean with 95% bootstrap CI; n/a = undefined")
        ax.grid(axis="x", visible=False)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def curve_chart(curves: pd.DataFrame, curve: str, model: str, colours: dict[str, str] | None = None, *,
                reference: str = REFERENCE_METHOD, baselines: tuple[str, ...] = BASELINES) -> Figure | None:
    """Mean ``curve`` ("deletion"/"insertion"/"road_morf"/"road_lerf") per method, one panel per dataset (the baselines dashed).

    Seeds and folds are pooled with weights ``n`` (the images each stored mean curve averages).
    """
    import matplotlib

    sub = curves[(curves["curve"] == curve) & (curves["model"] == model)].copy()
    if sub.empty:
        return None
    sub["w"] = sub["n"].clip(lower=0).astype(float)
    sub["wv"] = sub["value"] * sub["w"]
    agg = sub.groupby(["dataset", "method", "step"]).agg(fraction=("fraction", "mean"), wv=("wv", "sum"), w=("w", "sum"))
    agg["value"] = agg["wv"] / agg["w"].where(agg["w"] > 0)
    agg = agg.reset_index()
    datasets = sorted(agg["dataset"].unique())
    methods = ordered_methods(agg["method"], reference=reference, baselines=baselines)
    colours = colours or method_colours(methods, baselines=baselines)
    ncol = min(4, len(datasets))
    nrow = int(np.ceil(len(datasets) / ncol))
    lw = legend_width(methods)
    fig = new_figure(2.7 * ncol + 0.8 + lw, 2.5 * nrow + 0.6, left=0.7, right=lw, bottom=0.6, top=0.6,
                     wspace=0.2, hspace=0.6)
    with matplotlib.rc_context(STYLE):
        axes = fig.subplots(nrow, ncol, squeeze=False, sharey=True)
        for ax, d in zip(axes.flat, datasets):
            for m in methods:
                r = agg[(agg["dataset"] == d) & (agg["method"] == m)].sort_values("step")
                if r.empty:
                    continue
                ax.plot(r["fraction"], r["value"], color=colours.get(m, "#333"), lw=1.3,
                        ls="--" if m in baselines else "-", label=m)
            ax.set_title(d)
            ax.set_xlabel("fraction of pixels " + {"insertion": "restored", "deletion": "removed"}.get(curve, "imputed"))
            ax.set_xlim(0, 1)
        for ax in axes.flat[len(datasets):]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("probability of the class")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        figure_legend(fig, handles, labels, lw)
        fig.suptitle(f"Mean {curve} curves ({direction(curve)} area is better)", fontsize=10)
    return fig


def sanity_chart(sanity: pd.DataFrame, model: str, colours: dict[str, str] | None = None, *,
                 reference: str = REFERENCE_METHOD, baselines: tuple[str, ...] = BASELINES) -> Figure | None:
    """Normalised similarity (abs Spearman) to the trained model's maps vs randomisation stage, one panel
    per dataset, one line per method with its bootstrap CI as a band, and the bar (0.5) dashed.

    1 = the map is unchanged, 0 = as changed as by the fully randomised model (the last stage, 0 by
    definition); a stage changes the map when the band's top is under the bar. Several seeds or folds of
    a dataset: the line is their mean and the band spans their CIs. ``None`` when ``model`` has no rows.
    """
    import matplotlib

    from bench.metrics.sanity import BAR  # imported late: bench.metrics imports torch

    sub = sanity[sanity["model"] == model]
    if sub.empty:
        return None
    stages = sub.groupby("stage_index")["stage"].first().sort_index()
    datasets = sorted(sub["dataset"].astype(str).unique())
    methods = ordered_methods(sub["method"], reference=reference, baselines=baselines)
    colours = colours or method_colours(methods, baselines=baselines)
    agg = (sub.assign(dataset=sub["dataset"].astype(str))
           .groupby(["dataset", "method", "stage_index"])
           .agg(normalised=("normalised", "mean"), lo=("normalised_ci_low", "min"), hi=("normalised_ci_high", "max")))
    ncol = min(3, len(datasets))
    nrow = int(np.ceil(len(datasets) / ncol))
    lw = legend_width([*methods, f"bar ({BAR:g})"])
    fig = new_figure(3.2 * ncol + 0.9 + lw, 2.7 * nrow + 1.1, left=0.7, right=lw, bottom=0.85, top=0.75,
                     wspace=0.15, hspace=0.8)
    with matplotlib.rc_context(STYLE):
        axes = fig.subplots(nrow, ncol, squeeze=False, sharey=True)
        for ax, d in zip(axes.flat, datasets):
            for m in methods:
                if (d, m) not in agg.index.droplevel(2):
                    continue
                r = agg.loc[(d, m)].sort_index()
                c = colours.get(m, "#333")
                x = r.index.to_numpy()
                ax.fill_between(x, r["lo"].to_numpy(float), r["hi"].to_numpy(float), color=c, alpha=0.15, lw=0)
                ax.plot(x, r["normalised"].to_numpy(float), marker="o", ms=3, lw=1.3, color=c, label=m,
                        ls="--" if m in baselines else "-")
            ax.axhline(BAR, color="black", ls="--", lw=1.0, label=f"bar ({BAR:g})")
            ax.set_xticks(stages.index, [str(s) for s in stages.to_numpy()], rotation=30, ha="right")
            ax.set_title(d)
        for ax in axes.flat[len(datasets):]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("normalised similarity")
        for i, ax in enumerate(axes.flat[: len(datasets)]):
            if i + ncol >= len(datasets):  # the lowest panel of its column
                ax.set_xlabel("weights randomised down to")
        seen: dict[str, object] = {}
        for ax in axes.flat[: len(datasets)]:  # every method once, though a panel may lack some
            for h, lab in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(lab, h)
        labels = [m for m in methods if m in seen] + [lab for lab in seen if lab not in methods]
        figure_legend(fig, [seen[lab] for lab in labels], labels, lw)
        fig.suptitle("Cascading randomisation: normalised similarity to the trained model's maps\n"
                     "1 = unchanged, 0 = as by the fully random model; passes if the band is under the bar "
                     "at the first stage", fontsize=10)
    return fig


def agreement_heatmap(matrices: dict[str, pd.DataFrame]) -> Figure | None:
    """Heatmaps of Kendall's tau between metrics: one panel per scope (``{"overall": (K, K) frame, dataset:
    ...}``, in that order), diverging colours from -1 (red) through 0 (white) to +1 (blue), the value written in
    each cell (NaN cells grey); metric names on the outer panels only. None when there is no matrix."""
    import matplotlib

    mats = {k: v for k, v in matrices.items() if v is not None and not v.empty}
    if not mats:
        return None
    names = list(mats)
    k = max(len(m) for m in mats.values())
    side = max(1.6, 0.3 * k)
    gap = 0.25
    ncol = min(4, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    label = 0.075 * max(len(str(x)) for m in mats.values() for x in m.index) + 0.2
    top, cbar = 0.55, 0.9
    width = label + ncol * side + (ncol - 1) * gap + cbar
    height = top + nrow * side + (nrow - 1) * (gap + 0.25) + label
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#d0d0d0")
    with matplotlib.rc_context({**STYLE, "axes.grid": False, "font.size": 7}):
        im = None
        for i, name in enumerate(names):
            r, c = divmod(i, ncol)
            x0 = label + c * (side + gap)
            y0 = height - top - (r + 1) * side - r * (gap + 0.25)
            ax = fig.add_axes((x0 / width, y0 / height, side / width, side / height))
            m = mats[name]
            vals = m.to_numpy(dtype=float)
            im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=-1, vmax=1)
            ticks = np.arange(len(m))
            last_in_column = i + ncol >= len(names)
            ax.set_xticks(ticks, [str(x) for x in m.columns] if last_in_column else [""] * len(m), rotation=90)
            ax.set_yticks(ticks, [str(x) for x in m.index] if c == 0 else [""] * len(m))
            ax.set_title(name, fontsize=8.5)
            for (a, b), v in np.ndenumerate(vals):
                if np.isfinite(v) and len(m) <= 10:
                    ax.text(b, a, f"{v:.1f}".replace("-0.0", "0.0"), ha="center", va="center", fontsize=5.5,
                            color="white" if abs(v) > 0.6 else "black")
        if im is not None:
            cax = fig.add_axes(((width - cbar + 0.25) / width, (height - top - side) / height, 0.12 / width,
                                side / height))
            fig.colorbar(im, cax=cax, label="Kendall tau")
        fig.suptitle("Agreement between the metrics' rankings of the methods (Kendall tau; +1 = same order)",
                     fontsize=10, y=1 - 0.15 / height)
    return fig
