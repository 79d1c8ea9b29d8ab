"""``bench report DIR``: rebuild every table and figure of a run folder, and its scorecard."""

from __future__ import annotations

import argparse
from pathlib import Path


def _report(args: argparse.Namespace) -> int:
    from bench.report.scorecard import build_report

    written = build_report(args.dir, out_dir=args.out, n_resamples=args.resamples, seed=args.seed)
    out = Path(args.out) if args.out else Path(args.dir)
    print(f"wrote {len(written)} files under {out}:")
    for name in sorted(written, key=lambda n: (n.startswith("figures/"), n)):
        print(f"  {name}")
    print(f"open {written['scorecard.html']}")
    return 0


def add_commands(subparsers) -> None:
    """Add ``report`` to the ``bench`` command's sub-parsers."""
    p = subparsers.add_parser(
        "report",
        help="rebuild the leaderboards, tables, figures and scorecard.html of a run folder",
        description="Rebuild every table and figure of a sweep run folder from its stored results "
        "(results.parquet, and classification/curves/sanity/gallery when present).",
    )
    p.add_argument("dir", metavar="DIR", help="the run folder, e.g. reports/quick")
    p.add_argument("--out", default=None, help="write there instead of into DIR")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per confidence interval (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.set_defaults(handler=_report)
