"""Bad datasets: every broken image, mask, manifest or card gives a clear error naming the file (and the
manifest line), or a documented value; ``validate_dataset`` lists them all at once. Never a crash deep
inside, never a hang.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from bench.config import ConfigError
from bench.data import CardError, ManifestError, load_card, load_dataset, prepare, validate_dataset
from bench.data.loader import ImageSet


def tried(note: dict, kind: str, n: int = 1) -> None:
    """Count ``n`` bad inputs of ``kind`` for the note (printed in pytest's summary)."""
    counts = note.setdefault("bad inputs tried, by kind", {})
    counts[kind] = counts.get(kind, 0) + n


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels and whose data is a few bytes."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _encoded(arr: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    (im.convert(mode) if mode else im).save(buf, fmt)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# images


def test_every_broken_image_is_one_problem_naming_its_file_and_line(note, toy):
    g = toy.grey
    rgb = np.stack([g, g, g], -1)
    bad = {  # file name -> (bytes, what the problem says)
        "zero_bytes.png": (b"", "unreadable image"),
        "truncated_png.png": (_encoded(g, "PNG")[:80], "unreadable image"),
        "truncated_jpeg.jpg": (_encoded(rgb, "JPEG")[:300], "unreadable image"),
        "truncated_tiff.tif": (_encoded(g, "TIFF")[:120], "unreadable image"),
        "not_an_image.png": (b"id,label\n1,a\n", "unreadable image"),
        "bomb.png": (_png_header_only(100_000, 100_000), "decompression bomb"),
    }
    expected = {}
    for name, (data, says) in bad.items():
        (toy.dir / name).write_bytes(data)
        expected[toy.add(name)] = (name, says)
    (toy.dir / "a_folder.png").mkdir()
    expected[toy.add("a_folder.png")] = ("a_folder.png", "is a folder, not an image file")
    expected[toy.add("absent.png")] = ("absent.png", "missing image")
    toy.good("fine.png")
    toy.write()
    tried(note, "image", len(expected))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the corrupt TIFF's EXIF; the problem says it
        problems = validate_dataset("toy", root=str(toy.root))
    assert sorted(p.line for p in problems) == sorted(expected), [str(p) for p in problems]
    for p in problems:
        name, says = expected[p.line]
        assert p.file.endswith("manifest.csv") and name in p.message and says in p.message, str(p)
    with pytest.raises(ManifestError) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_dataset("toy", root=str(toy.root), cache=False)
    assert len(err.value.problems) == len(expected) and isinstance(err.value, ValueError)
    assert "bomb.png" in str(err.value) and "truncated_jpeg.jpg" in str(err.value)


def test_a_decompression_bomb_is_refused_before_it_is_decoded(toy):
    """Pillow's DecompressionBombError (over twice ``Image.MAX_IMAGE_PIXELS``) becomes a Problem at once:
    no 10-gigapixel allocation, no hang."""
    import time

    (toy.dir / "bomb.png").write_bytes(_png_header_only(200_000, 200_000))
    toy.add("bomb.png")
    toy.good("fine.png")
    toy.write()
    t0 = time.perf_counter()
    problems = validate_dataset("toy", root=str(toy.root))
    assert time.perf_counter() - t0 < 10
    assert len(problems) == 1 and problems[0].line == 2
    assert "bomb.png" in problems[0].message and "pixels" in problems[0].message


def test_odd_image_modes_load_as_documented(note, toy):
    """16-bit grey is scaled by 1/257, RGBA loses its alpha, palette and CMYK become RGB, float and 32-bit
    images are min-max scaled; every image comes out float32 (3, H, W) in [0, 1]."""
    g = toy.grey
    files = {
        "grey16.png": Image.fromarray((g.astype(np.uint16) * 257)),
        "rgba.png": Image.fromarray(np.dstack([g, g, g, np.full_like(g, 7)]), "RGBA"),
        "palette.png": Image.fromarray(g).convert("P"),
        "cmyk.jpg": Image.fromarray(np.dstack([g, g, g])).convert("CMYK"),
        "float.tif": Image.fromarray(g.astype(np.float32) / 255.0 * 1000.0 - 5.0),
        "int32.tif": Image.fromarray(g.astype(np.int32) * 1000),
        "bilevel.png": Image.fromarray(g > 127),
        "grey_alpha.png": Image.fromarray(g).convert("LA"),
    }
    for name, im in files.items():
        im.save(toy.dir / name)
        toy.add(name, "pos" if len(toy.rows) % 2 else "neg")
    toy.write()
    tried(note, "image", len(files))
    assert validate_dataset("toy", root=str(toy.root)) == []
    data = load_dataset("toy", root=str(toy.root), image_size=16, cache=False)
    assert isinstance(data, ImageSet) and data.images.dtype.is_floating_point
    assert tuple(data.images.shape) == (len(files), 3, 16, 16)
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0
    ref = g.astype(np.float32) / 255.0
    grey16 = data.images[data.ids.index("grey16")].numpy()
    np.testing.assert_allclose(grey16[0], ref, atol=1 / 255 + 1e-6)
    assert (grey16[0] == grey16[1]).all() and (grey16[1] == grey16[2]).all()  # grey replicated
    np.testing.assert_allclose(data.images[data.ids.index("rgba")].numpy()[1], ref, atol=1 / 255 + 1e-6)
    flt = data.images[data.ids.index("float")].numpy()[0]
    assert flt.min() == 0.0 and flt.max() == 1.0  # min-max scaled


def test_non_utf8_file_names_are_refused_by_prepare_naming_them(note, toy, tmp_path):
    raw = tmp_path / "raw"
    for cls in ("neg", "pos"):
        (raw / cls).mkdir(parents=True)
        Image.fromarray(toy.grey).save(raw / cls / f"{cls}1.png")
    with open(os.fsencode(str(raw / "pos")) + b"/caf\xe9.png", "wb") as fh:  # Latin-1 'café.png'
        fh.write((raw / "pos" / "pos1.png").read_bytes())
    tried(note, "image", 1)
    with pytest.raises(ValueError, match=r"not valid UTF-8.*caf\\xe9\.png.*rename") as err:
        prepare("toy", raw=raw, root=str(toy.root), force=True)
    assert "surrogates" not in str(err.value)
    leftovers = [p.name for p in toy.root.iterdir() if ".tmp-" in p.name]
    assert leftovers == []  # nothing half-written is left in the data root


# ---------------------------------------------------------------------------------------------
# masks


def test_every_broken_mask_is_one_problem_naming_its_file_and_line(note, toy):
    m = toy.mask
    expected = {}

    def bad_mask(name: str, arr_or_bytes, says: str, mode: str | None = None) -> None:
        img = f"img_{len(toy.rows)}.png"
        Image.fromarray(toy.grey).save(toy.dir / img)
        if isinstance(arr_or_bytes, bytes):
            (toy.mdir / name).write_bytes(arr_or_bytes)
        elif arr_or_bytes is not None:
            Image.fromarray(arr_or_bytes, mode).save(toy.mdir / name)
        expected[toy.add(img, "pos", name)] = (name, says)

    bad_mask("small.png", m[:8, :8], "is 8x8 but its image is 16x16")
    bad_mask("grey_levels.png", np.where(m > 0, 255, 128).astype(np.uint8), "is not binary")
    bad_mask("zero_two.png", (m > 0).astype(np.uint8) * 2, "is not binary")
    bad_mask("sixteen_bit.png", (m > 0).astype(np.uint16) * 65535, "is not binary")
    bad_mask("colour.png", np.dstack([m, np.zeros_like(m), m]), "colour image with different channels")
    bad_mask("all_zero.png", np.zeros_like(m), "is all 0")
    bad_mask("truncated.png", _encoded(m, "PNG")[:60], "unreadable mask")
    bad_mask("bomb.png", _png_header_only(100_000, 100_000), "unreadable mask")
    bad_mask("absent.png", None, "missing mask")
    (toy.mdir / "folder.png").mkdir()
    bad_mask("folder.png", None, "is a folder, not an image file")
    # accepted as documented: 0/1 values, RGB with equal channels, RGBA with equal colour channels, palette 0/1
    ok = {"zero_one.png": ((m > 0).astype(np.uint8), None), "grey_rgb.png": (np.dstack([m, m, m]), None),
          "rgba.png": (np.dstack([m, m, m, np.full_like(m, 255)]), "RGBA")}
    for name, (arr, mode) in ok.items():
        img = f"ok_{name}"
        Image.fromarray(toy.grey).save(toy.dir / img)
        Image.fromarray(arr, mode).save(toy.mdir / name)
        toy.add(img, "pos", name)
    toy.write()
    tried(note, "mask", len(expected))

    problems = validate_dataset("toy", root=str(toy.root))
    assert sorted(p.line for p in problems) == sorted(expected), [str(p) for p in problems]
    for p in problems:
        name, says = expected[p.line]
        assert name in p.message and says in p.message, str(p)
    with pytest.raises(ManifestError) as err:
        load_dataset("toy", root=str(toy.root), cache=False)
    assert {p.line for p in err.value.problems} == set(expected)


def test_a_mask_of_another_size_is_resized_when_asked(toy):
    Image.fromarray(toy.grey).save(toy.dir / "a.png")
    Image.fromarray(toy.mask[::2, ::2]).save(toy.mdir / "half.png")
    toy.add("a.png", "pos", "half.png")
    toy.good("b.png")
    toy.write()
    assert len(validate_dataset("toy", root=str(toy.root))) == 1
    assert validate_dataset("toy", root=str(toy.root), resize_masks=True) == []
    data = load_dataset("toy", root=str(toy.root), image_size=16, resize_masks=True, cache=False)
    assert data.masks.dtype == torch.bool and bool(data.masks[0].any()) and not bool(data.masks[1].any())


# ---------------------------------------------------------------------------------------------
# manifests


@pytest.mark.parametrize("header, says", [
    ("image,label,mask", "missing column(s) group, split"),
    ("file,class,mask,group,split", "missing column(s) image, label"),
    ("", "missing column(s) image, label, mask, group, split"),
])
def test_a_manifest_without_its_columns_is_one_problem_on_line_1(note, toy, header, says):
    toy.good("a.png")
    if header:
        toy.write(header)
    else:
        (toy.dir / "manifest.csv").write_text("")
    tried(note, "manifest", 1)
    problems = validate_dataset("toy", root=str(toy.root))
    assert len(problems) == 1 and problems[0].line == 1 and says in problems[0].message
    with pytest.raises(ManifestError, match="missing column"):
        load_dataset("toy", root=str(toy.root))


def test_row_problems_are_listed_together_with_their_lines(note, toy):
    toy.good("a.png")  # line 2
    toy.good("b.png", label="cat")  # 3: unknown label
    toy.good("b.jpg")  # 4: same id as b.png
    toy.good("c.png", split="holdout")  # 5: unknown split
    toy.add("", "neg")  # 6: no image path
    toy.rows.append({"image": "a.png", "label": "NEG", "mask": "", "group": "", "split": ""})  # 7: case matters
    toy.write()
    tried(note, "manifest", 5)
    problems = validate_dataset("toy", root=str(toy.root))
    got = {(p.line, p.message.split(" ")[0]) for p in problems}
    assert (3, "label") in got and (4, "duplicate") in got and (5, "split") in got and (6, "empty") in got
    assert (7, "duplicate") in got and (7, "label") in got
    assert all(p.line != 2 for p in problems)
    dup = next(p for p in problems if p.line == 4)
    assert "'b'" in dup.message and "first on line 3" in dup.message
    with pytest.raises(ManifestError) as err:
        load_dataset("toy", root=str(toy.root))
    assert "cat" in str(err.value) and "classes: neg, pos" in str(err.value)


def test_empty_missing_and_unreadable_manifests(note, toy):
    tried(note, "manifest", 4)
    assert "no manifest.csv" in str(validate_dataset("toy", root=str(toy.root))[0])
    toy.write()  # header only
    assert "no rows" in validate_dataset("toy", root=str(toy.root))[0].message
    (toy.dir / "manifest.csv").write_bytes("image,label,mask,group,split\nok.png,neg,,,\ncaf\xe9.png,neg,,,\n".encode("latin-1"))
    (p,) = validate_dataset("toy", root=str(toy.root))
    assert p.line == 3 and "not UTF-8" in p.message and "\\xe9" in p.message
    (toy.dir / "manifest.csv").unlink()
    (toy.dir / "manifest.csv").mkdir()  # a folder where the file should be
    (p,) = validate_dataset("toy", root=str(toy.root))
    assert "manifest.csv" in str(p)
    with pytest.raises(ManifestError):
        load_dataset("toy", root=str(toy.root))


def test_a_utf8_bom_and_extra_columns_are_accepted(toy):
    toy.good("a.png")
    toy.good("b.png", label="pos")
    path = toy.write("image,label,mask,group,split,notes")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert validate_dataset("toy", root=str(toy.root)) == []
    assert load_dataset("toy", root=str(toy.root), image_size=8, cache=False).ids == ["a", "b"]


def test_empty_splits_and_a_class_absent_from_the_test_split(note, toy):
    """An empty test split: a clear ValueError from training; a split with no rows loads as an empty
    ImageSet; a class absent from the test split gives NaN for its metrics with a warning."""
    from bench.config import load_run_config
    from bench.metrics.classification import UndefinedMetricWarning, classification_report
    from bench.train import fit

    for i in range(4):
        toy.good(f"t{i}.png", label=("neg", "pos")[i % 2], split="train")
    toy.good("v.png", split="val")
    toy.write()
    tried(note, "manifest", 2)
    data = load_dataset("toy", root=str(toy.root), image_size=8, cache=False)
    assert len(load_dataset("toy", root=str(toy.root), image_size=8, split="test", cache=False)) == 0
    cfg = load_run_config("smoke", data={"dataset": "toy", "root": str(toy.root), "image_size": 8})
    with pytest.raises(ValueError, match=r"toy: empty train or test split \(4 / 0 images\)"):
        fit(cfg, data=data, progress=False)
    with pytest.warns(UndefinedMetricWarning, match="absent"):
        rep = classification_report([0, 0, 0], np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2]]),
                                    positive="pos", class_names=["neg", "pos"])
    assert np.isnan(rep["sensitivity"]) and np.isnan(rep["auc"]) and rep["specificity"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------
# cards

GOOD = 'key = "toy"\ntitle = "Toy"\nmodality = "test"\nclasses = ["neg", "pos"]\ncounts = [2, 2]\npositive = "pos"\n'


@pytest.mark.parametrize("text, exc, says", [
    (GOOD + 'colour = "red"\n', ConfigError, "unknown key 'colour'"),
    (GOOD.replace("counts = [2, 2]", 'counts = "many"'), ConfigError, "counts must be a list"),
    (GOOD.replace("counts = [2, 2]", 'counts = [2, "x"]'), ConfigError, "counts[1] must be int"),
    (GOOD.replace('title = "Toy"', "title = 3"), ConfigError, "title must be str"),
    (GOOD.replace("counts = [2, 2]\n", ""), CardError, "missing required key(s) counts"),
    (GOOD.replace("counts = [2, 2]", "counts = [2]"), CardError, "counts: 1 counts for 2 classes"),
    (GOOD.replace('positive = "pos"', 'positive = "yes"'), CardError, "positive: 'yes' is not one of"),
    (GOOD.replace('positive = "pos"\n', ""), CardError, "must name its positive class"),
    (GOOD.replace('key = "toy"', 'key = "other"'), CardError, "must equal the file name"),
    (GOOD.replace('["neg", "pos"]', '["neg", "neg"]'), CardError, "duplicate class names"),
    (GOOD + "[convert]\nconverter = 5\n", ConfigError, "convert.converter must be str"),
    ("key = toy\n", ConfigError, "not valid TOML"),
])
def test_a_bad_card_is_an_error_naming_the_file_and_the_key(note, toy, text, exc, says):
    (toy.root / "toy.toml").write_text(text)
    tried(note, "card", 1)
    with pytest.raises(exc) as err:
        load_card("toy", root=str(toy.root))
    assert isinstance(err.value, ValueError)
    assert says in str(err.value) and "toy.toml" in str(err.value)


def test_an_alias_clash_between_two_cards_names_both(note, toy):
    (toy.root / "toy.toml").write_text(GOOD + 'aliases = ["shared"]\n')
    (toy.root / "zoo.toml").write_text(GOOD.replace('"toy"', '"zoo"') + 'aliases = ["shared"]\n')
    tried(note, "card", 1)
    with pytest.raises(CardError, match=r"zoo\.toml.*shared"):
        load_card("toy", root=str(toy.root))
