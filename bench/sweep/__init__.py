"""Sweeps: suites -> a graph of train / explain / score jobs -> one tidy results table.

Modules, in the order they import each other (each imports only those above it): :mod:`.cache` (the job
store and keys), :mod:`.checkpoints` (a trained model a suite evaluates instead of training one, ``bench run
--checkpoint``), :mod:`.suite`, :mod:`.extensions` (hooks a suite adds to the generic jobs), :mod:`.tables`,
:mod:`.errors`, :mod:`.scoring` (how a job calls the metrics), :mod:`.loading` (the dataset, checkpoint and
images a job reads), :mod:`.stages` (one runner per stage), :mod:`.sources` (each stage's code version, from
the modules it imports), :mod:`.jobs` (plan and execute one job), :mod:`.driver` (the bookkeeping loop, local
backend), :mod:`.ray_backend`, :mod:`.runner` (``run_suite``: plan, drive, assemble, report), :mod:`.score_maps`
(``score_maps``: maps made elsewhere through the score stage, ``bench score``);
:mod:`.shortcuts` is the shortcut suite's extension, registered here.
"""

from bench.results import RESULT_COLUMNS, load_results
from bench.sweep import shortcuts  # noqa: F401  (registers the shortcut suite's extension)
from bench.sweep.runner import run_suite
from bench.sweep.score_maps import score_maps
from bench.sweep.suite import Suite, load_suite, suite_names

__all__ = ["RESULT_COLUMNS", "Suite", "load_results", "load_suite", "run_suite", "score_maps", "suite_names"]
