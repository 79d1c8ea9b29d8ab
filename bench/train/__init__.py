"""Training FF-VGG19 (or any registered model) on one prepared dataset, with the paper's metrics.

``fit(cfg)`` loads the dataset named in ``cfg.data`` (phantoms are generated on demand), splits it
(stratified, grouped), trains with Adam and early stopping on validation loss, evaluates the test
split with :func:`bench.metrics.classification_report`, and (with ``out_dir``) writes a checkpoint.
Seeded: on the CPU the same seed gives bit-identical weights and metrics.

Modules, in the order they build on each other:

- ``bench.train.result``: :class:`TrainResult`, what :func:`fit` returns.
- ``bench.train.data``: :func:`load_training_data`, :func:`phantom_options`, :func:`ensure_prepared`,
  :func:`resolve_split` (the dataset and split a run uses).
- ``bench.train.augment``: :func:`augment_batch` (flips and small rotations).
- ``bench.train.checkpoint``: :func:`build_model`, :func:`save_checkpoint`, :func:`load_checkpoint`,
  :func:`check_state_dict`, :func:`environment`, ``CHECKPOINT_FORMAT``.
- ``bench.train.loop``: :func:`fit`, :func:`lr_scheduler`, :func:`validation_loss`.
- ``bench.train.control``: :func:`composite_control` (does a trained model follow the lesion?),
  :func:`make_composites`, :func:`dilate_masks`.
- ``bench.train.cli``: ``bench train`` (also writes the Table-2 table, see
  :mod:`bench.report.classification`) and ``bench control``.

:func:`predict_proba` lives in :mod:`bench.models.predict`; it is re-exported here.
"""

from bench.models.predict import predict_proba
from bench.train.augment import augment_batch
from bench.train.checkpoint import (
    CHECKPOINT_FORMAT,
    build_model,
    check_state_dict,
    environment,
    load_checkpoint,
    save_checkpoint,
)
from bench.train.control import composite_control, dilate_masks, make_composites
from bench.train.data import ensure_prepared, load_training_data, phantom_options, resolve_split
from bench.train.loop import fit, lr_scheduler, validation_loss
from bench.train.result import TrainResult

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainResult",
    "augment_batch",
    "build_model",
    "check_state_dict",
    "composite_control",
    "dilate_masks",
    "environment",
    "ensure_prepared",
    "fit",
    "load_checkpoint",
    "load_training_data",
    "lr_scheduler",
    "make_composites",
    "phantom_options",
    "predict_proba",
    "resolve_split",
    "save_checkpoint",
    "validation_loss",
]
