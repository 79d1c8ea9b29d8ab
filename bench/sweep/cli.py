"""``bench run [SUITE_OR_FILE] [--out DIR] [--set key=value ...] [--checkpoint PATH [--model NAME --classes A,B]]``."""

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
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="evaluate this trained model instead of training (a bench checkpoint, or a plain state dict "
                        "with --model and --classes): explain, score and report on the suite's datasets")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="with a plain state dict: the registered model it fits (default: the suite's one model); its "
                        "options come from the suite's preset and [model] table (--set model.width=...)")
    p.add_argument("--classes", default=None, metavar="A,B,...",
                   help="with a plain state dict: the class of each output, in order (must be the dataset's classes)")
    p.add_argument("--no-report", action="store_true", help="skip rebuilding the leaderboards and scorecard")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="run the jobs here one at a time (local, default) or as Ray tasks (ray; pip install -e .[ray])")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="with --backend ray: the Ray cluster to use (e.g. auto, ray://head:10001); default: start a local one")
    p.set_defaults(handler=_cmd_run)
    _add_score(sub)


def checkpoint_overrides(args) -> list[str]:
    """``--checkpoint``, ``--model``, ``--classes`` as the suite overrides ``checkpoint.path=...`` etc."""
    import json

    out = []
    if args.checkpoint is not None:
        out.append(f"checkpoint.path={json.dumps(args.checkpoint)}")
    if args.model is not None:
        out.append(f"checkpoint.model={json.dumps(args.model)}")
    if args.classes is not None:
        out.append(f"checkpoint.classes={json.dumps([c.strip() for c in args.classes.split(',') if c.strip()])}")
    return out


def _cmd_run(args) -> int:
    import json

    from bench.report.markdown import markdown_table
    from bench.sweep import load_suite, run_suite
    from bench.sweep.runner import default_out

    suite = load_suite(args.suite, [*args.overrides, *checkpoint_overrides(args)])
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
    for ck in info.get("checkpoints", []):  # bench run --checkpoint: say what was evaluated, and on which images
        print(f"evaluated {ck['kind']} checkpoint {ck['path']} (sha256 {ck['sha256'][:12]}, {ck['model']}) on "
              f"{ck['dataset']}, no training; test split: {ck['split']}")
    if stats["failed"]:
        print(f"{stats['failed']} job(s) failed: see {out / 'errors.jsonl'}")
        return 1
    return 0


# ----------------------------------------------------------------------------------------------
# bench score: maps made elsewhere, scored as a sweep scores its own (bench.sweep.score_maps)


def _add_score(sub) -> None:
    p = sub.add_parser("score", help="score maps you already have (bench explain's, or per-image .npy/.npz) "
                                     "against a dataset's lesion masks: results, leaderboards, scorecard")
    p.add_argument("maps", nargs="+", metavar="MAPS",
                   help="bench explain's folder (explain.json + <method>.npy), a folder of <image_id>.npy/.npz "
                        "(one method, named after the folder), or an .npz {image_id: map} per method")
    p.add_argument("--dataset", default=None, help="dataset key (default: explain.json's)")
    p.add_argument("--split", default=None, choices=("train", "val", "test", "decorrelated", "all"),
                   help="the images the maps must cover (default: explain.json's split, else test)")
    p.add_argument("--out", default=None, help="output folder (default: reports/score-<dataset>)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="a bench checkpoint: adds the metrics that run the model (deletion, insertion, ROAD) and "
                        "the sanity check (each skipped with a note without it)")
    p.add_argument("--fold", type=int, default=None, help="the checkpoint's fold (default: explain.json's, else 0)")
    p.add_argument("--root", default="", help="data root (default: the checkpoint's, else BENCH_DATA_ROOT)")
    p.add_argument("--image-size", type=int, default=None, metavar="N",
                   help="load the masks at N x N and resize the maps to it (default: the checkpoint's, explain.json's, "
                        "else the maps' own square size)")
    p.add_argument("--method", default=None, help="the method name of a single folder or .npz (default: its name)")
    p.add_argument("--metrics", default=None, help="comma-separated metrics (default: the suite's, else all)")
    p.add_argument("--suite", default=None, metavar="NAME_OR_TOML",
                   help="take metrics, [score] options, sanity methods and [report] from this suite")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of that suite, e.g. --set score.deletion_steps=8")
    p.add_argument("--allow-missing", action="store_true",
                   help="score only the images that have maps (default: an error names the split's missing ones)")
    p.add_argument("--nonfinite", choices=("error", "exclude"), default="error",
                   help="maps with NaN/inf: an error (default), or excluded rows with value NaN")
    p.add_argument("--run", default="score", help="the run column (default: score)")
    p.add_argument("--model-name", default=None,
                   help="the model column (default: the checkpoint's model, else unknown)")
    p.add_argument("--seed", type=int, default=None, help="the seed column (default: the checkpoint's seed, else 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i] (default auto)")
    p.add_argument("--no-report", action="store_true", help="write results.parquet only (no leaderboards, scorecard)")
    p.set_defaults(handler=_cmd_score)


def _cmd_score(args) -> int:
    from bench.sweep.score_maps import read_maps, score_maps, score_suite

    methods = read_maps(args.maps, method=args.method)
    dataset = args.dataset or next((m.record.get("dataset") for m in methods if m.record.get("dataset")), None)
    if not dataset:
        raise ValueError("no dataset: pass --dataset KEY (only bench explain's folder names its own)")
    out = Path(args.out) if args.out else Path("reports") / f"score-{dataset}"
    t0 = time.perf_counter()
    results = score_maps(
        methods, dataset, split=args.split, root=args.root, image_size=args.image_size, checkpoint=args.checkpoint,
        fold=args.fold, suite=score_suite(args.suite, args.overrides),
        metrics=[m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None,
        missing="skip" if args.allow_missing else "error", nonfinite=args.nonfinite, run=args.run,
        model_name=args.model_name, seed=args.seed, device=args.device, out=out, report=not args.no_report)
    for note in results.attrs.get("notes", []):
        print(f"note: {note}")
    if (out / "leaderboard.md").is_file() and not args.no_report:
        text = (out / "leaderboard.md").read_text()
        print(text[:4000] + ("\n... (see leaderboard.md)" if len(text) > 4000 else ""))
    n_methods, n_images = results["method"].nunique(), results["image_id"].nunique()
    print(f"{len(results)} result rows ({n_methods} method(s) x {n_images} image(s) x "
          f"{results['metric'].nunique()} metric(s)) in {time.perf_counter() - t0:.0f} s")
    print(f"wrote {out}/ (results.parquet" + ("" if args.no_report else ", leaderboard.md, scorecard.html") + ")")
    return 0
