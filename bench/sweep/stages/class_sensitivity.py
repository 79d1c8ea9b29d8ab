"""The ``class_sensitivity`` stage: one method's maps of two-lesion composites, asked for each of the two classes.

From the test images of one trained model that carry a lesion mask, pairs of images of two different classes are
drawn (seeded; :func:`bench.train.control.draw_pairs`); lesion A is pasted into image B beside B's own lesion
(:func:`bench.train.control.two_lesion_composites`: moved as little as needed to keep the two apart, pairs that
cannot be separated are dropped). Each composite is explained for A's class and for B's class, and scored with
:func:`bench.metrics.class_sensitivity`. A dataset with fewer than two classes that carry lesions (a lesion class
against a normal class) has no such composite: its table is empty and ``note.json`` says why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.sweep.cache import write_json
from bench.sweep.loading import dataset_for, train_outputs
from bench.sweep.stages.explain import method_options

TABLE = "class_sensitivity.parquet"
COLUMNS = ["composite", "image_a", "image_b", "class_a", "class_b", "shift_y", "shift_x", "area_a", "area_b",
           "p_a", "p_b", "asked_a", "asked_b", "value", "degenerate", "excluded"]
DRAWS_PER_COMPOSITE = 4  # pairs drawn per composite asked for: large central lesions often cannot be separated


class ClassSensitivityFailed(RuntimeError):
    """The method failed on every composite of the job (nothing is stored, as for an explain job)."""


def comp_name(data, comp: dict, p: int) -> str:
    """``"<image_a> into <image_b>"``: composite ``p`` of ``comp`` named by its two source images."""
    return f"{data.ids[comp['a'][p]]} into {data.ids[comp['b'][p]]}"


def composites_for(data, test_ids, n: int, *, seed: int, dilate: int) -> tuple[dict, str]:
    """Up to ``n`` two-lesion composites from the test images of ``data`` that have a lesion mask, and a note
    ("" when ``n`` were made). Returns ``(composites, note)``; ``composites`` as
    :func:`bench.train.control.two_lesion_composites` (placed pairs only, distinct, in drawing order) plus ``a``,
    ``b``: the two source images' indices into ``data``."""
    from bench.train.control import draw_pairs, two_lesion_composites

    index = {str(i): k for k, i in enumerate(data.ids)}
    pool = sorted(index[str(t)] for t in test_ids if bool(data.has_mask[index[str(t)]]))
    classes = sorted({int(data.labels[i]) for i in pool})
    empty = {"a": [], "b": [], "images": None}
    if len(classes) < 2:
        names = [data.class_names[c] for c in classes]
        return empty, (f"needs test images with lesions of two classes; the lesion masks here are all of class "
                       f"{', '.join(names) or '(none)'}")
    sub = data.subset(pool)
    a, b = draw_pairs(sub, classes, n_pairs=DRAWS_PER_COMPOSITE * n,
                      seed=seed, pairing="random")
    seen, keep_a, keep_b = set(), [], []
    for i, j in zip(a, b):
        if (i, j) not in seen:
            seen.add((i, j))
            keep_a.append(i)
            keep_b.append(j)
    parts, chosen = [], []
    for s in range(0, len(keep_a), n):  # n pairs at a time, until n are placed
        comp = two_lesion_composites(sub, keep_a[s:s + n], keep_b[s:s + n], dilate=dilate)
        placed = np.flatnonzero(comp["placed"].numpy())[: n - len(chosen)]
        parts.append({k: v[placed] for k, v in comp.items()})
        chosen += [s + int(p) for p in placed]
        if len(chosen) == n:
            break
    out = {k: torch.cat([part[k] for part in parts]) for k in parts[0]}
    out["a"], out["b"] = [pool[keep_a[p]] for p in chosen], [pool[keep_b[p]] for p in chosen]
    note = "" if len(chosen) == n else (f"{len(chosen)} of the {n} composites asked for: the other drawn pairs' "
                                        "lesions could not be set apart inside the frame")
    return out, note


def run(spec: dict, inputs: dict[str, Path], out: Path, label: str) -> None:
    """Write ``class_sensitivity.parquet`` (one row per composite, :data:`COLUMNS`: the source images and classes,
    the move of lesion A, each lesion's share of the pixels, the model's probabilities of both classes on the
    composite, the two asks' terms, the value, ``degenerate``, ``excluded``: the error that excluded the composite)
    and ``note.json`` (``n``, ``note``). A composite the method fails on is excluded (its value NaN, the error
    kept); a method that fails on every composite fails the job (:class:`ClassSensitivityFailed`)."""
    from bench.attribution import explain
    from bench.metrics.class_sensitivity import class_sensitivity
    from bench.models.predict import predict_proba

    cfg, model, _, ev = train_outputs(inputs["train"])
    data, _ = dataset_for(cfg)
    comp, note = composites_for(data, ev["test_ids"], spec["composites"], seed=spec["seed_pairs"],
                                dilate=spec["dilate"])
    n = len(comp["a"])
    rows = pd.DataFrame(columns=COLUMNS)
    if n:
        device = next(model.parameters()).device
        x = comp["images"]
        ca = [int(data.labels[i]) for i in comp["a"]]
        cb = [int(data.labels[i]) for i in comp["b"]]
        layer, options = spec["layer"] or None, method_options(spec)
        h, w = x.shape[-2:]
        maps = {k: np.full((n, h, w), np.nan, np.float32) for k in ("a", "b")}
        errors = [""] * n
        bs = spec["batch_size"]
        for key, targets in (("a", ca), ("b", cb)):
            for s in range(0, n, bs):
                rows_ = list(range(s, min(n, s + bs)))
                try:
                    maps[key][rows_] = explain(model, x[rows_].to(device), targets[s:s + bs], spec["method"],
                                               layer=layer, **options).cpu().numpy()
                except Exception:  # isolate the composite(s) at fault, keep the rest
                    for r in rows_:
                        try:
                            maps[key][r] = explain(model, x[r:r + 1].to(device), targets[r:r + 1], spec["method"],
                                                   layer=layer, **options).cpu().numpy()[0]
                        except Exception as exc:  # noqa: BLE001 - recorded, the job goes on
                            errors[r] = errors[r] or f"{type(exc).__name__}: {exc}"
        ok = np.array([e == "" for e in errors])
        if not ok.any():
            raise ClassSensitivityFailed(f"{spec['method']} failed on every one of the {n} composites; the first "
                                         f"({comp_name(data, comp, 0)}): {errors[0]}")
        values = np.full(n, np.nan)
        asked_a, asked_b = np.full(n, np.nan), np.full(n, np.nan)
        degenerate = np.zeros(n, bool)
        if ok.any():
            v, parts = class_sensitivity(maps["a"][ok], maps["b"][ok], comp["mask_a"][ok].numpy(),
                                         comp["mask_b"][ok].numpy(), return_parts=True)
            values[ok], asked_a[ok], asked_b[ok], degenerate[ok] = v, parts["asked_a"], parts["asked_b"], parts["degenerate"]
        probs = predict_proba(model, x, batch_size=bs, device=device)
        rows = pd.DataFrame({
            "composite": np.arange(n), "image_a": [data.ids[i] for i in comp["a"]],
            "image_b": [data.ids[i] for i in comp["b"]], "class_a": ca, "class_b": cb,
            "shift_y": comp["shift"][:, 0].numpy(), "shift_x": comp["shift"][:, 1].numpy(),
            "area_a": comp["mask_a"].flatten(1).double().mean(1).numpy(),
            "area_b": comp["mask_b"].flatten(1).double().mean(1).numpy(),
            "p_a": probs[np.arange(n), ca], "p_b": probs[np.arange(n), cb], "asked_a": asked_a, "asked_b": asked_b,
            "value": values, "degenerate": degenerate, "excluded": errors,
        }, columns=COLUMNS)
    rows.to_parquet(out / TABLE, index=False)
    write_json(out / "note.json", {"n": n, "note": note})
