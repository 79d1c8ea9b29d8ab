"""``bench train --dataset KEY`` and ``bench control CHECKPOINT``.

``bench train --dataset KEY [--preset smoke|quick|paper] [--set section.key=value ...]`` trains one
model, writes ``checkpoint.pt`` and the Table-2-style ``classification.csv`` / ``.md`` in ``--out``
and prints the table. ``bench control CHECKPOINT`` runs the composite control
(:func:`bench.train.control.composite_control`) of a trained checkpoint on its own test split.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from bench.config import load_run_config
from bench.report.classification import table2_row, write_classification_table
from bench.train.checkpoint import load_checkpoint
from bench.train.control import composite_control
from bench.train.data import load_training_data, resolve_split
from bench.train.loop import fit


def add_commands(sub) -> None:
    """Add ``control`` and ``train`` to the ``bench`` sub-command parsers (in the order ``bench --help`` lists them)."""
    p = sub.add_parser(
        "control", help="composite control of a trained model: does its prediction follow the lesion?",
        description="bench control reports/quick/cache/train/<key>/checkpoint.pt",
    )
    p.add_argument("checkpoint", help="a checkpoint.pt written by bench train or a sweep's train job")
    p.add_argument("--pairs", type=int, default=200, help="composites per pairing (default 200)")
    p.add_argument("--pairing", choices=("random", "nearest", "both"), default="both",
                   help="background donor: random, the nearest outside the masks, or both (default)")
    p.add_argument("--dilate", type=int, default=2, help="dilation of the masks in px (default 2)")
    p.add_argument("--fold", type=int, default=0, help="cross-validation fold the checkpoint was trained on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="", help="data root (default: the one in the checkpoint's config)")
    p.set_defaults(handler=cmd_control)

    p = sub.add_parser("train", help="train a model on one dataset and print the paper's Table 2 metrics")
    p.add_argument("--dataset", required=True, help="dataset key, e.g. synthetic-lidc_idri or ham10000")
    p.add_argument("--preset", default="quick", help="smoke, quick, paper, or a TOML file (default: quick)")
    p.add_argument("--model", default=None, help="model name (default: the preset's, ff_vgg19)")
    p.add_argument("--fold", type=int, default=0, help="cross-validation fold to train (default 0)")
    p.add_argument("--root", default=None, help="data root (default: BENCH_DATA_ROOT, "
                   "else <repo>/datasets in a checkout, else ./datasets)")
    p.add_argument("--out", default=None, help="output folder (default reports/train/<dataset>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.set_defaults(handler=cmd_train)


def cmd_train(args) -> int:
    """Train, write the checkpoint and the Table-2 table in ``--out``, print the table."""
    data = {"dataset": args.dataset}
    if args.root:
        data["root"] = args.root
    model = {"name": args.model} if args.model else {}
    cfg = load_run_config(args.preset, args.overrides, data=data, model=model)
    out = Path(args.out or Path("reports") / "train" / args.dataset)
    t0 = time.perf_counter()
    res = fit(cfg, fold=args.fold, out_dir=out)
    write_classification_table([table2_row(cfg.data.dataset, cfg.model.name, res.metrics)], out / "classification")
    seconds = time.perf_counter() - t0
    print((out / "classification.md").read_text())
    print(f"trained {len(res.history)} epochs in {seconds:.1f} s on {res.device} "
          f"({res.images_per_second:.1f} training images/s); checkpoint: {res.checkpoint}")
    return 0


def cmd_control(args) -> int:
    """The composite control of a trained checkpoint on its own test split."""
    model, info = load_checkpoint(args.checkpoint)
    cfg = info["config"]
    if args.root:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=args.root))
    data = load_training_data(cfg)
    test = data.subset(resolve_split(data, cfg, args.fold).test)
    print(f"{cfg.data.dataset}: {len(test.ids)} test images, {int(test.has_mask.sum())} with a lesion mask; "
          f"{args.pairs} composites per pairing (lesion from A inside the dilated masks, the rest from B)")
    print("| pairing | source accuracy | follows lesion | follows background | other | pairs with both sources "
          "correct | follows lesion (both correct) | follows background (both correct) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for pairing in (("random", "nearest") if args.pairing == "both" else (args.pairing,)):
        c = composite_control(model, test, n_pairs=args.pairs, seed=args.seed, pairing=pairing, dilate=args.dilate)
        print(f"| {pairing} | {c['source_accuracy']:.3f} | {c['follows_lesion']:.3f} | {c['follows_background']:.3f} "
              f"| {c['other']:.3f} | {c['n_pairs_correct']} | {c['follows_lesion_given_correct']:.3f} "
              f"| {c['follows_background_given_correct']:.3f} |")
    return 0


__all__ = ["add_commands", "cmd_control", "cmd_train"]
