"""``bench report DIR``: rebuild every table and figure of a run folder, and its scorecard."""

from __future__ import annotations

import argparse
from pathlib import Path


def _names(text: str | None) -> tuple[str, ...] | None:
    """``"a,b"`` -> ``("a", "b")``; ``""`` -> ``()`` (no such role); ``None`` (not given) stays None."""
    return None if text is None else tuple(n.strip() for n in text.split(",") if n.strip())


def _report(args: argparse.Namespace) -> int:
    from bench.report.scorecard import build_report

    written = build_report(args.dir, out_dir=args.out, n_resamples=args.resamples, seed=args.seed,
                           reference=args.reference, baselines=_names(args.baselines),
                           model_blind=_names(args.model_blind))
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
    p.add_argument("--reference", default=None, metavar="METHOD",
                   help="the method every other is tested against (default: the run's [report] reference, grad_cam)")
    p.add_argument("--baselines", default=None, metavar="M1,M2",
                   help="the maps every method must beat, comma-separated; '' for none (default: the run's, "
                   "centre,random)")
    p.add_argument("--model-blind", default=None, metavar="M1,M2",
                   help="the model-blind maps whose best is the floor of the relative view (default: the run's, "
                   "centre,random,edge)")
    p.set_defaults(handler=_report)
