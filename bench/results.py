"""The run folder's tables as a contract: their columns and types (the sweep writes them, the report reads them).

See docs/CONTRACTS.md ("Sweep run folder") for what each column means.
"""

from __future__ import annotations

from pathlib import Path

IDENT = ("dataset", "model", "seed", "fold")  # one trained model: the columns that name it
RESULT_COLUMNS = ["run", *IDENT, "method", "metric", "image_id", "label", "target", "correct", "value", "degenerate",
                  "excluded", "lesion_area", "cell_area", "lesion_drop", "lesion_used"]
# lesion_area: the lesion mask's share of the image's pixels; cell_area: the share of one cell of the grid the
# map was computed on (1 / (h w) for a layer of h x w, one pixel for pixel-level maps). lesion_drop: the target's
# probability minus its probability with the lesion removed (the sweep's verify job; NaN: not measured);
# lesion_used: lesion_drop >= the suite's report.verified_drop (NA where lesion_drop is NaN). Optional for readers.
OPTIONAL_RESULT_COLUMNS = ("run", "label", "target", "correct", "lesion_area", "cell_area", "lesion_drop", "lesion_used")
RESULT_TYPES = {"seed": "int64", "fold": "int64", "label": "int64", "target": "int64", "correct": bool,
                "value": "float64", "degenerate": bool, "lesion_area": "float64", "cell_area": "float64",
                "lesion_drop": "float64", "lesion_used": "boolean"}
CLASSIFICATION_COLUMNS = ["run", *IDENT, "n_test", "accuracy", "sensitivity", "specificity", "auc", "f1", "average",
                          "positive", "real", "paper_key"]


def load_results(run_dir):
    """The results table (``results.parquet``) of a finished or partial run folder, as a DataFrame."""
    import pandas as pd

    path = Path(run_dir) / "results.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a bench run folder? (bench run writes it)")
    return pd.read_parquet(path)


__all__ = ["CLASSIFICATION_COLUMNS", "IDENT", "OPTIONAL_RESULT_COLUMNS", "RESULT_COLUMNS", "RESULT_TYPES", "load_results"]
