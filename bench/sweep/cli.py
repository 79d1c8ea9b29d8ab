"""``bench run [SUITE_OR_FILE] [--out DIR] [--set key=value ...]``."""

from __future__ import annotations

import time
from pathlib import Path


def add_commands(sub) -> None:
    from bench.sweep.suite import suite_names

    p = sub.add_parser("run", help="run a benchmark suite: train, explain, score, and build the scorecard")
    p.add_argument("suite", nargs="?", default="quick",
                   help=f"built-in suite ({', '.join(suite_names())}) or a suite TOML file (default: quick)")
    p.add_argument("--out", default=None, help="output folder (default: reports/<suite>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a suite key, e.g. --set train.epochs=2 --set explain.max_images=8")
    p.add_argument("--no-report", action="store_true", help="skip rebuilding the leaderboards and scorecard")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="run the jobs here one at a time (local, default) or as Ray tasks (ray; pip install -e .[ray])")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="with --backend ray: the Ray cluster to use (e.g. auto, ray://head:10001); default: start a local one")
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args) -> int:
    import json

    from bench.report.markdown import markdown_table
    from bench.sweep import load_suite, run_suite
    from bench.sweep.runner import default_out

    suite = load_suite(args.suite, args.overrides)
    out = Path(args.out) if args.out else default_out(suite)
    t0 = time.perf_counter()
    results = run_suite(suite, out=out, report=not args.no_report, backend=args.backend, address=args.address)
    info = json.loads((out / "run.json").read_text())
    stats = info["stats"]
    if (out / "classification.md").is_file():
        print((out / "classification.md").read_text())
    if (out / "leaderboard.md").is_file():
        text = (out / "leaderboard.md").read_text()
        print(text[:4000] + ("\n... (see leaderboard.md)" if len(text) > 4000 else ""))
    print(f"{len(results)} result rows; {stats['jobs']} jobs ({stats['skipped_done']} already done, "
          f"{stats['failed']} failed) in {time.perf_counter() - t0:.0f} s; peak memory {info['peak_rss_mb']:.0f} MB")
    print(f"wrote {out}/ (results.parquet, leaderboard.md, classification.md, scorecard.html)")
    if stats["failed"]:
        print(f"{stats['failed']} job(s) failed: see {out / 'errors.jsonl'}")
        return 1
    return 0
