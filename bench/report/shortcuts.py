"""The scorecard's Shortcuts section (issue 9): does the map reveal a classifier that is right for the
wrong reason?

Reads ``shortcuts.parquet`` (the classifier on the correlated and the decorrelated test split, per
dataset x model x seed x fold), ``confounder_results.parquet`` (every method's maps scored against the
cue's mask) and ``results.parquet`` (the same maps against the lesion's mask), all written by the
sweep (:mod:`bench.sweep.shortcuts`). Definitions (docs/shortcuts.md):

- **shortcut strength** of a trained classifier = accuracy on the correlated test split minus accuracy on
  the decorrelated one (the *drop*); seeds and folds are averaged.
- **cue share** / **lesion share** of a method = its mean energy pointing game (share of the map's positive
  mass) against the cue's / the lesion's mask; **cue pointing** / **lesion pointing** = its pointing game
  (is the map's maximum on the mask). The images are the decorrelated test images of the cue's class that
  carry the cue, explained for their class.
- **concentration** on a region = share / the region's area (share of the image's pixels): 1 for a
  uniform map. It makes a small cue and a larger lesion comparable.
- **shortcut detection** of a method = Spearman's rank correlation, over every dataset of the run (each
  phantom x p), between its cue share and the shortcut strength: a map that reveals what the classifier
  uses puts more of its mass on the cue the more the classifier relies on it.
- **verdict**, on the datasets with a strong shortcut (drop >= :data:`STRONG_DROP`): the map *shows* a
  region (lesion or cue) when its concentration there is at least :data:`SHOWS_CONCENTRATION` and at
  least :data:`SHOWS_MARGIN` times its concentration on the other; *both* when both reach
  :data:`SHOWS_CONCENTRATION` without that margin; else *neither*. Showing the lesion there is
  **misleading** (the classifier relies on the cue). Showing the cue **reveals the shortcut** when the cue
  share also tracks the shortcut (rho >= :data:`DETECTS_RHO`); otherwise the map shows the cue whatever
  the classifier does (e.g. an edge detector: the cue is a high-contrast object), which is no evidence
  about the classifier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import html as H

STRONG_DROP = 0.2  # a drop in accuracy at least this large = the classifier relies on the cue
SHOWS_CONCENTRATION = 2.0  # a map "shows" a region holding at least twice the share a uniform map puts there
SHOWS_MARGIN = 1.5  # ... and at least 1.5 times as concentrated there as on the other region
DETECTS_RHO = 0.5  # cue share tracks the shortcut's strength (Spearman over the run's datasets)
SHARE, POINTING = "energy_pointing_game", "pointing_game"
OUTPUTS = ("shortcuts_classifier.csv", "shortcuts_methods.csv", "shortcuts_detection.csv")


def _spearman(x, y) -> float:
    """Spearman's rho (average ranks for ties); NaN for fewer than 3 finite pairs or a constant input."""
    df = pd.DataFrame({"x": x, "y": y}).dropna()
    if len(df) < 3 or df["x"].nunique() < 2 or df["y"].nunique() < 2:
        return float("nan")
    return float(df["x"].rank().corr(df["y"].rank()))


def classifier_table(shortcuts: pd.DataFrame) -> pd.DataFrame:
    """Per model and dataset: phantom, cue, cue class, p, both accuracies, the drop and the flip rate
    (means over seeds and folds; ``runs`` = how many)."""
    keys = ["model", "dataset", "phantom", "cue", "cue_class", "p"]
    agg = shortcuts.groupby(keys, sort=False).agg(
        runs=("seed", "size"), n_correlated=("n_correlated", "mean"), n_decorrelated=("n_decorrelated", "mean"),
        accuracy_correlated=("accuracy_correlated", "mean"), accuracy_decorrelated=("accuracy_decorrelated", "mean"),
        drop=("drop", "mean"), flip_rate=("flip_rate", "mean"),
    ).reset_index()
    return agg.sort_values(["model", "phantom", "p"], kind="stable").reset_index(drop=True)


def _means(frame: pd.DataFrame, metric: str, name: str) -> pd.Series:
    f = frame[(frame["metric"] == metric) & (frame["excluded"].fillna("") == "")]
    return f.groupby(["model", "dataset", "method"])["value"].mean().rename(name)


def method_table(classifier: pd.DataFrame, lesion: pd.DataFrame, cue: pd.DataFrame) -> pd.DataFrame:
    """Per model, dataset and method: cue and lesion share, cue and lesion pointing, the images scored,
    with the dataset's phantom, p and drop."""
    lesion = lesion[lesion["dataset"].isin(classifier["dataset"])]
    parts = [_means(cue, SHARE, "cue_share"), _means(lesion, SHARE, "lesion_share"),
             _means(cue, POINTING, "cue_pointing"), _means(lesion, POINTING, "lesion_pointing")]
    c = cue[(cue["metric"] == SHARE) & (cue["excluded"].fillna("") == "")].copy()
    by = c.groupby(["model", "dataset", "method"])
    n = by["value"].count().rename("n_images")
    for col in ("cue_area", "lesion_area"):
        c[col] = c[col].where(c[col] > 0) if col in c.columns else np.nan  # an image without that mask: no area
    areas = c.groupby(["model", "dataset", "method"])[["cue_area", "lesion_area"]].mean()
    table = pd.concat([*parts, n, areas], axis=1).reset_index()
    table["cue_concentration"] = table["cue_share"] / table["cue_area"]
    table["lesion_concentration"] = table["lesion_share"] / table["lesion_area"]
    info = classifier[["model", "dataset", "phantom", "cue", "p", "drop"]]
    table = table.merge(info, on=["model", "dataset"], how="inner")
    return table.sort_values(["model", "method", "phantom", "p"], kind="stable").reset_index(drop=True)


def shows(cue_concentration: float, lesion_concentration: float) -> str:
    """"cue", "lesion", "both" or "neither" (module docstring; "-" if either concentration is undefined)."""
    c, l = cue_concentration, lesion_concentration
    if not (np.isfinite(c) and np.isfinite(l)):
        return "-"
    if c >= SHOWS_CONCENTRATION and c >= SHOWS_MARGIN * l:
        return "cue"
    if l >= SHOWS_CONCENTRATION and l >= SHOWS_MARGIN * c:
        return "lesion"
    return "both" if min(c, l) >= SHOWS_CONCENTRATION else "neither"


def verdict(shown: str, rho: float, strong: int) -> str:
    """The scorecard's verdict from what the map shows where the shortcut is strong and its detection rho."""
    if not strong:
        return "no strong shortcut in this run"
    if shown == "lesion":
        return "misleading"
    if shown == "cue":
        return "reveals the shortcut" if np.isfinite(rho) and rho >= DETECTS_RHO else "shows the cue regardless"
    return {"both": "shows both", "neither": "shows neither"}.get(shown, "-")


def detection_table(methods: pd.DataFrame) -> pd.DataFrame:
    """Per model and method, ranked by shortcut detection (best first): ``rho`` (Spearman of cue share vs
    drop over every dataset), ``rho_per_phantom`` (its mean over phantoms, across p only), the shares and
    pointing on the strong-shortcut datasets, what the map shows there, and the verdict."""
    rows = []
    for (model, method), g in methods.groupby(["model", "method"], sort=True):
        per_phantom = [_spearman(h["cue_share"], h["drop"]) for _, h in g.groupby("phantom")]
        strong = g[g["drop"] >= STRONG_DROP]
        row = {"model": model, "method": method, "rho": _spearman(g["cue_share"], g["drop"]),
               "rho_per_phantom": float(np.nanmean(per_phantom)) if np.isfinite(per_phantom).any() else float("nan"),
               "datasets": len(g), "strong_datasets": len(strong)}
        for c in ("cue_share", "lesion_share", "cue_pointing", "lesion_pointing"):
            row[f"{c}_strong"] = float(strong[c].mean()) if len(strong) else float("nan")
        for c in ("cue", "lesion"):  # ratio of means over the strong datasets
            area = strong[f"{c}_area"].mean() if len(strong) else float("nan")
            row[f"{c}_concentration_strong"] = row[f"{c}_share_strong"] / area if area > 0 else float("nan")
        row["shows"] = (shows(row["cue_concentration_strong"], row["lesion_concentration_strong"])
                        if len(strong) else "-")
        row["verdict"] = verdict(row["shows"], row["rho"], len(strong))
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["rank"] = out.groupby("model")["rho"].rank(ascending=False, method="min")
    return out.sort_values(["model", "rho", "method"], ascending=[True, False, True], na_position="last",
                           kind="stable").reset_index(drop=True)


def tables(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """``(classifier, methods, detection)`` tables of a run folder; None when it has no shortcut results."""
    run_dir = Path(run_dir)
    path = run_dir / "shortcuts.parquet"
    if not path.is_file():
        return None
    shortcuts = pd.read_parquet(path)
    if shortcuts.empty:
        return None
    classifier = classifier_table(shortcuts)
    cue_path, res_path = run_dir / "confounder_results.parquet", run_dir / "results.parquet"
    if cue_path.is_file() and res_path.is_file():
        methods = method_table(classifier, pd.read_parquet(res_path), pd.read_parquet(cue_path))
    else:
        methods = pd.DataFrame(columns=["model", "dataset", "method", "cue_share", "lesion_share", "cue_pointing",
                                        "lesion_pointing", "n_images", "cue_area", "lesion_area",
                                        "cue_concentration", "lesion_concentration", "phantom", "cue", "p", "drop"])
    return classifier, methods, detection_table(methods)


# ---------------------------------------------------------------------------------------------------
# figures


def accuracy_figure(classifier: pd.DataFrame, model: str):
    """Accuracy on both test splits, and the drop, against p: one line per phantom."""
    import matplotlib

    from bench.report.figures import STYLE, figure_legend, legend_width, new_figure

    sub = classifier[classifier["model"] == model]
    if sub.empty:
        return None
    phantoms = sorted(sub["phantom"].unique())
    cmap = matplotlib.colormaps["tab10"]
    labels = [f"{ph.removeprefix('synthetic-')} ({sub[sub['phantom'] == ph]['cue'].iloc[0]})" for ph in phantoms]
    lw = legend_width([*labels, "decorrelated test"])
    fig = new_figure(7.6 + lw, 3.2, right=lw, wspace=0.3, top=0.6)
    with matplotlib.rc_context(STYLE):
        ax_acc, ax_drop = fig.subplots(1, 2, sharex=True)
        for i, (ph, label) in enumerate(zip(phantoms, labels)):
            r = sub[sub["phantom"] == ph].sort_values("p")
            ax_acc.plot(r["p"], r["accuracy_correlated"], marker="o", ms=3, color=cmap(i), label=label)
            ax_acc.plot(r["p"], r["accuracy_decorrelated"], marker="o", ms=3, ls="--", color=cmap(i))
            ax_drop.plot(r["p"], r["drop"], marker="o", ms=3, color=cmap(i))
        ax_acc.plot([], [], color="black", label="correlated test")
        ax_acc.plot([], [], color="black", ls="--", label="decorrelated test")
        ax_acc.set_ylim(0, 1.02)
        ax_acc.set_title("Accuracy on the two test splits")
        ax_acc.set_ylabel("accuracy")
        ax_drop.axhline(STRONG_DROP, color="#999", lw=0.8, ls=":")
        ax_drop.set_title("Shortcut strength: the drop")
        ax_drop.set_ylabel("accuracy drop")
        for ax in (ax_acc, ax_drop):
            ax.set_xlabel("p (cue on the cue's class in training)")
        handles, names = ax_acc.get_legend_handles_labels()
        figure_legend(fig, handles, names, lw)
    return fig


def share_figure(methods: pd.DataFrame, model: str, colours: dict[str, str], roles=None):
    """Cue share (top row) and lesion share (bottom row) against p, one column per phantom, one line per
    method (the baselines of ``roles``, a :class:`bench.report.reference.Roles`, dashed); the drop in grey on a
    twin axis of the top row."""
    import matplotlib

    from bench.report.figures import STYLE, figure_legend, legend_width, new_figure, ordered_methods
    from bench.report.reference import Roles

    roles = roles or Roles()
    baselines = roles.baselines
    sub = methods[methods["model"] == model]
    if sub.empty:
        return None
    phantoms = sorted(sub["phantom"].unique())
    names = ordered_methods(sub["method"], reference=roles.reference, baselines=roles.baselines)
    lw = legend_width([*names, "accuracy drop"])
    n = len(phantoms)
    fig = new_figure(2.9 * n + 1.3 + lw, 5.4, right=lw + 0.4, wspace=0.35, hspace=0.45, top=0.6)  # + the twin axis
    with matplotlib.rc_context(STYLE):
        axes = fig.subplots(2, n, squeeze=False, sharex=True)
        for j, ph in enumerate(phantoms):
            g = sub[sub["phantom"] == ph]
            for m in names:
                r = g[g["method"] == m].sort_values("p")
                style = dict(color=colours.get(m, "#333"), lw=1.2, ls="--" if m in baselines else "-",
                             marker="o", ms=2.5)
                axes[0, j].plot(r["p"], r["cue_share"], label=m, **style)
                axes[1, j].plot(r["p"], r["lesion_share"], **style)
            drop = g.groupby("p")["drop"].first().sort_index()
            twin = axes[0, j].twinx()
            twin.plot(drop.index, drop.to_numpy(), color="#777", lw=2.5, alpha=0.35)
            twin.set_ylim(-0.05, 1.0)
            twin.tick_params(labelsize=7, colors="#777")
            twin.grid(False)
            axes[0, j].set_title(f"{ph.removeprefix('synthetic-')} ({g['cue'].iloc[0]})")
            axes[1, j].set_xlabel("p")
        axes[0, 0].set_ylabel("cue share")
        axes[1, 0].set_ylabel("lesion share")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        handles.append(matplotlib.lines.Line2D([], [], color="#777", lw=2.5, alpha=0.35))
        labels.append("accuracy drop")
        figure_legend(fig, handles, labels, lw)  # in the last lw inches: clear of the twin axis' labels
        fig.suptitle("Share of positive saliency on the cue (top) and on the lesion (bottom) against p", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------
# the section


def _verdict_cls(v: str) -> str:
    return {"reveals the shortcut": "pass", "misleading": "fail", "shows neither": "partial", "shows both": "partial",
            "shows the cue regardless": "partial"}.get(v, "")


def _intro_html() -> str:
    """The section's opening paragraph: the cue, the two test splits, the drop and the flips."""
    return (
        "<p>Each phantom carries a cue outside the lesion (a corner <code>tag</code>, an <code>ink</code> "
        "stroke, a <code>ruler</code>) drawn on the cue's class with probability <i>p</i> in training, "
        "validation and the <b>correlated</b> test split, never on the other classes. In the "
        "<b>decorrelated</b> test split every test image appears twice, without and with the cue, whatever "
        "its class. The <b>drop</b> (correlated minus decorrelated accuracy) is how much the classifier relies "
        "on the cue; <b>flips</b> is the share of image pairs whose prediction changes with the cue alone. "
        f"A drop of at least {STRONG_DROP:g} counts as a strong shortcut.</p>"
    )


def _classifier_html(classifier: pd.DataFrame, model: str, figures) -> str:
    """"The classifier" for ``model``: a row per dataset of :func:`classifier_table` beside the
    accuracy figure (rendered by ``figures.img``)."""
    c = classifier[classifier["model"] == model]
    rows = [[r["phantom"].removeprefix("synthetic-"), f"{r['cue']} on {r['cue_class']}", float(r["p"]),
             float(r["accuracy_correlated"]), float(r["accuracy_decorrelated"]),
             H.Cell(H.fmt(float(r["drop"])), cls="num best" if r["drop"] >= STRONG_DROP else "num"),
             float(r["flip_rate"]), f"{r['n_correlated']:.0f} / {r['n_decorrelated']:.0f}", int(r["runs"])]
            for _, r in c.iterrows()]
    return ("<h3>The classifier</h3><div class=\"side\">" + H.table(
        ["phantom", "cue", "p", "accuracy, correlated", "accuracy, decorrelated", "drop", "flips",
         "test images", "runs"], rows)
        + figures.img(accuracy_figure(classifier, model), f"shortcuts_accuracy_{model}",
                      "accuracy on both test splits and the drop against p") + "</div>")


def _detection_intro_html() -> str:
    """The paragraph that defines rho, per phantom, concentration, pointing, "shows" and the verdicts."""
    return (
        "<h3>Shortcut detection</h3><p>Per method: <b>rho</b> = Spearman's rank correlation, over every "
        "phantom and p of this run, between the method's cue share (share of its positive saliency on the "
        "cue's mask) and the drop: does the map put more weight on the cue the more the classifier uses it? "
        "<b>per phantom</b>: the mean of the same correlation within each phantom, across p only (the "
        "explained images are the same for every p of a phantom, so only the classifier changes; a method "
        "that ignores the model has none). On the datasets with a strong shortcut "
        f"(drop &ge; {STRONG_DROP:g}): the shares, the <b>concentration</b> (share / the region's area: 1 for "
        "a uniform map) and the pointing game (the map's maximum on the region) for the cue and the lesion. "
        f"The map <i>shows</i> a region when it is at least {SHOWS_CONCENTRATION:g}&times; uniform there and "
        f"{SHOWS_MARGIN:g}&times; as concentrated as on the other (<i>both</i>: both at least "
        f"{SHOWS_CONCENTRATION:g}&times; without that margin). Showing the lesion while the classifier "
        "relies on the cue is <b>misleading</b>; showing the cue <b>reveals the shortcut</b> if the cue share "
        f"also tracks the drop (rho &ge; {DETECTS_RHO:g}), else the map shows the cue <i>regardless</i> of the "
        "classifier.</p>"
    )


def _detection_table_html(d: pd.DataFrame, baselines: tuple[str, ...]) -> str:
    """The ranking of :func:`detection_table` rows ``d`` (one model) with their verdicts."""
    rows = []
    for _, r in d.iterrows():
        base = r["method"] in baselines
        rank = H.fmt(float(r["rank"]), 0) if np.isfinite(r["rank"]) else "-"
        rows.append([rank, H.Cell(r["method"] + (" (baseline)" if base else ""),
                                  cls="method baseline" if base else "method"),
                     float(r["rho"]), float(r["rho_per_phantom"]), float(r["cue_share_strong"]),
                     float(r["lesion_share_strong"]),
                     H.Cell(H.fmt(float(r["cue_concentration_strong"]), 1), cls="num"),
                     H.Cell(H.fmt(float(r["lesion_concentration_strong"]), 1), cls="num"),
                     float(r["cue_pointing_strong"]), float(r["lesion_pointing_strong"]),
                     H.Cell(r["verdict"], cls=_verdict_cls(r["verdict"]))])
    return H.table(["#", "method", "rho", "per phantom", "cue share", "lesion share",
                    "cue ×uniform", "lesion ×uniform", "cue pointing", "lesion pointing", "verdict"],
                   rows,
                   caption=f"Shares, concentration and pointing: means over the "
                           f"{int(d['strong_datasets'].max())} dataset(s) with a strong shortcut, "
                           f"of {int(d['datasets'].max())}.")


def _all_methods_html(m: pd.DataFrame) -> str:
    """The collapsed table of :func:`method_table` rows ``m`` (one model): every method on every dataset;
    "" when there are none."""
    if m.empty:
        return ""
    rows = [[r["method"], r["phantom"].removeprefix("synthetic-"), float(r["p"]), float(r["drop"]),
             float(r["cue_share"]), float(r["lesion_share"]),
             H.Cell(H.fmt(float(r["cue_concentration"]), 1), cls="num"),
             H.Cell(H.fmt(float(r["lesion_concentration"]), 1), cls="num"), float(r["cue_pointing"]),
             float(r["lesion_pointing"]), int(r["n_images"])] for _, r in m.iterrows()]
    return "<details><summary>Every method on every dataset</summary>" + H.table(
        ["method", "phantom", "p", "drop", "cue share", "lesion share", "cue ×uniform", "lesion ×uniform",
         "cue pointing", "lesion pointing", "images"], rows) + "</details>"


def section(run_dir: str | Path, out: Path, figures, colours: dict[str, str], written: dict[str, Path],
            roles=None) -> str | None:
    """The Shortcuts section's HTML (None when the run has no shortcut results; stale CSVs are removed).
    Writes ``shortcuts_classifier.csv``, ``shortcuts_methods.csv`` and ``shortcuts_detection.csv``. ``roles``
    (:class:`bench.report.reference.Roles`, default the defaults): the baselines shown as such."""
    from bench.report.reference import Roles

    roles = roles or Roles()
    t = tables(run_dir)
    if t is None:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        return None
    classifier, methods, detection = t
    for name, frame in zip(OUTPUTS, t):
        frame.to_csv(out / name, index=False)
        written[name] = out / name
    from bench.report.figures import method_colours

    colours = {**method_colours(methods["method"], baselines=roles.baselines), **colours}
    parts = [_intro_html()]
    for model in sorted(classifier["model"].unique()):
        if classifier["model"].nunique() > 1:
            parts.append(f"<h3>Model <code>{H.esc(model)}</code></h3>")
        parts.append(_classifier_html(classifier, model, figures))
        d = detection[detection["model"] == model] if not detection.empty else detection
        parts.append(_detection_intro_html())
        if d is None or d.empty:
            parts.append(H.note("No method was scored against the cue's mask in this run."))
        else:
            parts.append(_detection_table_html(d, roles.baselines))
            parts.append(figures.img(share_figure(methods, model, colours, roles), f"shortcuts_shares_{model}",
                                     "cue share and lesion share against p per method"))
        parts.append(_all_methods_html(methods[methods["model"] == model]))
    return "".join(parts)
