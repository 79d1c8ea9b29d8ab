"""The decoded cache: built once, used, invalidated; a killed build never trusted; batches read in workers."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

import bench.data.arrays as arrays
from bench.data import load_dataset, prepare
from bench.data.arrays import RowStore, images_on, to_float_images
from bench.data.batches import ImageRows, batch_loader, ordered_batches
from bench.data.cache import IMAGES, META, Writer


def caches(root, key="toy"):
    """The complete cache folders of dataset ``key`` (name -> meta)."""
    d = root / key / ".cache"
    return {p.name: json.loads((p / META).read_text()) for p in sorted(d.glob("*-*"))
            if p.is_dir() and not p.name.startswith(".")}


def test_cache_is_built_once_then_used(toy, monkeypatch):
    a = load_dataset("toy", root=toy, image_size=16)
    (name, meta), = caches(toy).items()
    assert name.startswith("16-") and meta["n"] == 4 and meta["size"] == 16 and meta["channels"] == 1
    assert (toy / "toy" / ".cache" / name / IMAGES).stat().st_size == 4 * 16 * 16  # grey: one channel, uint8
    assert a.images.store.path == str(toy / "toy" / ".cache" / name / IMAGES) and not a.images.store.in_memory

    def no_build(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr("bench.data.loader.Writer", no_build)
    b = load_dataset("toy", root=toy, image_size=16)
    assert torch.equal(a.images[:], b.images[:]) and torch.equal(a.masks[:], b.masks[:])


def test_cache_equals_decoding_into_memory(toy):
    a = load_dataset("toy", root=toy, image_size=16)
    b = load_dataset("toy", root=toy, image_size=16, cache=False)
    assert b.images.store.in_memory and b.masks.store.in_memory
    assert torch.equal(a.images[:], b.images[:]) and torch.equal(a.masks[:], b.masks[:])
    assert torch.equal(a.images[:, 0], a.images[:, 2])  # grey stored once, given as three equal channels
    assert float(a.images[1].max()) == pytest.approx(40 / 255) and a.masks[2].sum() == 4 * 4


def test_a_changed_manifest_or_size_makes_a_new_cache(toy):
    load_dataset("toy", root=toy, image_size=16)
    first = set(caches(toy))
    load_dataset("toy", root=toy, image_size=8)  # another size: another cache, beside the first
    assert len(caches(toy)) == 2 and first < set(caches(toy))
    man = toy / "toy" / "manifest.csv"
    man.write_text(man.read_text().replace(",p1,\n", ",p9,\n"))  # a changed group: the manifest's bytes
    ds = load_dataset("toy", root=toy, image_size=16)
    assert ds.groups[2:] == ["p9", "p9"]
    sixteen = [n for n in caches(toy) if n.startswith("16-")]
    assert len(sixteen) == 1 and sixteen[0] not in first  # rebuilt under a new name, the old one removed
    assert any(n.startswith("8-") for n in caches(toy))  # the other size is kept


def test_a_replaced_file_rebuilds_the_cache(toy, save):
    load_dataset("toy", root=toy, image_size=16)
    save(np.full((20, 20), 255, np.uint8), toy / "toy" / "img0.png")  # same name, same manifest
    os.utime(toy / "toy" / "img0.png", ns=(1, 1))
    c = load_dataset("toy", root=toy, image_size=16)
    assert float(c.images[0].min()) == 1.0 and len(caches(toy)) == 1


def test_a_build_killed_half_way_is_rebuilt_not_used(toy):
    """A child process dies (os._exit: no cleanup runs) after writing two of the four images: its temporary
    folder is left, no cache is; the next load rebuilds it and deletes the leftover."""
    pid = os.fork()
    if pid == 0:  # the child: build, and die in the middle
        try:
            import bench.data.cache as cache

            real, count = cache.Writer.image, [0]

            def image(self, i, rgb):
                real(self, i, rgb)
                count[0] += 1
                if count[0] == 2:
                    os._exit(9)

            cache.Writer.image = image
            load_dataset("toy", root=toy, image_size=16)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    d = toy / "toy" / ".cache"
    left = [p for p in d.iterdir() if ".tmp-" in p.name]
    assert len(left) == 1 and (left[0] / IMAGES).exists() and not (left[0] / META).exists()
    assert caches(toy) == {}  # nothing complete: nothing to trust
    ds = load_dataset("toy", root=toy, image_size=16)
    assert not [p for p in d.iterdir() if ".tmp-" in p.name] and len(caches(toy)) == 1
    fresh = load_dataset("toy", root=toy, image_size=16, cache=False)
    assert torch.equal(ds.images[:], fresh.images[:]) and torch.equal(ds.masks[:], fresh.masks[:])


@pytest.mark.parametrize("damage", ["no meta", "short images", "other version", "bad json"])
def test_a_damaged_cache_is_rebuilt(toy, damage):
    load_dataset("toy", root=toy, image_size=16)
    (name, _), = caches(toy).items()
    folder = toy / "toy" / ".cache" / name
    if damage == "no meta":
        (folder / META).unlink()
    elif damage == "short images":
        with open(folder / IMAGES, "r+b") as fh:
            fh.truncate(100)
    elif damage == "other version":
        meta = json.loads((folder / META).read_text())
        (folder / META).write_text(json.dumps({**meta, "version": -1}))
    else:
        (folder / META).write_text("{")
    ds = load_dataset("toy", root=toy, image_size=16)
    fresh = load_dataset("toy", root=toy, image_size=16, cache=False)
    assert torch.equal(ds.images[:], fresh.images[:]) and (folder / IMAGES).stat().st_size == 4 * 16 * 16


def test_an_unwritable_cache_folder_decodes_into_memory(toy, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("BENCH_CACHE_ROOT", str(blocker))  # a cache folder under a file cannot be made
    ds = load_dataset("toy", root=toy, image_size=16)
    assert ds.images.store.in_memory and "decoding 4 images into memory" in capsys.readouterr().err
    assert float(ds.images[3].max()) == pytest.approx(250 / 255)


@pytest.mark.parametrize("in_memory", [False, True])
def test_colour_after_grey_rows_replicates_the_grey_ones(tmp_path, in_memory):
    """Images start one channel; the first colour image turns the store into three, and rows written before
    read back as their grey replicated."""
    w = Writer(None if in_memory else tmp_path / "c" / "4-x", n=3, size=4, confounder=False)
    grey = np.repeat(np.arange(16, dtype=np.uint8).reshape(4, 4, 1), 3, axis=2)
    colour = np.stack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30)], axis=2)
    w.image(0, grey)
    w.image(2, colour)
    w.image(1, grey + 1)
    d = w.commit("fp")
    assert d.channels == 3
    x = arrays.ImageArray(d.images, 3, 4, 4).uint8(slice(None))
    assert torch.equal(x[0], torch.from_numpy(grey.transpose(2, 0, 1)))
    assert torch.equal(x[1], torch.from_numpy((grey + 1).transpose(2, 0, 1)))
    assert x[2, :, 0, 0].tolist() == [10, 20, 30]


def test_image_array_indexes_like_a_tensor(toy):
    ds = load_dataset("toy", root=toy, image_size=8)
    full = ds.images[:]
    assert full.shape == (4, 3, 8, 8) and full.dtype == torch.float32
    assert torch.equal(ds.images[2], full[2]) and torch.equal(ds.images[-1], full[3])
    assert torch.equal(ds.images[[3, 1, 3]], full[[3, 1, 3]])
    assert torch.equal(ds.images[torch.tensor([False, True, True, False])], full[1:3])
    assert torch.equal(ds.images[1:3, 0], full[1:3, 0]) and torch.equal(ds.images[2, 1], full[2, 1])
    sub = ds.subset([3, 1])
    assert sub.images.rows.tolist() == [3, 1] and torch.equal(sub.images[:], full[[3, 1]])
    assert torch.equal(sub.subset([1]).images[0], full[1])
    assert torch.equal(ds.masks[:][ds.has_mask].flatten(1).any(1), torch.tensor([True, True]))
    with pytest.raises(IndexError):
        ds.images[4]
    assert torch.equal(images_on(ds.images, [0, 2], "cpu"), full[[0, 2]])
    assert torch.equal(images_on(full, [0, 2], "cpu"), full[[0, 2]])
    assert torch.equal(torch.as_tensor(np.asarray(ds.masks)), ds.masks[:])  # whole-array use, small set


def test_whole_array_use_above_the_limit_says_to_index(toy, monkeypatch):
    ds = load_dataset("toy", root=toy, image_size=8)
    monkeypatch.setattr(arrays, "MATERIALISE_LIMIT", 100)
    with pytest.raises(MemoryError, match=r"index the rows you need"):
        ds.images.mean()
    assert ds.images[0:1].shape == (1, 3, 8, 8)  # indexing rows is always allowed


def test_to_float_images_divides_by_255_and_replicates_grey():
    x = torch.tensor([0, 1, 128, 255], dtype=torch.uint8).reshape(1, 1, 2, 2)
    f = to_float_images(x, "cpu")
    assert f.shape == (1, 3, 2, 2) and f.is_contiguous()
    assert torch.equal(f[0, 2], torch.tensor([[0.0, 1 / 255], [128 / 255, 1.0]], dtype=torch.float32))
    same = torch.rand(2, 3, 2, 2)
    assert to_float_images(same) is same


def test_reading_a_mapped_store_keeps_the_pages_out_of_this_process(tmp_path):
    """A pass over a 32 MB store in batches leaves next to none of it resident in this process."""
    n, row = 256, 128 * 1024
    path = tmp_path / "rows.u8"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, n * row, dtype=np.uint8).tobytes())
    store = RowStore(n, row, path=path)
    total = 0
    for s in range(0, n, 16):
        total += int(store.read(np.arange(s, s + 16))[:, 7].sum())
    assert total == int(np.frombuffer(path.read_bytes(), np.uint8).reshape(n, row)[:, 7].sum())
    smaps = "/proc/self/smaps"
    if not os.path.exists(smaps):
        pytest.skip("no /proc/self/smaps")
    text = open(smaps).read()
    block = text[text.index(str(path)):].split("\n")
    rss_kb = next(int(line.split()[1]) for line in block if line.startswith("Rss:"))
    assert rss_kb < 1024, f"{rss_kb} kB of the 32 MB map resident"
    again = pickle.loads(pickle.dumps(store))  # a worker re-opens the map: the pickle holds no rows
    assert len(pickle.dumps(store)) < 1000 and np.array_equal(again.read([5, 1]), store.read([5, 1]))


@pytest.fixture
def phantom(root):
    """A tiny phantom (pet_ct: colour), prepared in ``root``."""
    prepare("synthetic-pet_ct", root=str(root), scale=0.05, min_per_class=20, max_per_class=20)
    return load_dataset("synthetic-pet_ct", root=str(root), image_size=32)


def test_two_workers_give_the_batches_of_none(phantom):
    ds = ImageRows(phantom.images, phantom.masks)
    order = torch.randperm(len(phantom) - 5, generator=torch.Generator().manual_seed(3))
    batches = ordered_batches(np.arange(5, len(phantom)), order, 7)
    state = torch.get_rng_state()
    zero = list(batch_loader(ds, batches, workers=0))
    two = list(batch_loader(ds, batches, workers=2))
    assert torch.equal(torch.get_rng_state(), state)  # the global stream (a model's dropout) is left alone
    assert len(zero) == len(two) == len(batches) == -(-(len(phantom) - 5) // 7)
    for a, b, rows in zip(zero, two, batches):
        assert a["rows"].tolist() == b["rows"].tolist() == rows
        assert a["images"].dtype == torch.uint8 and a["images"].shape == (len(rows), 3, 32, 32)
        assert torch.equal(a["images"], b["images"]) and torch.equal(a["masks"], b["masks"])
        assert torch.equal(to_float_images(a["images"]), phantom.images[rows])


@pytest.mark.slow
def test_training_weights_do_not_depend_on_the_workers(phantom, root):
    from bench.config import load_run_config
    from bench.train import fit

    def weights(workers):
        cfg = load_run_config("smoke", [f"data.workers={workers}", "data.dataset=synthetic-pet_ct",
                                        f"data.root={root}", "train.epochs=1", "train.max_steps=3"])
        return fit(cfg, data=phantom, progress=False).model.state_dict()

    a, b = weights(0), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
