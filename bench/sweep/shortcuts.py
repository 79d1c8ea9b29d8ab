"""The shortcut suite's part of the sweep (issue 9): what a job does extra on a phantom with a confounder.

A phantom with a confounder (a dataset key ``synthetic-<k>+<cue>[@<Class>]@<p>``, or ``data.confounder``)
has two test splits (:func:`bench.data.phantoms.generate`): ``test``, where the cue follows the class
as in training (the *correlated* split), and ``decorrelated``, where every test image appears twice,
without and with the cue, whatever its class. The sweep then does three things more, through the hooks
of :class:`ShortcutExtension` (a :class:`bench.sweep.extensions.SweepExtension`, registered as ``shortcuts``)
that the ordinary jobs call, so caching, resume and the Ray backend work unchanged:

- the ``train`` job also predicts the decorrelated split (``decorrelated.npz`` beside ``eval.npz``);
- the ``explain`` job explains the decorrelated images *of the cue's class that carry the cue* (the
  target is their class, which the cue predicts in training): a classifier that relies on the cue
  relies on it there, so the map can be checked against both the cue and the lesion;
- each localisation ``score`` job also scores the maps against the cue's mask (``confounder_rows.parquet``,
  with each image's cue and lesion areas).

:meth:`ShortcutExtension.write_tables` (called when the run folder is assembled) turns these into ``shortcuts.parquet``
(one row per dataset x model x seed x fold: the accuracy on both splits and the drop) and
``confounder_results.parquet`` (as ``results.parquet``, the values against the cue's mask, plus the
columns ``cue_area`` and ``lesion_area``: each mask's share of the image's pixels).
``bench.report.shortcuts`` reads them for the scorecard's Shortcuts section.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.config import RunConfig, from_dict
from bench.data.arrays import take_rows
from bench.data.splits import DECORRELATED
from bench.results import IDENT, RESULT_COLUMNS, RESULT_TYPES
from bench.sweep.extensions import EXTENSIONS, SweepExtension
from bench.sweep.tables import rows_frame, write_parquet

DECORRELATED_FILE = "decorrelated.npz"  # in a train job's folder: ids, labels, probs of the decorrelated split
CUE_ROWS = "confounder_rows.parquet"  # in a score job's folder: its metric against the cue's mask
SHORTCUTS = "shortcuts.parquet"
CONFOUNDER_RESULTS = "confounder_results.parquet"
SHORTCUT_COLUMNS = ["run", "dataset", "model", "seed", "fold", "phantom", "cue", "cue_class", "p", "n_correlated",
                    "accuracy_correlated", "balanced_accuracy_correlated", "n_decorrelated", "accuracy_decorrelated",
                    "balanced_accuracy_decorrelated", "drop", "flip_rate"]


def confounder_of(cfg: RunConfig) -> tuple[str, str, str, float] | None:
    """``(phantom, cue, cue class, p)`` of the phantom ``cfg.data`` names, or None without a confounder.

    ``phantom`` is the dataset key without its confounder suffix (``synthetic-lidc_idri``).
    """
    from bench.data.cards import load_card, split_confounder
    from bench.data.phantoms import parse_confounder

    key = cfg.data.dataset
    if not key.startswith("synthetic-"):
        return None
    phantom, spec, p = split_confounder(key)
    if not spec:
        if not cfg.data.confounder:
            return None
        spec, p = cfg.data.confounder, cfg.data.confounder_p
    card = load_card(key, cfg.data.root)
    cue, cls = parse_confounder(spec, card.classes, card.positive)
    return phantom, cue, cls, float(p)


def decorrelated_rows(data) -> list[int]:
    """Indices of the images of the ``decorrelated`` split (empty for other datasets)."""
    return [i for i, s in enumerate(data.splits) if s == DECORRELATED]


def evaluate_decorrelated(model, data, out: Path, *, batch_size: int = 128) -> None:
    """Train job: write the model's probabilities on the decorrelated split, if the dataset has one."""
    rows = decorrelated_rows(data)
    if not rows:
        return
    from bench.train import predict_proba

    probs = predict_proba(model, take_rows(data.images, rows), batch_size=batch_size)
    np.savez(out / DECORRELATED_FILE, ids=np.asarray([data.ids[i] for i in rows]),
             labels=data.labels[rows].numpy(), probs=probs)


def explain_selection(cfg: RunConfig, data, index: dict[str, int], train_dir: Path,
                      max_images: int) -> tuple[list[int], dict[str, np.ndarray]] | None:
    """Explain job: ``(images to explain, id -> predicted probabilities)`` for a phantom with a confounder,
    else None (the ordinary selection applies).

    The images: decorrelated-split images of the cue's class that carry the cue, in id order, at most
    ``max_images`` (with or without a lesion mask: the lesion metrics are NaN where there is none).
    """
    conf = confounder_of(cfg)
    path = Path(train_dir) / DECORRELATED_FILE
    if conf is None or data.has_confounder is None or not path.is_file():
        return None
    cls = list(data.class_names).index(conf[2])
    with np.load(path) as ev:
        ids, probs = [str(t) for t in ev["ids"]], ev["probs"]
    prob_of = dict(zip(ids, probs))
    picked = [index[t] for t in sorted(ids)
              if bool(data.has_confounder[index[t]]) and int(data.labels[index[t]]) == cls]
    return picked[:max_images], prob_of


def cue_scores(metric: str, options: dict[str, Any], maps: np.ndarray, data, idx: list[int],
               excluded=None) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """``{metric: (values, degenerate)}`` of ``maps`` against the cue's mask, for a localisation metric on a
    dataset with cue masks; else None. Images without the cue get NaN (empty mask). As the score job's own
    rows: maps are scored as they are (a NaN or infinite pixel makes a map degenerate: worst value, flagged);
    the ``excluded`` images (bool (B,); their explanation failed) are not scored: NaN, not flagged."""
    fn = _localisation_metric(metric)
    if data.confounder_masks is None or fn is None:
        return None
    n = len(maps)
    keep = np.flatnonzero(~np.asarray(excluded, dtype=bool)) if excluded is not None else np.arange(n)
    values, degenerate = np.full(n, np.nan), np.zeros(n, dtype=bool)
    if keep.size:
        masks = data.confounder_masks[[idx[k] for k in keep]].numpy()
        v, d = fn(maps[keep], masks, return_degenerate=True, **options)
        values[keep], degenerate[keep] = np.atleast_1d(v), np.atleast_1d(d)
    return {metric: (values, degenerate)}


def _localisation_metric(metric: str):
    """The function of the localisation metric ``metric`` (``bench.metrics.localisation``), or None.

    Looked up in that module, not in the ``METRICS`` registry: this module's imports are part of every stage's
    code version (:mod:`bench.sweep.sources`), and the registry's package imports the randomisation test and
    with it every attribution method, which would make an edit to a method retrain every model.
    """
    from bench.metrics import localisation

    fn = getattr(localisation, metric, None) if metric in localisation.__all__ else None
    return fn if fn is not None and "return_degenerate" in inspect.signature(fn).parameters else None


def write_cue_rows(out: Path, metric: str, options: dict[str, Any], maps: np.ndarray, data, idx: list[int],
                   base: pd.DataFrame) -> None:
    """Score job: write ``confounder_rows.parquet`` (the score job's rows, against the cue's mask, plus
    ``cue_area`` and ``lesion_area``: each mask's share of the image's pixels) when :func:`cue_scores` applies."""
    scores = cue_scores(metric, options, maps, data, idx, excluded=(base["excluded"] != "").to_numpy())
    if scores is None:
        return
    frame = rows_frame(base, scores)
    frame["cue_area"] = np.tile(data.confounder_masks[idx].flatten(1).float().mean(1).numpy(), len(scores))
    frame.to_parquet(Path(out) / CUE_ROWS, index=False)


# ---------------------------------------------------------------------------------------------
# assembling the run folder


def _accuracy(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """Accuracy and balanced accuracy (mean recall over the classes present)."""
    if len(labels) == 0:
        return float("nan"), float("nan")
    pred = probs.argmax(1)
    recalls = [float((pred[labels == c] == c).mean()) for c in np.unique(labels)]
    return float((pred == labels).mean()), float(np.mean(recalls))


def _flip_rate(ids: list[str], probs: np.ndarray) -> float:
    """Share of decorrelated pairs (``X-nocue``, ``X-cue``) whose predicted class differs."""
    pred = dict(zip(ids, probs.argmax(1)))
    pairs = [(i, i[: -len("-nocue")] + "-cue") for i in ids if i.endswith("-nocue")]
    pairs = [(a, b) for a, b in pairs if b in pred]
    return float(np.mean([pred[a] != pred[b] for a, b in pairs])) if pairs else float("nan")


def shortcut_row(run: str, ident: dict[str, Any], cfg: RunConfig, train_dir: Path) -> dict[str, Any] | None:
    """One row of ``shortcuts.parquet`` from a done train job (None: no confounder or no decorrelated split)."""
    conf = confounder_of(cfg)
    if conf is None or not (train_dir / DECORRELATED_FILE).is_file():
        return None
    with np.load(train_dir / "eval.npz") as ev:
        acc_c, bal_c = _accuracy(np.asarray(ev["test_labels"]), np.asarray(ev["test_probs"]))
        n_c = len(ev["test_labels"])
    with np.load(train_dir / DECORRELATED_FILE) as dv:
        labels, probs, ids = np.asarray(dv["labels"]), np.asarray(dv["probs"]), [str(t) for t in dv["ids"]]
    acc_d, bal_d = _accuracy(labels, probs)
    phantom, cue, cls, p = conf
    return {"run": run, **ident, "phantom": phantom, "cue": cue, "cue_class": cls, "p": p, "n_correlated": n_c,
            "accuracy_correlated": acc_c, "balanced_accuracy_correlated": bal_c, "n_decorrelated": len(labels),
            "accuracy_decorrelated": acc_d, "balanced_accuracy_decorrelated": bal_d, "drop": acc_c - acc_d,
            "flip_rate": _flip_rate(ids, probs)}


def write_tables(suite, jobs, store, out: Path) -> None:
    """Write ``shortcuts.parquet`` and ``confounder_results.parquet`` from the stored job outputs (in plan
    order), or remove stale ones when this plan has no phantom with a confounder."""
    cue_columns = [*RESULT_COLUMNS, "cue_area"]  # lesion_area is a results column
    rows, cue_rows = [], []
    for job in jobs:
        if not store.done(job.stage, job.key):
            continue
        d = store.path(job.stage, job.key)
        ident = {k: job.spec[k] for k in IDENT}
        if job.stage == "train":
            spec = json.loads((d / "done.json").read_text())["spec"]
            row = shortcut_row(suite.name, ident, from_dict(RunConfig, spec["config"], source=str(d)), d)
            if row is not None:
                rows.append(row)
        elif job.stage == "score" and (d / CUE_ROWS).is_file():
            f = pd.read_parquet(d / CUE_ROWS)
            for k, v in {"run": suite.name, **ident, "method": job.spec["method"]}.items():
                f[k] = v
            cue_rows.append(f)

    def cue_table() -> pd.DataFrame:  # stored rows from before the area columns get NaN areas
        return pd.concat(cue_rows, ignore_index=True).reindex(columns=cue_columns).astype(RESULT_TYPES)

    for name, frames, make in ((SHORTCUTS, rows, lambda: pd.DataFrame(rows, columns=SHORTCUT_COLUMNS)),
                               (CONFOUNDER_RESULTS, cue_rows, cue_table)):
        if frames:
            write_parquet(out / name, make())
        else:
            (out / name).unlink(missing_ok=True)


class ShortcutExtension(SweepExtension):
    """The shortcut suite's steps in the generic jobs; each acts only on a phantom with a confounder."""

    def after_train(self, out: Path, cfg, model, data) -> None:
        evaluate_decorrelated(model, data, out, batch_size=4 * cfg.train.batch_size)

    def select_images(self, cfg, data, index, train_dir, max_images):
        return explain_selection(cfg, data, index, train_dir, max_images)

    def after_score(self, out, metric, options, maps, data, idx, base) -> None:
        write_cue_rows(out, metric, options, maps, data, idx, base)

    def write_tables(self, suite, jobs, store, out) -> None:
        write_tables(suite, jobs, store, out)


EXTENSIONS.register("shortcuts", ShortcutExtension())
