"""``prepare(key)``: make ``R/<key>/`` (+ ``M/<key>/``) from a raw public layout or a phantom.

``key="synthetic-<k>"`` generates the phantom of card ``<k>``; any other key runs the converter named
in its card's ``[convert]`` section on ``raw``. The result is written to temporary folders and moved
into place at the end, under a lock file, so a half-written dataset is never seen and two processes
preparing the same phantom do the work once. ``R/<key>/prepared.json`` records what made it; a phantom
already prepared with the same options (and generator version) is returned as is.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import json
import os
import platform
import shutil
import time
from pathlib import Path

from bench.data.cards import canonical_key, load_card, split_confounder, split_key
from bench.data.paths import INFO, MANIFEST, data_root, dataset_dir, masks_dir

@contextlib.contextmanager
def file_lock(path: Path, timeout: float = 900.0):
    """Hold an exclusive ``flock`` on ``path`` (``prepare``'s lock, and the decoded cache's build lock): the
    kernel releases it when the holder dies, even by SIGKILL, so a killed ``prepare`` never blocks the next
    one. The file itself is left in place (unlinking it would let a waiter lock a stale inode while a
    newcomer locks a fresh one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(path, "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - t0 > timeout:
                    raise TimeoutError(f"{path} is held by another process (a `bench prepare` of the same dataset, "
                                       f"or a build of its decoded cache) for over {timeout:.0f} s; wait for "
                                       "it to finish") from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield


def _remove_leftovers(final: Path) -> None:
    """Remove ``.<name>.tmp-<pid>`` / ``.<name>.old-<pid>`` folders left by a killed ``prepare`` (call under the lock)."""
    for d in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(d, ignore_errors=True)
    for d in final.parent.glob(f".{final.name}.old-*"):
        shutil.rmtree(d, ignore_errors=True)


def read_info(key: str, root: str = "") -> dict:
    """The ``prepared.json`` of a prepared dataset ({} if none)."""
    p = dataset_dir(canonical_key(key, root), root) / INFO
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def _phantom_options(seed, scale, min_per_class, max_per_class, min_images, confounder, confounder_p) -> dict:
    from bench.data.phantoms import GENERATOR_VERSION

    return {"seed": int(seed), "scale": float(scale), "min_per_class": int(min_per_class),
            "max_per_class": int(max_per_class), "min_images": int(min_images), "confounder": str(confounder),
            "confounder_p": float(confounder_p), "generator_version": GENERATOR_VERSION}


def key_confounder(key: str, confounder: str = "", confounder_p: float = 0.0) -> tuple[str, float]:
    """The confounder a phantom ``key`` is generated with: its ``+cue@p`` suffix if it has one (then
    ``confounder``/``confounder_p`` must be left at ""/0.0 or agree with it), else the arguments."""
    _, spec, p = split_confounder(key)
    if not spec:
        return confounder, confounder_p
    if (confounder, float(confounder_p)) not in (("", 0.0), (spec, p)):
        raise ValueError(f"dataset {key!r} names its confounder ({spec!r}, p={p:g}); confounder={confounder!r}, "
                         f"confounder_p={confounder_p} disagree (leave them unset)")
    return spec, p


def is_prepared(key: str, root: str = "", **options) -> bool:
    """True if ``R/<key>/manifest.csv`` exists (and, when ``options`` are given, it was prepared with them).

    For a phantom, ``options`` are those of :func:`prepare` (``seed, scale, min_per_class,
    max_per_class, min_images, confounder, confounder_p``); the defaults of :func:`prepare` fill the rest.
    """
    ckey = canonical_key(key, root)
    if not (dataset_dir(ckey, root) / MANIFEST).is_file():
        return False
    if not options:
        return True
    info = read_info(ckey, root)
    if split_key(ckey)[0]:
        defaults = inspect.signature(prepare).parameters  # read, not copied: a new option needs no edit here
        full = {name: defaults[name].default for name in inspect.signature(_phantom_options).parameters}
        full.update(options)
        full["confounder"], full["confounder_p"] = key_confounder(ckey, full["confounder"], full["confounder_p"])
        return info.get("options") == _phantom_options(**full)
    return all(info.get("options", {}).get(k) == v for k, v in options.items())


def _swap_in(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    if tmp.exists():
        os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _up_to_date(ckey: str, root: str, opts: dict, final: Path) -> bool:
    """True if phantom ``ckey`` is prepared in ``final`` with the options ``opts``."""
    return read_info(ckey, root).get("options") == opts and (final / MANIFEST).is_file()


def _convert_raw(ckey: str, card, raw, tmp: Path, mtmp: Path, masks, link: str, say,
                 converter_options: dict) -> tuple[dict, dict]:
    """Run the card's converter on the public layout in ``raw``, writing into ``tmp`` (images) and
    ``mtmp`` (masks). Returns its summary and the options recorded in ``prepared.json``."""
    from bench.data.converters import CONVERTERS

    raw = Path(raw).expanduser()
    if not raw.is_dir():
        raise FileNotFoundError(f"prepare {ckey!r}: --raw {raw} is not a folder")
    conv = CONVERTERS.get(card.convert.converter)
    options = {**card.convert.options, **converter_options}
    say(f"converting {raw} with the {card.convert.converter!r} converter ...")
    summary = conv(raw, tmp, mtmp, card, masks=Path(masks).expanduser() if masks else None,
                   link=link, **options)
    info_opts = {"raw": str(raw), "masks": str(masks or ""), "converter": card.convert.converter,
                 **{k: v for k, v in options.items() if isinstance(v, (str, int, float, bool))}}
    return summary, info_opts


def _write_info(tmp: Path, ckey: str, card, info_opts: dict, summary: dict, t0: float) -> None:
    """Write ``tmp/prepared.json``: what made the dataset (options, summary, seconds since ``t0``)."""
    info = {"key": ckey, "card": card.path, "options": info_opts, "summary": summary,
            "seconds": round(time.perf_counter() - t0, 2), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "python": platform.python_version()}
    (tmp / INFO).write_text(json.dumps(info, indent=2, default=str) + "\n")


def prepare(
    key: str,
    *,
    raw: str | os.PathLike | None = None,
    root: str = "",
    seed: int = 0,
    scale: float = 0.2,
    min_per_class: int = 60,
    max_per_class: int = 200,
    min_images: int = 0,
    confounder: str = "",
    confounder_p: float = 0.0,
    force: bool = False,
    masks: str | os.PathLike | None = None,
    link: str = "copy",
    progress=None,
    **converter_options,
) -> Path:
    """Prepare dataset ``key`` and return its folder ``R/<key>``.

    Phantoms (``synthetic-<k>``): ``seed, scale, min_per_class, max_per_class, min_images, confounder,
    confounder_p`` (see :func:`bench.data.phantoms.generate`; a key ``synthetic-<k>+cue@p`` sets the
    last two itself and has its own folder); regenerated only when these options,
    the generator version or ``force`` say so. Real datasets: ``raw`` = the folder in the public
    layout of the card's ``raw_layout``; ``masks`` = an optional mask folder (converters that take
    one); ``link`` = "copy" | "hardlink" | "symlink" for the image files; other keyword options go to
    the converter. ``progress``: optional callable(str) for messages.
    """
    say = progress or (lambda msg: None)
    ckey = canonical_key(key, root)
    synthetic, base = split_key(ckey)
    card = load_card(base, root)
    final, mfinal = dataset_dir(ckey, root), masks_dir(ckey, root)
    lock = data_root(root) / f".{ckey}.lock"
    if synthetic:
        confounder, confounder_p = key_confounder(ckey, confounder, confounder_p)
        opts = _phantom_options(seed, scale, min_per_class, max_per_class, min_images, confounder, confounder_p)
        if not force and _up_to_date(ckey, root, opts, final):
            return final
    elif raw is None:
        raise ValueError(f"prepare {ckey!r}: a real dataset needs --raw DIR (the public layout: "
                         f"{card.raw_layout.strip().splitlines()[0] if card.raw_layout.strip() else 'see its card'}); "
                         f"or use synthetic-{ckey} for its phantom")
    with file_lock(lock):
        if synthetic and not force and _up_to_date(ckey, root, opts, final):
            return final  # prepared by another process meanwhile
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        mtmp = mfinal.with_name(f".{mfinal.name}.tmp-{os.getpid()}")
        _remove_leftovers(final)
        _remove_leftovers(mfinal)
        t0 = time.perf_counter()
        try:
            if synthetic:
                from bench.data.phantoms import generate

                say(f"generating {ckey} ...")
                summary = generate(base, card.classes, card.counts, out_dir=tmp, masks_out=mtmp,
                                   seed=seed, scale=scale, min_per_class=min_per_class,
                                   max_per_class=max_per_class, min_images=min_images, confounder=confounder,
                                   confounder_p=confounder_p, positive=card.positive)
                info_opts = opts
            else:
                summary, info_opts = _convert_raw(ckey, card, raw, tmp, mtmp, masks, link, say, converter_options)
            mtmp.mkdir(parents=True, exist_ok=True)
            _write_info(tmp, ckey, card, info_opts, summary, t0)
            final.parent.mkdir(parents=True, exist_ok=True)
            mfinal.parent.mkdir(parents=True, exist_ok=True)
            _swap_in(mtmp, mfinal)
            _swap_in(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(mtmp, ignore_errors=True)
    return final
