"""Sanity-check verdicts per method (cascading randomisation, Adebayo et al. 2018).

The rule is the metric's, not a second one: each (dataset, model, seed, fold, method) test is judged by
:func:`bench.metrics.sanity.sanity_verdict` on its stored per-stage ``changed`` flags (the method passes
when the first randomised stage, the head, already changes the map; see :mod:`bench.metrics.sanity`).
Over the seeds and folds of a dataset the verdict is "pass" (every test passed), "fail" (none) or
"k/n runs pass"; a dataset counts as passed when every test on it passed, and over datasets the
verdict is "pass", "fail" or "passes on k of n datasets".
"""

from __future__ import annotations

import pandas as pd

SANITY_COLUMNS = ("dataset", "model", "seed", "fold", "method", "stage", "stage_index", "changed", "normalised",
                  "normalised_ci_low", "normalised_ci_high", "floor")
RUN = ["dataset", "model", "seed", "fold", "method"]


def _check(sanity: pd.DataFrame) -> None:
    missing = [c for c in SANITY_COLUMNS if c not in sanity.columns]
    if missing:
        raise ValueError(
            f"sanity table lacks column(s) {missing}; expected at least {list(SANITY_COLUMNS)} "
            "(a sanity.parquet from before the normalised-similarity rule: re-run the sanity jobs)"
        )


def sanity_runs(sanity: pd.DataFrame) -> pd.DataFrame:
    """One row per test (dataset, model, seed, fold, method): ``passed``, ``first_changed_stage``,
    ``first_stage`` (the first randomised stage's name, "head" for the VGGs) with its ``first_normalised``,
    ``first_ci_low``, ``first_ci_high``, and the ``floor``.

    Raises:
        ValueError: a required column is missing.
    """
    from bench.metrics.sanity import sanity_verdict  # imported late: bench.metrics imports torch

    _check(sanity)
    cols = [*RUN, "passed", "first_changed_stage", "first_stage", "first_normalised", "first_ci_low",
            "first_ci_high", "floor"]
    rows = []
    for key, g in sanity.groupby(RUN, sort=True, dropna=False):
        passed, first_changed = sanity_verdict(g)
        first = g[g["stage_index"] > 0].sort_values("stage_index").iloc[0]
        rows.append(dict(zip(RUN, key), passed=passed, first_changed_stage=first_changed,
                         first_stage=str(first["stage"]), first_normalised=float(first["normalised"]),
                         first_ci_low=float(first["normalised_ci_low"]),
                         first_ci_high=float(first["normalised_ci_high"]), floor=float(first["floor"])))
    return pd.DataFrame(rows, columns=cols)


def _verdict(k: int, n: int, what: str) -> str:
    return "pass" if k == n else "fail" if k == 0 else what.format(k=k, n=n)


def sanity_summary(sanity: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method): one column per dataset holding "pass", "fail" or "k/n runs pass",
    ``overall`` ("pass", "fail" or "passes on k of n datasets"), ``datasets_passed`` and ``datasets``.

    Raises:
        ValueError: a required column is missing.
    """
    _check(sanity)
    if sanity.empty:
        return pd.DataFrame(columns=["model", "method", "overall", "datasets_passed", "datasets"])
    runs = sanity_runs(sanity)
    per = runs.groupby(["model", "method", "dataset"])["passed"].agg(["sum", "size"]).reset_index()
    per["verdict"] = [_verdict(int(k), int(n), "{k}/{n} runs pass") for k, n in zip(per["sum"], per["size"])]
    per["all"] = per["sum"] == per["size"]
    table = per.pivot(index=["model", "method"], columns="dataset", values="verdict")
    table.columns = [str(c) for c in table.columns]
    table = table.fillna("-")
    over = per.groupby(["model", "method"])["all"].agg(["sum", "size"])
    over = pd.DataFrame({
        "overall": [_verdict(int(k), int(n), "passes on {k} of {n} datasets")
                    for k, n in zip(over["sum"], over["size"])],
        "datasets_passed": over["sum"].astype(int).to_numpy(),
        "datasets": over["size"].astype(int).to_numpy(),
    }, index=over.index)
    return table.join(over).reset_index()
