"""The decoded cache of a prepared dataset: its images decoded once, at one size, as uint8 on disk.

A run at ``image_size`` S reads dataset ``key`` from ``<cache_dir>/<S>[r]-<hash>/`` (``cache_dir``:
:func:`bench.data.paths.cache_dir`, ``R/<key>/.cache`` by default; ``r``: masks resized to their image,
``resize_masks``; ``hash``: the manifest's bytes, S, the mask option and :data:`CACHE_VERSION`):

- ``images.u8``: N rows of ``C x S x S`` uint8, channel first; ``C`` = 1 when every image of the dataset
  decodes to equal red, green and blue (a grey modality), else 3;
- ``masks.bits`` (and ``confounder.bits`` when the manifest has a ``confounder`` column): N rows of
  ``ceil(S*S / 8)`` bytes, ``np.packbits`` of the mask; all 0 for a row without one;
- ``meta.json``: the shapes, the options, how long the build took, and a fingerprint of every image and mask
  file (path, size, modification time): a file replaced under the same name rebuilds the cache.

A changed manifest or size gives another folder name; the build then removes the older caches of the same
size. Decoding is the loader's (PIL's antialiasing bilinear resize of the RGB image, masks with nearest), so
the bytes equal what the in-memory loader decoded before: a float image is ``uint8 / 255`` either way.

Atomic: a build writes into ``.<name>.tmp-<pid>/``, fsyncs every file, writes ``meta.json`` last, fsyncs,
and renames the folder into place; only a folder with a complete, matching ``meta.json`` and files of the
right sizes is ever read. A killed build leaves its temporary folder, which the next build (holding the
same lock, ``.<name>.lock``) deletes before starting again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.arrays import RowStore
from bench.data.manifest import Row

CACHE_VERSION = 2
IMAGES, MASKS, CONFOUNDER, META = "images.u8", "masks.bits", "confounder.bits", "meta.json"


def cache_name(manifest_bytes: bytes, image_size: int, resize_masks: bool) -> str:
    """The folder name of a cache: ``<S>[r]-<16 hex digits>`` (``r``: ``resize_masks``)."""
    h = hashlib.sha1(manifest_bytes)
    h.update(f"|{CACHE_VERSION}|{image_size}|{bool(resize_masks)}".encode())
    return f"{image_size}{'r' if resize_masks else ''}-{h.hexdigest()[:16]}"


def files_fingerprint(ddir: Path, mdir: Path, rows: list[Row]) -> str:
    """sha1 over every image and mask file of ``rows``: relative path, size and modification time (ns)."""
    h = hashlib.sha1()
    for r in rows:
        for base, rel in ((ddir, r.image), (mdir, r.mask), (mdir, r.confounder_mask)):
            if rel:
                try:
                    st = (base / rel).stat()
                    h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
                except OSError:
                    h.update(f"{rel}|missing\n".encode())
    return h.hexdigest()


def mask_row_bytes(size: int) -> int:
    return -(-size * size // 8)


@dataclass
class Decoded:
    """A dataset's decoded arrays: ``n`` rows at ``size`` x ``size``; ``images`` rows of ``channels x size x
    size`` bytes, ``masks`` / ``confounder`` (None: no confounder column) rows of packed bits. ``folder``:
    the cache folder (None: decoded into memory). ``seconds``: the build's time (0.0 when opened)."""

    n: int
    size: int
    channels: int
    images: RowStore
    masks: RowStore
    confounder: RowStore | None
    folder: Path | None = None
    seconds: float = 0.0


def open_cache(folder: Path, *, n: int, size: int, fingerprint: str) -> Decoded | None:
    """The cache in ``folder`` if it is complete and made from the same files (``fingerprint``), else None."""
    try:
        meta = json.loads((folder / META).read_text())
        if (meta.get("version") != CACHE_VERSION or meta.get("n") != n or meta.get("size") != size
                or meta.get("files") != fingerprint or meta.get("channels") not in (1, 3)):
            return None
        c = int(meta["channels"])
        images = RowStore(n, c * size * size, path=folder / IMAGES)
        masks = RowStore(n, mask_row_bytes(size), path=folder / MASKS)
        conf = RowStore(n, mask_row_bytes(size), path=folder / CONFOUNDER) if meta.get("confounder") else None
    except (OSError, ValueError, KeyError, TypeError):  # missing, half-written or foreign: not trusted
        return None
    return Decoded(n, size, c, images, masks, conf, folder=folder)


class Writer:
    """Receives a dataset's decoded rows, in any order, and keeps them: in a temporary cache folder
    (``folder`` given; :meth:`commit` moves it into place) or in memory (``folder=None``).

    Images start as one channel; the first image whose channels differ turns the store into three (the rows
    so far are replicated), so a grey dataset is stored grey and a colour one in colour.
    """

    def __init__(self, folder: Path | None, *, n: int, size: int, confounder: bool) -> None:
        self.folder, self.n, self.size, self.channels = folder, n, size, 1
        self.t0 = time.perf_counter()
        self.tmp = None if folder is None else folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        self._done = np.zeros(n, bool)  # rows whose image was written
        mb = mask_row_bytes(size)
        names = {IMAGES: size * size, MASKS: mb, **({CONFOUNDER: mb} if confounder else {})}
        self._mem: dict[str, np.ndarray] = {}
        self._fds: dict[str, int] = {}
        if self.tmp is None:
            self._mem = {k: np.zeros((n, b), np.uint8) for k, b in names.items()}
            return
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        for k, b in names.items():
            self._fds[k] = self._open(k, n * b)

    def _open(self, name: str, nbytes: int) -> int:
        fd = os.open(self.tmp / name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fd, nbytes)  # sparse: rows never written read as 0
        return fd

    def _put(self, name: str, i: int, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
        if self._fds:
            os.pwrite(self._fds[name], data.tobytes(), i * data.size)
        else:
            self._mem[name][i] = data

    def image(self, i: int, rgb: np.ndarray) -> None:
        """Row ``i``'s image: uint8 ``(S, S, 3)``."""
        grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all())
        if self.channels == 1 and not grey:
            self._to_colour()
        self._put(IMAGES, i, rgb[..., 0] if self.channels == 1 else rgb.transpose(2, 0, 1))
        self._done[i] = True

    def _to_colour(self) -> None:
        """Store three channels from now on; the grey rows written so far are replicated."""
        s2, rows = self.size * self.size, np.flatnonzero(self._done)
        if not self._fds:
            self._mem[IMAGES] = np.repeat(self._mem[IMAGES].reshape(self.n, 1, s2), 3, axis=1).reshape(self.n, -1)
        else:
            old = self._fds.pop(IMAGES)
            os.rename(self.tmp / IMAGES, self.tmp / f"{IMAGES}.grey")
            self._fds[IMAGES] = self._open(IMAGES, self.n * 3 * s2)
            for i in rows:
                grey = np.frombuffer(os.pread(old, s2, int(i) * s2), np.uint8)
                os.pwrite(self._fds[IMAGES], np.tile(grey, 3).tobytes(), int(i) * 3 * s2)
            os.close(old)
            os.unlink(self.tmp / f"{IMAGES}.grey")
        self.channels = 3

    def mask(self, i: int, m: np.ndarray, *, confounder: bool = False) -> None:
        """Row ``i``'s lesion mask (or its ``confounder`` mask): bool ``(S, S)``."""
        self._put(CONFOUNDER if confounder else MASKS, i, np.packbits(np.asarray(m, bool).reshape(-1)))

    def abort(self) -> None:
        """Forget everything written (the temporary folder is deleted)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def commit(self, fingerprint: str, info: dict | None = None) -> Decoded:
        """Make what was written the cache (fsync, ``meta.json`` last, rename into place) and open it; in
        memory, wrap the arrays."""
        s, n, c = self.size, self.n, self.channels
        conf = CONFOUNDER in self._fds or CONFOUNDER in self._mem
        seconds = time.perf_counter() - self.t0
        if self.tmp is None:
            m = self._mem
            return Decoded(n, s, c, RowStore(n, c * s * s, array=m[IMAGES]),
                           RowStore(n, mask_row_bytes(s), array=m[MASKS]),
                           RowStore(n, mask_row_bytes(s), array=m[CONFOUNDER]) if conf else None, seconds=seconds)
        for fd in self._fds.values():
            os.fsync(fd)
            os.close(fd)
        self._fds.clear()
        meta = {"version": CACHE_VERSION, "n": n, "size": s, "channels": c, "confounder": conf,
                "files": fingerprint, "seconds": round(seconds, 2), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "bytes": sum((self.tmp / f).stat().st_size for f in (IMAGES, MASKS, CONFOUNDER)
                             if (self.tmp / f).exists()), **(info or {})}
        with open(self.tmp / META, "w") as fh:
            fh.write(json.dumps(meta, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(self.tmp)
        old = self.folder.with_name(f".{self.folder.name}.old-{os.getpid()}")
        if self.folder.exists():  # made from files since changed: swap it out (a reader's open map stays valid)
            os.replace(self.folder, old)
        os.replace(self.tmp, self.folder)
        _fsync_dir(self.folder.parent)
        shutil.rmtree(old, ignore_errors=True)
        out = open_cache(self.folder, n=n, size=s, fingerprint=fingerprint)
        if out is None:
            raise RuntimeError(f"the decoded cache just written to {self.folder} does not read back; delete it "
                               "and run again")
        out.seconds = seconds
        return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(folder: Path) -> None:
    """Delete what killed builds of ``folder`` left (``.<name>.tmp-*``, ``.<name>.old-*``); call under its lock."""
    for pattern in (f".{folder.name}.tmp-*", f".{folder.name}.old-*"):
        for d in folder.parent.glob(pattern):
            shutil.rmtree(d, ignore_errors=True)


def remove_stale(folder: Path) -> list[Path]:
    """Delete the other caches of ``folder``'s size and mask option (older manifests) and the version-1 cache
    files (``<S>[r].npz``) beside it; returns what was deleted."""
    prefix = folder.name.split("-")[0]
    gone = []
    for d in folder.parent.glob(f"{prefix}-*"):
        if d != folder and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    legacy = folder.parent / f"{prefix}.npz"
    if legacy.exists():
        legacy.unlink(missing_ok=True)
        gone.append(legacy)
    return gone


def lock_path(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.lock")


def cache_bytes(folder: Path) -> int:
    """The size on disk of the cache in ``folder`` (its files' allocated blocks)."""
    return sum(p.stat().st_blocks * 512 for p in folder.iterdir() if p.is_file())


__all__ = ["CACHE_VERSION", "Decoded", "Writer", "cache_bytes", "cache_name", "files_fingerprint", "lock_path",
           "mask_row_bytes", "open_cache", "remove_leftovers", "remove_stale"]
