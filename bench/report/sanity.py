"""Sanity-check verdicts per method (cascading randomisation, Adebayo et al. 2018).

A method's verdict on one (dataset, model, seed, fold) is the ``passed`` flag of its last, fully
randomised stage (largest ``stage_index``): if ``passed`` is stored per stage that is the stage the
check is about, and if it is stored once per method it is the same value on every row. Across seeds
and folds the verdict is "pass" (all passed), "fail" (none) or "k/n pass".
"""

from __future__ import annotations

import pandas as pd

SANITY_COLUMNS = ("dataset", "model", "seed", "fold", "method", "stage", "stage_index", "passed")


def sanity_summary(sanity: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method), one column per dataset holding "pass", "fail" or "k/n pass",
    and ``overall`` over every dataset.

    Raises:
        ValueError: a required column is missing.
    """
    missing = [c for c in SANITY_COLUMNS if c not in sanity.columns]
    if missing:
        raise ValueError(f"sanity table lacks column(s) {missing}; expected at least {list(SANITY_COLUMNS)}")
    if sanity.empty:
        return pd.DataFrame(columns=["model", "method", "overall"])
    run = ["dataset", "model", "seed", "fold", "method"]
    last = sanity.sort_values("stage_index").groupby(run, sort=False).tail(1)
    last = last.assign(passed=last["passed"].fillna(False).astype(bool))

    def verdict(s: pd.Series) -> str:
        k, n = int(s.sum()), len(s)
        return "pass" if k == n else "fail" if k == 0 else f"{k}/{n} pass"

    table = last.pivot_table(index=["model", "method"], columns="dataset", values="passed", aggfunc=verdict)
    table.columns = [str(c) for c in table.columns]
    table["overall"] = last.groupby(["model", "method"])["passed"].agg(verdict)
    return table.fillna("-").reset_index()
