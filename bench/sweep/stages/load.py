"""The ``load`` runner: the job in a dataset's train slot when the suite evaluates a model that is already trained
(its ``[checkpoint]``, ``bench run SUITE --checkpoint PATH``; :mod:`bench.sweep.checkpoints` says what comes from
where). It trains nothing: it loads the checkpoint, evaluates it on the test split and writes the files a train
job writes, so the explain, score and sanity jobs and the run folder's tables read it as they read a train job.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from bench.config import RunConfig, from_dict
from bench.data.arrays import take_rows
from bench.sweep.cache import write_json
from bench.sweep.checkpoints import BENCH, check_classes, file_sha256, fit_hint, plain_state_dict, read_weights
from bench.sweep.extensions import extensions
from bench.sweep.loading import dataset_for


def run(spec: dict, inputs: dict[str, Path], out: Path, label: str) -> None:
    """Write ``checkpoint.pt`` (bench's format: the loaded weights with this job's configuration), ``eval.npz``
    (test ids, labels, probabilities (N, C)), ``classification.json`` (Table 2's numbers of the loaded model on
    the test split), ``history.json`` (an empty list: nothing was trained), ``source.json`` (the job's
    ``checkpoint`` entry: file, SHA-256, kind, classes, where the split came from; and ``n_test``) and what the
    extensions add.

    Raises:
        FileNotFoundError: the checkpoint file is gone.
        ValueError: the file changed since the sweep was planned (its SHA-256), its classes are not the
            dataset's, or its weights do not fit the model (the message lists the mismatching keys).
    """
    import torch

    from bench.device import autocast_dtype, resolve_device, set_deterministic, set_threads
    from bench.metrics.classification import classification_report
    from bench.train import TrainResult, predict_proba, resolve_split, save_checkpoint

    cfg = from_dict(RunConfig, spec["config"], source=label)
    src = spec["checkpoint"]
    set_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    amp = autocast_dtype(cfg.train.autocast, device)
    if device.type == "cuda":
        set_deterministic(cfg.train.deterministic)
    sha = file_sha256(src["path"]) if Path(src["path"]).is_file() else ""
    if sha != src["sha256"]:
        what = "is gone" if not sha else f"changed (SHA-256 {sha[:12]}, planned with {src['sha256'][:12]})"
        raise (FileNotFoundError if not sha else ValueError)(
            f"{label}: checkpoint {src['path']} {what} since the sweep was planned; run the command again")
    data, _ = dataset_for(cfg)
    check_classes(src["path"], src["classes"], cfg.data.dataset, data.class_names)
    model = load_model(src, cfg, len(data.class_names), str(device))
    split = resolve_split(data, cfg, spec["fold"])
    labels = torch.as_tensor(np.asarray(data.labels), dtype=torch.long)
    y_test = labels[split.test].numpy()
    with nullcontext() if amp is None else torch.autocast(device_type=device.type, dtype=amp):
        probs = predict_proba(model, take_rows(data.images, split.test), batch_size=4 * cfg.train.batch_size,
                              device=device)
    if not np.isfinite(probs).all():
        raise ValueError(f"{label}: the model loaded from {src['path']} gives non-finite probabilities on "
                         f"{int((~np.isfinite(probs)).any(1).sum())} of {len(probs)} test images")
    names = list(data.class_names)
    positive = getattr(getattr(data, "card", None), "positive", "") or None
    metrics = classification_report(y_test, probs, positive=positive if len(names) == 2 else None, class_names=names)
    result = TrainResult(model=model, config=cfg, class_names=names, metrics=metrics, split=split,
                         test_ids=[data.ids[i] for i in split.test], test_labels=y_test, test_probs=probs,
                         device=str(device))
    save_checkpoint(out / "checkpoint.pt", result)
    np.savez(out / "eval.npz", test_ids=np.asarray(result.test_ids), test_labels=y_test, test_probs=probs)
    for ext in extensions():
        ext.after_train(out, cfg, model, data)
    write_json(out / "classification.json", metrics)
    write_json(out / "history.json", [])
    write_json(out / "source.json", {**src, "n_test": len(split.test)})


def load_model(src: dict, cfg: RunConfig, num_classes: int, device: str):
    """The model (eval mode, on ``device``) of the checkpoint ``src`` (a job's ``checkpoint`` entry): a bench
    checkpoint as it records itself; a plain state dict into the model ``cfg.model`` describes (the suite's
    options), its keys and shapes checked first."""
    from bench.train import build_model, check_state_dict, load_checkpoint

    if src["kind"] == BENCH:
        return load_checkpoint(src["path"], device=device)[0]
    where = f"checkpoint {src['path']} (a plain state dict)"
    state = plain_state_dict(read_weights(src["path"]), source=where)
    model = build_model(cfg, num_classes, pretrained="")
    try:
        check_state_dict(model, state, source=where)
    except ValueError as exc:
        raise ValueError(f"{exc}. {fit_hint(cfg, num_classes)}") from None
    model.load_state_dict(state)
    return model.to(device).eval()
