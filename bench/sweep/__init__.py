"""Sweeps: suites -> a graph of train / explain / score jobs -> one tidy results table."""

from bench.sweep.runner import RESULT_COLUMNS, run_suite
from bench.sweep.suite import Suite, load_suite, suite_names


def load_results(run_dir):
    """The results table (``results.parquet``) of a finished or partial run folder."""
    from pathlib import Path

    import pandas as pd

    path = Path(run_dir) / "results.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a bench run folder? (bench run writes it)")
    return pd.read_parquet(path)


__all__ = ["RESULT_COLUMNS", "Suite", "load_results", "load_suite", "run_suite", "suite_names"]
