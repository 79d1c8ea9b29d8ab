"""``bench datasets``, ``bench validate DATASET``, ``bench prepare KEY``."""

from __future__ import annotations

import argparse
import json
import sys

from bench.data.cards import SYNTHETIC_PREFIX, canonical_key, list_cards
from bench.data.loader import validate_dataset
from bench.data.manifest import read_manifest
from bench.data.paths import MANIFEST, card_dirs, data_root, dataset_dir, masks_root

def _on_disk(key: str, root: str) -> str:
    d = dataset_dir(key, root)
    if not (d / MANIFEST).is_file():
        return "-"
    rows, problems = read_manifest(d / MANIFEST)
    if problems:
        return "broken manifest"
    n_mask = sum(1 for r in rows if r.mask)
    return f"{len(rows)} images, {n_mask} masks"

def cmd_datasets(args) -> int:
    from bench.data.phantoms import PHANTOMS

    cards = list_cards(args.root)
    print(f"data root: {data_root(args.root)}   masks root: {masks_root(args.root)}")
    print(f"cards from: {', '.join(str(d) for d in card_dirs(args.root))}\n")
    header = ("key", "aliases", "modality", "classes", "images (paper)", "prepared", "phantom")
    rows = []
    for c in cards:
        phantom = _on_disk(SYNTHETIC_PREFIX + c.key, args.root) if c.key in PHANTOMS else "n/a"
        rows.append((c.key, ",".join(c.aliases) or "-", c.modality, str(c.num_classes), str(sum(c.counts)),
                     _on_disk(c.key, args.root), phantom))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for r in (header, *rows):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print("\nphantoms: synthetic-<key> (bench prepare synthetic-<key>); real data: bench prepare <key> --raw DIR")
    return 0

def cmd_validate(args) -> int:
    problems = validate_dataset(args.dataset, root=args.root, resize_masks=args.resize_masks)
    if not problems:
        print(f"{args.dataset}: OK ({_on_disk(canonical_key(args.dataset, args.root), args.root)})")
        return 0
    for p in problems:
        print(p)
    print(f"{args.dataset}: {len(problems)} problem(s)", file=sys.stderr)
    return 1

def cmd_prepare(args) -> int:
    from bench.data.prepare import prepare, read_info

    options = {}
    for text in args.option or []:
        k, _, v = text.partition("=")
        if not k or not _:
            raise ValueError(f"--option {text!r}: expected NAME=VALUE")
        try:
            options[k] = json.loads(v)
        except ValueError:
            options[k] = v
    path = prepare(
        args.key, raw=args.raw, root=args.root, seed=args.seed, scale=args.scale,
        min_per_class=args.min_per_class, max_per_class=args.max_per_class, min_images=args.min_images,
        confounder=args.confounder, confounder_p=args.confounder_p, force=args.force,
        masks=args.masks, link=args.link, progress=lambda m: print(m, file=sys.stderr), **options,
    )
    info = read_info(args.key, args.root)
    summary = info.get("summary", {})
    print(f"prepared {info.get('key', args.key)} in {path} ({info.get('seconds', '?')} s)")
    for cls, n in summary.get("counts", {}).items():
        print(f"  {cls}: {n}")
    print(f"  masks: {summary.get('n_masks', '?')} of {summary.get('n_images', '?')} images")
    for note, n in summary.get("notes", {}).items():
        print(f"  note: {n} {note}")
    problems = validate_dataset(args.key, root=args.root)
    if problems:
        for p in problems[:20]:
            print(p, file=sys.stderr)
        print(f"{len(problems)} problem(s): run `bench validate {args.key}`", file=sys.stderr)
        return 1
    return 0

def add_commands(sub) -> None:
    """Add ``datasets``, ``validate`` and ``prepare`` to the ``bench`` sub-command parsers."""
    p = sub.add_parser("datasets", help="list the dataset cards and what is prepared on disk")
    p.add_argument("--root", default="", help="data root (default: BENCH_DATA_ROOT, "
                   "else <repo>/datasets in a checkout, else ./datasets)")
    p.set_defaults(handler=cmd_datasets)

    p = sub.add_parser("validate", help="check a prepared dataset and list every problem (exit 1 if any)")
    p.add_argument("dataset", help="dataset key, alias or synthetic-<key>")
    p.add_argument("--root", default="", help="data root")
    p.add_argument("--resize-masks", action="store_true", help="accept masks whose size differs from their image")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser(
        "prepare", help="convert a raw public layout (--raw) or generate a phantom (synthetic-KEY)",
        description="bench prepare synthetic-lidc_idri  |  bench prepare ham10000 --raw ~/data/HAM10000",
    )
    p.add_argument("key", help="a card key (real data, needs --raw) or synthetic-<key> (a phantom)")
    p.add_argument("--raw", default=None, help="folder holding the dataset in its public layout (see the card)")
    p.add_argument("--masks", default=None, help="optional folder of reference masks (image_folder, ham10000)")
    p.add_argument("--root", default="", help="data root to write to")
    p.add_argument("--link", choices=("copy", "hardlink", "symlink"), default="copy",
                   help="how image files are put in the data root (default: copy)")
    p.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="converter option, e.g. --option crop=96 (lidc_idri), --option group_pattern='^(\\d+)_'")
    g = p.add_argument_group("phantoms")
    g.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    g.add_argument("--scale", type=float, default=0.2, help="fraction of the paper's counts (default 0.2)")
    g.add_argument("--min-per-class", type=int, default=60, help="at least this many images per class (60)")
    g.add_argument("--max-per-class", type=int, default=200, help="at most this many images per class (200)")
    g.add_argument("--min-images", type=int, default=0,
                   help="at least this many images in all: every class raised to ceil(N / classes) (default 0: none)")
    g.add_argument("--confounder", default="", help="shortcut cue: tag, ink or ruler, optionally cue@Class")
    g.add_argument("--confounder-p", type=float, default=0.0, help="P(cue) on the chosen class in train/val")
    p.add_argument("--force", action="store_true", help="regenerate a phantom even if it is up to date")
    p.set_defaults(handler=cmd_prepare)

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-data")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.handler(args))

__all__ = ["add_commands", "cmd_datasets", "cmd_validate", "cmd_prepare"]
