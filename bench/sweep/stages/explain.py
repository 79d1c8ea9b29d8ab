"""The ``explain`` stage: one method's maps of the chosen test images of one trained model.

An image the method fails on is excluded (its map stays NaN, the error is kept in ``images.json``) and the
others go on; a method that fails on every image fails the job (nothing is stored, its score jobs are skipped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.arrays import images_on
from bench.sweep.cache import write_json
from bench.sweep.loading import chosen_images, dataset_for, train_outputs


class ExplainFailed(RuntimeError):
    """The method failed on every image of the job."""


def run(spec: dict, inputs: dict[str, Path], out: Path, label: str) -> None:
    """Write ``maps.npy`` (N, H, W) float32 (NaN rows: excluded images) and ``images.json`` (``ids``,
    ``targets``, ``labels``, ``correct``, ``errors``: image id -> the error that excluded it; ``grid``: the
    (h, w) cells the method's map is computed on before upsampling, (H, W) for pixel-level maps).

    A reference (``oracle``, ``oracle_grid``: :mod:`bench.attribution.references`) is made from the images'
    lesion masks instead of by the model."""
    from bench.attribution import explain
    from bench.attribution.references import is_reference, reference_maps

    cfg, model, _, ev = train_outputs(inputs["train"])
    data, index = dataset_for(cfg)
    picked, prob_of = chosen_images(cfg, data, index, inputs["train"], ev, spec["max_images"])
    device = next(model.parameters()).device
    h, w = data.images.shape[-2:]
    maps = np.full((len(picked), h, w), np.nan, dtype=np.float32)
    errors: dict[str, str] = {}
    targets = [int(data.labels[i]) for i in picked]
    method, layer = spec["method"], spec["layer"] or None
    reference = is_reference(method)
    options = {} if reference else method_options(spec)

    def explain_images(rows: list[int], t) -> np.ndarray:
        """Maps (len(rows), H, W) of the images ``data.images[rows]`` for the targets ``t``."""
        x = images_on(data.images, rows, device)  # read from the decoded cache, made float on the device
        if reference:
            return reference_maps(method, data.masks[rows], model=model, images=x, layer=layer).cpu().numpy()
        return explain(model, x, t, method, layer=layer, **options).cpu().numpy()

    bs = spec["batch_size"]
    for s in range(0, len(picked), bs):
        idx = picked[s : s + bs]
        try:
            maps[s : s + len(idx)] = explain_images(idx, targets[s : s + bs])
        except Exception:  # isolate the image(s) at fault, keep the rest
            for j, i in enumerate(idx):
                try:
                    maps[s + j] = explain_images([i], targets[s + j])
                except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
                    errors[data.ids[i]] = f"{type(exc).__name__}: {exc}"
    ids = [data.ids[i] for i in picked]
    if ids and len(errors) == len(ids):
        raise ExplainFailed(f"{method} failed on every one of the {len(ids)} images; the first, {ids[0]}: "
                            f"{errors[ids[0]]}")
    np.save(out / "maps.npy", maps)
    write_json(out / "images.json", {
        "ids": ids, "targets": targets, "labels": [int(data.labels[i]) for i in picked],
        "correct": [bool(np.argmax(prob_of[t]) == int(data.labels[i])) for t, i in zip(ids, picked)],
        "errors": errors, "grid": list(map_grid(model, method, layer, data.images[:1].to(device))),
    })


def map_grid(model, method: str, layer: str | None, images) -> tuple[int, int]:
    """The (h, w) grid ``method``'s maps are computed on before upsampling, for inputs like ``images``
    (1, C, H, W): the explained layer's output size for the CAM family and the grid oracles (``fused_grad_cam``:
    its finest tap), the input size for pixel-level maps."""
    from bench.attribution import METHODS
    from bench.attribution.references import is_reference, layer_grid, split_reference

    size = (int(images.shape[-2]), int(images.shape[-1]))
    if is_reference(method):
        base, own = split_reference(method)
        return layer_grid(model, images, own or layer) if base == "oracle_grid" else size
    if METHODS.meta(method)["family"] != "cam":
        return size
    layers = list(getattr(model, "taps", ())) if method == "fused_grad_cam" else [layer]
    grids = [layer_grid(model, images, name) for name in layers or [layer]]
    return max(grids, key=lambda g: g[0] * g[1])


def method_options(spec: dict) -> dict:
    """The job's method options, with the suite's ``explain.seed`` for a stochastic method that sets none."""
    from bench.attribution import METHODS

    options = {**spec["options"]}
    if "seed" not in options and bool(METHODS.meta(spec["method"]).get("stochastic", False)):
        options["seed"] = spec["seed_explain"]
    return options
