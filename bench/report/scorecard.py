"""Rebuild every table and figure of a run folder, and the one-page ``scorecard.html``.

:func:`build_report` reads only the stored files of a sweep run folder (docs/CONTRACTS.md, "Sweep run
folder") and writes, into the same folder unless ``out_dir`` is given:

- ``leaderboard.csv``, ``leaderboard_overall.csv``, ``leaderboard.md``, ``metric_agreement.csv`` (always);
- ``classification.csv``, ``classification.md`` (when ``classification.parquet`` exists);
- ``sanity_summary.csv`` (when ``sanity.parquet`` exists);
- ``verification.csv`` / ``class_sensitivity.csv`` (when ``verified.parquet`` / ``class_sensitivity.parquet``
  exist: :mod:`bench.report.model_checks`);
- ``shortcuts_*.csv`` and the Shortcuts section (when ``shortcuts.parquet`` exists: the shortcut suite);
- ``figures/*.png`` (bar charts, curves, sanity), ``figures/gallery_*.jpg`` and ``scorecard.html``.

Only ``results.parquet`` is required. A missing optional input turns its section of the page into a
note, and removes the outputs a previous report built from it (so nothing stale is left behind);
``figures/`` belongs to the report and is emptied of PNG/JPEG files before each rebuild.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import html as H
from bench.report.classification import display_rows, write_classification
from bench.report.figures import bar_chart, curve_chart, method_colours, sanity_chart, save_figure
from bench.report.gallery import gallery_figure, load_gallery
from bench.report.leaderboard import (
    MARK_BETTER, MARK_NOT_BEATING, MARK_WORSE, ci_coverage_note, format_rank, leaderboard, metric_matrix,
    overall_ranking, write_leaderboard,
)
from bench.report.reference import (
    PAPER_CITATION, Roles, direction, is_oracle, metric_help, roles_of,
)
from bench.report.sanity import sanity_summary
from bench.report.model_checks import model_check_entries
from bench.report.repeatability import repeatability_entries
from bench.report.trust import agreement_entry, metric_agreement, write_agreement
from bench.report.trust import section as trust_section

OPTIONAL_OUTPUTS = {
    "classification.parquet": ("classification.csv", "classification.md"),
    "sanity.parquet": ("sanity_summary.csv",),
}


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(s)).strip("_") or "x"


def _read_parquet(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def read_errors(path: Path) -> tuple[list[dict], int]:
    """The records of ``errors.jsonl`` and the number of lines that were not valid JSON objects."""
    records, bad = [], 0
    if not path.is_file():
        return records, bad
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(obj, dict):
            records.append(obj)
        else:
            bad += 1
    return records, bad


def build_report(
    run_dir: str | Path,
    *,
    out_dir: str | Path | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    reference: str | None = None,
    baselines: tuple[str, ...] | None = None,
    model_blind: tuple[str, ...] | None = None,
) -> dict[str, Path]:
    """Rebuild all tables and figures of ``run_dir`` and write ``scorecard.html``.

    Args:
        run_dir: a sweep run folder (holds at least ``results.parquet``).
        out_dir: where to write (default: ``run_dir`` itself).
        n_resamples, seed, confidence: of the bootstrap confidence intervals.
        reference, baselines, model_blind: the roles of :class:`bench.report.reference.Roles`; ``None`` = the
            run's own (its suite's ``[report]`` table in ``run.json``), else the defaults (grad_cam; centre,
            random; centre, random, edge).

    Returns:
        ``{name: path}`` of every file written (names relative to the output folder).

    Raises:
        FileNotFoundError: ``run_dir`` has no ``results.parquet``.
        ValueError: a stored table lacks required columns, or a metric has no known direction.
    """
    run_dir = Path(run_dir)
    results_path = run_dir / "results.parquet"
    if not results_path.is_file():
        raise FileNotFoundError(
            f"{results_path} not found: point `bench report` at a run folder written by `bench run`"
        )
    out = Path(out_dir) if out_dir is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    figdir = out / "figures"
    figdir.mkdir(exist_ok=True)
    for old in [*figdir.glob("*.png"), *figdir.glob("*.jpg")]:
        old.unlink()

    results = pd.read_parquet(results_path)
    run_info = _read_run_json(run_dir / "run.json")
    run_name = _run_name(results, run_info, run_dir)
    roles = run_roles(run_info, reference=reference, baselines=baselines, model_blind=model_blind)
    board = leaderboard(results, n_resamples=n_resamples, confidence=confidence, seed=seed,
                        reference=roles.reference, baselines=roles.baselines, model_blind=roles.model_blind)
    overall = overall_ranking(board)
    written: dict[str, Path] = dict(write_leaderboard(board, out, title=f"Leaderboard: {run_name}", n_resamples=n_resamples))

    inputs = {name: _read_parquet(run_dir / name) for name in ("classification.parquet", "curves.parquet", "sanity.parquet")}
    for name, outputs in OPTIONAL_OUTPUTS.items():
        if inputs[name] is None:
            for o in outputs:
                (out / o).unlink(missing_ok=True)
    if inputs["classification.parquet"] is not None:
        written.update(write_classification(inputs["classification.parquet"], out))
    sanity = inputs["sanity.parquet"]
    sanity_table = sanity_summary(sanity) if sanity is not None else None
    if sanity_table is not None:
        written["sanity_summary.csv"] = out / "sanity_summary.csv"
        sanity_table.to_csv(written["sanity_summary.csv"], index=False)

    all_methods = set(board["method"]) | set(inputs["curves.parquet"]["method"] if inputs["curves.parquet"] is not None else [])
    colours = method_colours(all_methods, baselines=roles.baselines)
    figures = _Figures(figdir, written)
    models = sorted(board["model"].unique()) if not board.empty else []
    errors, bad_lines = read_errors(run_dir / "errors.jsonl")

    # "How far to trust this ranking": one entry per table (bench.report.trust.TrustEntry); add new ones here
    agreement = metric_agreement(board)
    written.update(write_agreement(agreement, out))
    trust_entries = [agreement_entry(agreement, models, figures.img)]
    trust_entries += model_check_entries(run_dir, out, board, run_info, written, n_resamples=n_resamples,
                                         confidence=confidence, seed=seed)  # verified lesions, class sensitivity
    trust_entries += repeatability_entries(results, _read_parquet(run_dir / "repeatability.parquet"), out, written,
                                           n_resamples=n_resamples)  # a run with two or more seeds

    from bench.report.shortcuts import section as shortcuts_section

    shortcuts_html = shortcuts_section(run_dir, out, figures, colours, written, roles)  # None unless it has them
    sections = [
        ("run", "Run", _section_run(run_info, run_dir)),
        ("ranking", "Overall ranking", _section_overall(overall, models, sanity_table, roles)),
        *([("shortcuts", "Shortcuts", shortcuts_html)] if shortcuts_html is not None else []),
        ("reading", "How to read this", _section_reading(board, n_resamples, confidence)),
        ("metrics", "Leaderboards", _section_metrics(board, models, figures, colours, confidence)),
        ("trust", "How far to trust this ranking", trust_section(trust_entries)),
        ("curves", "Deletion, insertion and ROAD", _section_curves(inputs["curves.parquet"], models, figures, colours,
                                                            roles)),
        ("sanity", "Sanity checks", _section_sanity(sanity, sanity_table, models, figures, colours, roles)),
        ("classification", "Classification", _section_classification(inputs["classification.parquet"])),
        ("gallery", "Gallery", _section_gallery(run_dir / "gallery", figures)),
        ("errors", "Errors and exclusions", _section_errors(results, errors, bad_lines)),
    ]
    page = _page(run_name, run_info, sections)
    written["scorecard.html"] = out / "scorecard.html"
    written["scorecard.html"].write_text(page, encoding="utf-8")
    return written


class _Figures:
    """Saves each figure once under ``figures/`` and hands back its ``<img>`` tag."""

    def __init__(self, figdir: Path, written: dict[str, Path]):
        self.figdir, self.written = figdir, written

    def img(self, fig, name: str, alt: str, *, fmt: str = "png") -> str:
        if fig is None:
            return ""
        path = self.figdir / f"{_slug(name)}.{'jpg' if fmt == 'jpeg' else fmt}"
        data = save_figure(fig, path, fmt=fmt)
        self.written[f"figures/{path.name}"] = path
        return H.img_tag(data, alt, mime=f"image/{fmt}")


# ---------------------------------------------------------------------------------------------------
# Sections


def run_roles(info: dict, *, reference: str | None = None, baselines=None, model_blind=None) -> Roles:
    """The :class:`Roles` of a report: each given one, else the run's (``run.json`` -> suite -> report:
    ``reference``, ``baselines``, ``model_blind``), else the default."""
    suite = info.get("suite") if isinstance(info, dict) else None
    stored = suite.get("report", {}) if isinstance(suite, dict) and isinstance(suite.get("report"), dict) else {}
    default = Roles()
    return Roles(
        reference if reference is not None else str(stored.get("reference", default.reference)),
        tuple(baselines if baselines is not None else stored.get("baselines", default.baselines)),
        tuple(model_blind if model_blind is not None else stored.get("model_blind", default.model_blind)),
    )


def _read_run_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return {"_error": f"{path.name} is not valid JSON: {exc}"}
    return obj if isinstance(obj, dict) else {"_error": f"{path.name} does not hold a JSON object"}


def _run_name(results: pd.DataFrame, info: dict, run_dir: Path) -> str:
    suite = info.get("suite")
    if isinstance(suite, dict) and suite.get("name"):
        return str(suite["name"])
    if isinstance(suite, str) and suite:
        return suite
    if "run" in results.columns and results["run"].nunique() == 1:
        return str(results["run"].iloc[0])
    return run_dir.resolve().name


def _duration(seconds: object) -> str:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    if not math.isfinite(s):
        return "-"
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _kv_lines(obj: object, *, seconds: bool = False) -> str:
    if isinstance(obj, dict):
        return "".join(
            f"<div><b>{H.esc(k)}</b>: {H.esc(_duration(v) if seconds and isinstance(v, (int, float)) else _short(v))}</div>"
            for k, v in obj.items()
        )
    return f"<div>{H.esc(_short(obj))}</div>"


def _readable_stats(stats: dict) -> dict:
    """run.json's ``stats`` for the Jobs card: per-stage counts and times as short text (the compute time is
    in the Time card)."""
    out = {}
    for k, v in stats.items():
        if k == "compute_seconds_by_stage":
            continue
        if k == "seconds_by_stage" and isinstance(v, dict):
            v = ", ".join(f"{s} {_duration(t)}" for s, t in v.items()) or "-"
            k = "time by stage (last run)"
        elif k == "ran" and isinstance(v, dict):
            v = ", ".join(f"{s} {n}" for s, n in v.items()) or "none (all stored)"
        out[k] = v
    return out


def _short(v: object) -> str:
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float, bool)) for x in v):
        text = ", ".join(map(str, v))
        return text if len(text) <= 300 else text[:297] + "..."
    if isinstance(v, (dict, list, tuple)):
        text = json.dumps(v, default=str)
        return text if len(text) <= 160 else text[:157] + "..."
    return str(v)


def _first(info: dict, *keys: str):
    for k in keys:
        cur = info
        for part in k.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur not in (None, "", {}):
            return cur
    return None


def _section_run(info: dict, run_dir: Path) -> str:
    if not info:
        return H.note("No run.json in this run folder: suite, versions, hardware and git revision are unknown.")
    cards = []
    if "_error" in info:
        cards.append(("run.json", H.esc(info["_error"])))
    suite = info.get("suite")
    if suite is not None:
        if isinstance(suite, dict):
            fields = {k: suite[k] for k in ("name", "description", "datasets", "models", "seeds", "folds",
                                            "methods", "metrics") if k in suite and suite[k] not in ("", None)}
            cards.append(("Suite", _kv_lines(fields or suite)))
        else:
            cards.append(("Suite", _kv_lines(suite)))
    rev = _first(info, "git_revision", "git.revision", "git.commit", "git")
    if rev is not None:
        cards.append(("Git revision", f"<code>{H.esc(_short(rev))}</code>"))
    wall = _first(info, "seconds_total", "wall_time_s", "wall_s", "wall_time", "timings.total")
    jobs = _first(info, "seconds_jobs")
    when = _first(info, "finished", "started", "start_time", "created")
    peak = _first(info, "peak_rss_mb")
    if wall is not None or when is not None:
        body = ""
        stats = info.get("stats")
        compute = stats.get("compute_seconds_by_stage") if isinstance(stats, dict) else None
        if compute:
            parts = ", ".join(f"{k} {_duration(v)}" for k, v in compute.items())
            body += (f"<div><b>compute time of these results</b>: {H.esc(_duration(sum(compute.values())))} "
                     f"({H.esc(parts)})</div>")
        if wall is not None:
            body += f"<div><b>wall time of the last run</b>: {H.esc(_duration(wall))}</div>"
        if jobs is not None:
            body += f"<div><b>of which jobs</b>: {H.esc(_duration(jobs))}</div>"
        if peak is not None:
            body += f"<div><b>peak memory</b>: {H.esc(H.fmt(float(peak), 0))} MB</div>"
        if when is not None:
            label = "finished" if "finished" in info else "started"
            body += f"<div><b>{label}</b>: {H.esc(when)}</div>"
        cards.append(("Time", body))
    for key, label, secs in (("seeds", "Seeds", False), ("hardware", "Hardware", False),
                             ("versions", "Versions", False), ("timings", "Time per stage", True),
                             ("stats", "Jobs", False)):
        if key == "stats" and isinstance(info.get(key), dict):
            cards.append((label, _kv_lines(_readable_stats(info[key]))))
        elif key in info:
            cards.append((label, _kv_lines(info[key], seconds=secs)))
    shown = {"suite", "git_revision", "git", "wall_time_s", "wall_s", "wall_time", "started", "start_time",
             "created", "finished", "seconds_total", "seconds_jobs", "peak_rss_mb", "seeds", "hardware",
             "versions", "timings", "stats", "_error"}
    extra = {k: v for k, v in info.items() if k not in shown and not isinstance(v, (dict, list))}
    if extra:
        cards.append(("Other", _kv_lines(extra)))
    html = '<div class="meta">' + "".join(
        f'<div class="card"><h4>{H.esc(t)}</h4>{body}</div>' for t, body in cards
    ) + "</div>"
    if "_error" not in info:
        html += ("<details><summary>Full run.json (resolved suite, seeds, versions, hardware)</summary>"
                 f"<pre><code>{H.esc(json.dumps(info, indent=2, default=str))}</code></pre></details>")
    return html


def _section_overall(overall: pd.DataFrame, models: list[str], sanity_table: pd.DataFrame | None,
                     roles: Roles = Roles()) -> str:
    if overall.empty:
        return H.note("The results table has no scored rows.")
    baselines = roles.baselines
    parts = ["<p>Mean rank of each method across datasets, per metric and overall (mean over the metrics). "
             "1 is best; baselines are ranked too. <em>Rank</em>: the position by mean rank with its 95% "
             "bootstrap interval (the positions recomputed on resampled images, and models when there are "
             f"several). <em>Beats {H.esc(' / '.join(baselines) or '-')}</em>: in how many (dataset, metric) cells "
             "the method beat that baseline beyond the confidence interval of the paired difference (n/a: the "
             "baseline itself); <em>beats baselines</em>: cells where it beat "
             f"{'both' if len(baselines) == 2 else 'all of them'} (n/a for the baselines).</p>"]
    verdicts = {}
    if sanity_table is not None:
        verdicts = {(r["model"], r["method"]): r["overall"] for _, r in sanity_table.iterrows()}
    for model in models:
        ov = overall[overall["model"] == model]
        rank_cols = [c for c in ov.columns if c.startswith("rank_")]
        beats = [f"beats_{b}" for b in baselines if f"beats_{b}" in ov.columns]
        header = ["#", "method", *[c[5:] for c in rank_cols], "mean rank", "rank [95%]",
                  *[c.replace("_", " ") for c in beats], "beats baselines"]
        if verdicts:
            header.append("sanity check")
        rows = []
        for i, (_, r) in enumerate(ov.iterrows(), 1):
            base = r["method"] in baselines
            row = [i, H.Cell(r["method"] + (" (baseline)" if base else ""), cls="method baseline" if base else "method")]
            row += [H.Cell(H.fmt(r[c], 2), cls="num") for c in rank_cols]
            row += [H.Cell(H.fmt(r["mean_rank"], 2), cls="num best" if i == 1 else "num"),
                    H.Cell(format_rank(r.get("overall_rank", np.nan), r.get("overall_rank_low", np.nan),
                                       r.get("overall_rank_high", np.nan)), cls="num"),
                    *[r[c] for c in beats], r["beats_baselines"]]
            if verdicts:
                v = verdicts.get((model, r["method"]), "-")
                row.append(H.Cell(v, cls=_verdict_class(v)))
            rows.append(row)
        if len(models) > 1:
            parts.append(f"<h3>Model <code>{H.esc(model)}</code></h3>")
        parts.append(H.table(header, rows))
    return "".join(parts)


def _verdict_class(v: str) -> str:
    return "pass" if v == "pass" else "fail" if v == "fail" else "partial" if "pass" in v else ""


def _section_reading(board: pd.DataFrame, n_resamples: int, confidence: float) -> str:
    pct = f"{confidence:.0%}"
    roles = roles_of(board)
    reference = H.esc(roles.reference)
    baselines = " or ".join(f"<code>{H.esc(b)}</code>" for b in roles.baselines) or "(no baseline)"
    blind = ", ".join(H.esc(b) for b in roles.model_blind) or "none"
    legend = (
        '<dl class="legend">'
        f"<dt>0.612 #1 [1, 2]<br>[0.580, 0.650]</dt><dd>mean over images, {pct} percentile bootstrap confidence "
        f"interval ({n_resamples} seeded resamples). With one trained model per dataset the resamples draw its "
        "images and the CI covers images only; with several (seeds, folds) they draw the models, then the "
        "images within each drawn model (retrained models are not more images). The same resampled images "
        "serve every method.</dd>"
        f"<dt>#k [a, b]</dt><dd>rank within the dataset by the metric's direction (1 = best, ties averaged) "
        f"and its {pct} bootstrap interval: the method's ranks over the resamples.</dd>"
        f'<dt><span class="mk-dagger">{MARK_NOT_BEATING}</span></dt><dd>does <b>not</b> beat the '
        f"{baselines} baseline: the {pct} CI of the paired difference "
        "(method minus baseline, same images) is not entirely on the better side of zero. Every method, "
        "baselines included, is compared with every baseline; a baseline against itself is n/a.</dd>"
        f'<dt><span class="mk-up">{MARK_BETTER}</span> / <span class="mk-down">{MARK_WORSE}</span></dt>'
        f"<dd>significantly better / worse than <code>{reference}</code>: paired Wilcoxon signed-rank "
        "test over images (differences averaged over the models that scored an image), Holm-corrected in one "
        f"family per dataset, model and metric (every other method against {reference} in that cell), "
        "p &lt; 0.05, in the direction of the Hodges-Lehmann estimate (median of the Walsh averages of the "
        "differences), not of the mean difference. Hover a cell for the counts, the estimates and the "
        "p-values.</dd>"
        "<dt>undefined</dt><dd>an image without a lesion mask has no localisation score; it is left out "
        "(not counted as a miss) and the number of valid images is given.</dd>"
        "<dt>ceiling</dt><dd><code>oracle</code> is the lesion mask itself, the best any map can score; "
        "<code>oracle_grid</code> is the mask average-pooled to the explained layer's grid and upsampled as "
        "CAM maps are, the best any map at that layer's resolution can score (<code>oracle_grid@L</code>: at "
        "layer L). They are scored like methods, never ranked or tested.</dd>"
        f"<dt>% of ceiling [a, b]</dt><dd>the method's place between the best model-blind map ({blind}: "
        "0 %) and the oracle at its own resolution (100 %): the grid oracle for CAM methods, the mask for "
        "pixel-level maps, with its bootstrap interval (as CheXlocalize reports % of the human benchmark); not "
        "given where the ceiling beats the best blind map by less than 0.1, as the metric cannot tell them apart. "
        "Ranks and the overall ranking use the raw means: they say which map points at the lesion best as the "
        "user gets it; the relative view says how much of its own resolution's room a method uses.</dd>"
        "<dt>lesion size</dt><dd>hover a cell: the mean on lesions smaller than one cell of the method's grid "
        "and on the rest (leaderboard.md has the table).</dd></dl>"
    )
    metrics = sorted(board["metric"].unique()) if not board.empty else []
    rows = [[H.Cell(m, cls="method"), f"{direction(m)} is better", H.Cell(metric_help(m), attrs={"style": "white-space:normal"})]
            for m in metrics]
    return legend + H.table(["metric", "direction", "definition"], rows)


def _ci_cell(r: pd.Series, confidence: float, roles: Roles = Roles()) -> H.Cell:
    if not np.isfinite(r["mean"]):
        return H.Cell("-", cls="ci", title=f"no valid value (n_rows={r['n_rows']}, excluded={r['n_excluded']})")
    marks = ""
    beats = r["beats_baselines"]
    ref = roles.reference
    vs = f"vs_{ref}"
    if r["method"] not in roles.baselines and not pd.isna(beats) and not bool(beats):
        marks += f'<span class="mk-dagger">{MARK_NOT_BEATING}</span>'
    if r[vs] == "better":
        marks += f'<span class="mk-up">{MARK_BETTER}</span>'
    elif r[vs] == "worse":
        marks += f'<span class="mk-down">{MARK_WORSE}</span>'
    rank_text = format_rank(r["rank"], r.get("rank_low", np.nan), r.get("rank_high", np.nan))
    rank = f'<span class="rk">#{rank_text}</span>' if np.isfinite(r["rank"]) else ""
    raw = (f'<span class="m">{r["mean"]:.3f}</span>{rank}{marks}'
           f'<br><span class="int">[{r["ci_low"]:.3f}, {r["ci_high"]:.3f}]</span>')
    if np.isfinite(r.get("relative", np.nan)):
        raw += (f'<br><span class="int" title="relative to the ceiling ({H.esc(r["ceiling"])})">'
                f'{r["relative"]:.0%} of ceiling [{r["relative_low"]:.0%}, {r["relative_high"]:.0%}]</span>')

    def yn(v):
        return "-" if pd.isna(v) else ("yes" if bool(v) else "no")

    tip = (f"n_valid={r['n_valid']}, n_degenerate={r['n_degenerate']}, n_excluded={r['n_excluded']}"
           + "".join(f"; beats {b}: {yn(r[f'beats_{b}'])}" for b in roles.baselines))
    if r.get("n_models", 1) > 1:
        tip += f"; {r['n_models']} trained models, sd of their means {H.fmt(r['between_model_sd'])}"
    if r.get("n_small", 0):
        tip += (f"; lesions smaller than one cell of its grid: {H.fmt(r['mean_small'])} ({r['n_small']} images), "
                f"the rest: {H.fmt(r['mean_large'])} ({r['n_large']})")
    if r["method"] != ref and r[vs]:
        tip += (f"; vs {ref}: {r[vs]}, Hodges-Lehmann "
                f"{H.fmt(r.get(f'{vs}_hl', np.nan))}, mean difference {H.fmt(r[f'{vs}_diff'])}, "
                f"p={H.fmt(r[f'{vs}_p'], 4)}, Holm p={H.fmt(r[f'{vs}_p_holm'], 4)} "
                f"({r[f'{vs}_pairs']} images)")
    cls = "ci best" if r["rank"] == 1 else "ci"
    return H.Cell(raw=raw, cls=cls, title=tip)


def _section_metrics(board, models, figures: _Figures, colours, confidence: float) -> str:
    if board.empty:
        return H.note("No scored rows: nothing to rank.")
    roles = roles_of(board)
    parts = []
    for model in models:
        for metric in sorted(board.loc[board["model"] == model, "metric"].unique()):
            methods, datasets, sub = metric_matrix(board, metric, model)
            cells = {(r["method"], r["dataset"]): r for _, r in sub.iterrows()}
            rows = []
            for m in methods:
                base = m in roles.baselines or is_oracle(m)
                tag = " (ceiling)" if is_oracle(m) else " (baseline)" if base else ""
                row = [H.Cell(m + tag, cls="method baseline" if base else "method")]
                for d in datasets:
                    r = cells.get((m, d))
                    row.append(_ci_cell(r, confidence, roles) if r is not None else H.Cell("-", cls="ci"))
                rows.append(row)
            suffix = f" — model <code>{H.esc(model)}</code>" if len(models) > 1 else ""
            parts.append(f'<h3 id="metric-{H.esc(_slug(model))}-{H.esc(_slug(metric))}">{H.esc(metric)}{suffix} '
                         f'<span class="dir">({H.esc(direction(metric))} is better)</span></h3>')
            parts.append(f'<div class="howto">{H.esc(metric_help(metric))}</div>')
            chart = figures.img(bar_chart(board, metric, model, colours), f"bar_{model}_{metric}",
                                f"{metric}: mean and confidence interval per method and dataset")
            parts.append(f'<div class="side">{H.table(["method", *datasets], rows)}{chart}</div>')
            parts.append(f'<div class="howto">{H.esc(ci_coverage_note(sub))}</div>')
    return "".join(parts)


def _section_curves(curves: pd.DataFrame | None, models, figures: _Figures, colours, roles: Roles = Roles()) -> str:
    if curves is None or curves.empty:
        return H.note("No curves.parquet in this run folder: the suite did not score deletion/insertion curves.")
    parts = ["<p>Probability of the explained class as pixels are removed (deletion, most salient first) "
             "or restored into a blurred image (insertion). Means over images, pooled over seeds and folds; "
             "the leaderboards above give the areas under these curves with confidence intervals. "
             "ROAD (when scored): the removed pixels are filled from their neighbours plus a little noise "
             "instead of zeros, most relevant first (road_morf) or least relevant first (road_lerf); its area "
             "is the mean of the points after the first.</p>"]
    present = set(curves["curve"].astype(str))
    for model in sorted(curves["model"].astype(str).unique()):
        for curve in ("deletion", "insertion", *[c for c in ("road_morf", "road_lerf") if c in present]):
            fig = curve_chart(curves, curve, model, colours, reference=roles.reference, baselines=roles.baselines)
            if fig is None:
                parts.append(H.note(f"No {curve} curves for model {model}."))
            else:
                parts.append(figures.img(fig, f"curves_{model}_{curve}", f"mean {curve} curves per method"))
    return "".join(parts)


def _section_sanity(sanity, table, models, figures: _Figures, colours, roles: Roles = Roles()) -> str:
    if sanity is None or sanity.empty:
        return H.note("No sanity.parquet in this run folder: the model-randomisation sanity check was not run.")
    from bench.metrics.sanity import BAR  # imported late: bench.metrics imports torch
    from bench.report.sanity import sanity_runs

    conf = "95%"
    parts = [
        "<p><b>Question:</b> does the map depend on the learned weights of the layers that make the decision? "
        "Cascading randomisation (Adebayo et al. 2018): the model's weights are re-initialised stage by stage "
        "from the output down (the head, then block5, block4, ... cumulatively), and each image's map from the "
        "randomised model is compared with the trained model's map by Spearman rank correlation and SSIM, on "
        "absolute and on signed values (all four are in <code>sanity.parquet</code>). The verdict uses Spearman "
        "on absolute values. The last stage is the fully randomised model: its mean similarity F (the "
        "<em>floor</em>) is what is left of the map without any learned weight. The <em>normalised "
        "similarity</em> of a stage is (S &minus; F) / (1 &minus; F), S its mean over images: 1 = unchanged, "
        f"0 = as changed as by the fully random model. A stage <em>changes the map</em> when the upper end of "
        f"the {conf} bootstrap confidence interval of its normalised similarity (images resampled, seeded) is "
        f"below {BAR:g}: the map has lost at least half of what the learned weights give it. A map that is the "
        "same whatever the weights (1 &minus; F &lt; 10<sup>&minus;6</sup>) is never changed. A method "
        "<b>passes</b> when the first randomised stage, the head, already changes the map; on a dataset with "
        "several seeds or folds every one must pass, and the overall verdict counts the datasets.</p>"
    ]
    runs = sanity_runs(sanity)
    several = runs.groupby(["dataset", "model", "method"]).size().max() > 1
    for model in sorted(sanity["model"].astype(str).unique()):
        if len(models) > 1 or model not in models:
            parts.append(f"<h3>Model <code>{H.esc(model)}</code></h3>")
        parts.append(figures.img(sanity_chart(sanity, model, colours, reference=roles.reference,
                                              baselines=roles.baselines), f"sanity_{model}",
                                 "normalised similarity to the trained model's maps per randomisation stage"))
        t = table[table["model"] == model]
        datasets = [c for c in t.columns if c not in ("model", "method", "overall", "datasets_passed", "datasets")]
        rows = [[H.Cell(r["method"], cls="method"), H.Cell(r["overall"], cls=_verdict_class(str(r["overall"])))]
                + [H.Cell(r[d], cls=_verdict_class(str(r[d]))) for d in datasets] for _, r in t.iterrows()]
        parts.append(H.table(["method", "verdict", *datasets], rows))
        sub = runs[runs["model"].astype(str) == model]
        first = ", ".join(sorted(sub["first_stage"].unique()))
        header = ["method", "dataset", *(["seed", "fold"] if several else []), "verdict",
                  "first stage that changes the map", f"normalised similarity after {first} [{conf} CI]", "floor F"]
        rows = []
        for _, r in sub.sort_values(["method", "dataset", "seed", "fold"]).iterrows():
            v = "pass" if r["passed"] else "fail"
            ci = (f'{H.fmt(r["first_normalised"], 2)} <span class="int">[{H.fmt(r["first_ci_low"], 2)}, '
                  f'{H.fmt(r["first_ci_high"], 2)}]</span>')
            rows.append([H.Cell(r["method"], cls="method"), r["dataset"],
                         *([str(r["seed"]), str(r["fold"])] if several else []), H.Cell(v, cls=v),
                         r["first_changed_stage"], H.Cell(raw=ci, cls="ci"), H.Cell(H.fmt(r["floor"], 2), cls="num")])
        parts.append(H.table(header, rows))
    return "".join(parts)


def _section_classification(cls: pd.DataFrame | None) -> str:
    if cls is None or cls.empty:
        return H.note("No classification.parquet in this run folder: classification results are not available.")
    from bench.report.classification import classification_table

    rows = display_rows(classification_table(cls))
    header = list(rows[0].keys()) if rows else []
    body = []
    for r in rows:
        row = []
        for k in header:
            v = r[k]
            if "(paper)" in k:
                row.append(H.Cell(v, cls="num baseline" if v in ("phantom", "-", "n/a") else "num"))
            elif k.endswith("%") or k in ("runs", "test images"):
                row.append(H.Cell(str(v), cls="num"))
            else:
                row.append(v)
        body.append(row)
    return ("<p>The seed paper's Table 2 for our runs: mean ± standard deviation over seeds and folds, in percent. "
            "Multi-class datasets report macro averages (the paper printed '-'). The paper's numbers are shown "
            "only for the real datasets; synthetic phantoms say <em>phantom</em>.</p>"
            + H.table(header, body, caption=f"Paper: {PAPER_CITATION}."))


def _section_gallery(gallery_dir: Path, figures: _Figures) -> str:
    files = sorted(gallery_dir.glob("*.npz")) if gallery_dir.is_dir() else []
    if not files:
        return H.note("No gallery/*.npz in this run folder: no example maps were stored.")
    parts = ["<p>Example images per dataset and class (rows) with each method's map as an overlay (columns); "
             "the white outline is the reference lesion mask. Maps are min-max scaled per image for display "
             "only.</p>"]
    for f in files:
        parts.append(f"<h3>{H.esc(f.stem)}</h3>")
        try:
            data = load_gallery(f)
        except (ValueError, OSError, KeyError) as exc:
            parts.append(H.note(f"{f.name} could not be read: {exc}"))
            continue
        fig = gallery_figure(data)
        parts.append(figures.img(fig, f"gallery_{f.stem}", f"gallery of maps for {f.stem}", fmt="jpeg") if fig is not None
                     else H.note(f"{f.name} holds no images."))
    return "".join(parts)


def _section_errors(results: pd.DataFrame, errors: list[dict], bad_lines: int) -> str:
    parts = []
    df = results.copy()
    df["excluded"] = df["excluded"].fillna("").astype(str)
    df["degenerate"] = df["degenerate"].fillna(False).astype(bool)
    img = ["seed", "fold", "image_id"]
    rows = []
    for (dataset, model, method), g in df.groupby(["dataset", "model", "method"], sort=True):
        ok = g[g["excluded"] == ""]
        rows.append([
            dataset, model, H.Cell(method, cls="method"), g[img].drop_duplicates().shape[0],
            g.loc[g["excluded"] != "", img].drop_duplicates().shape[0],
            ok.loc[ok["degenerate"], img].drop_duplicates().shape[0],
            int(ok["value"].isna().sum()),
        ])
    parts.append("<p>Per dataset and method: images scored, images excluded (an error or a skip; never scored), "
                 "images whose map was degenerate (kept in the means), and undefined values (NaN, e.g. no lesion "
                 "mask; left out of the means).</p>")
    parts.append(H.table(["dataset", "model", "method", "images", "excluded", "degenerate", "undefined values"], rows))
    reasons = df.loc[df["excluded"] != ""].groupby("excluded")[img].apply(lambda g: len(g.drop_duplicates()))
    if len(reasons):
        parts.append(H.table(["exclusion reason", "images"], [[r, int(n)] for r, n in reasons.sort_values(ascending=False).items()]))
    if errors or bad_lines:
        e = pd.DataFrame(errors)
        for c in ("stage", "dataset"):
            if c not in e.columns:
                e[c] = ""
        e = e.fillna("")
        counts = e.groupby(["stage", "dataset"]).size().reset_index(name="n") if len(e) else pd.DataFrame()
        parts.append(f"<p>{len(errors)} problem(s) recorded in <code>errors.jsonl</code>"
                     + (f", and {bad_lines} unreadable line(s)" if bad_lines else "") + ".</p>")
        if len(counts):
            parts.append(H.table(["stage", "dataset", "problems"], counts.to_numpy().tolist()))
            shown = errors[:50]
            items = "".join(
                "<tr>" + "".join(f"<td>{H.esc(_short(rec.get(k, '')))}</td>" for k in ("stage", "job", "dataset", "image_id"))
                + f'<td style="white-space:normal">{H.esc(_short(rec.get("error", "")))}</td></tr>'
                for rec in shown
            )
            more = f" (first 50 of {len(errors)})" if len(errors) > 50 else ""
            parts.append(f"<details><summary>The recorded problems{more}</summary><div class=\"tablewrap\"><table>"
                         "<thead><tr><th>stage</th><th>job</th><th>dataset</th><th>image</th><th>error</th></tr></thead>"
                         f"<tbody>{items}</tbody></table></div></details>")
    else:
        parts.append("<p>No problems recorded (no <code>errors.jsonl</code>, or it is empty).</p>")
    return "".join(parts)


def _page(run_name: str, info: dict, sections: list[tuple[str, str, str]]) -> str:
    try:
        from bench.version import VERSION as version
    except ImportError:  # pragma: no cover
        version = "?"
    nav = "".join(f'<a href="#{sid}">{H.esc(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{H.esc(title)}</h2>{html}</section>' for sid, title, html in sections)
    rev = _first(info, "git_revision", "git.revision", "git.commit")
    sub = f"Do explanation maps point at the lesions that drive the classifier? Run <b>{H.esc(run_name)}</b>"
    if isinstance(rev, str):
        sub += f" at revision <code>{H.esc(rev[:12])}</code>"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>bench scorecard: {H.esc(run_name)}</title><style>{H.CSS}</style></head><body>"
        f"<header class=\"top\"><div class=\"inner\"><h1>Scorecard: {H.esc(run_name)}</h1><p>{sub}</p></div></header>"
        f"<nav class=\"toc\">{nav}</nav><main>{body}</main>"
        f"<footer>Built by <code>bench report</code> (bench {H.esc(version)}) from the stored results of this run "
        "folder; every table and figure is rebuilt from them. Do not edit by hand.</footer></body></html>\n"
    )
