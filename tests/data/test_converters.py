"""Every converter on a small fake tree in its real public layout, built here."""

import sys

import numpy as np
import pytest
from PIL import Image

from bench.data import load_card, load_dataset, prepare, validate_dataset
from bench.data.converters.cells import derive_cell_mask
from bench.data.converters.lidc_idri import consensus_mask, lidc_idri, nodule_label
from bench.data.manifest import read_manifest
from bench.data.phantoms import draw
from bench.data.prepare import read_info


def rgb(h, w, value):
    return np.full((h, w, 3), value, np.uint8)


def test_ham10000_layout(root, tmp_path, save):
    raw = tmp_path / "raw"
    meta = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    entries = [("HAM_1", "ISIC_1", "nv"), ("HAM_1", "ISIC_2", "nv"), ("HAM_2", "ISIC_3", "mel"),
               ("HAM_3", "ISIC_4", "df"), ("HAM_4", "ISIC_5", "bcc"), ("HAM_5", "ISIC_6", "akiec")]
    for i, (lid, iid, dx) in enumerate(entries):
        meta.append(f"{lid},{iid},{dx},histo,50.0,male,back")
        part = "HAM10000_images_part_1" if i < 3 else "HAM10000_images_part_2"
        Image.fromarray(rgb(30, 40, 100 + i)).save(raw / part / f"{iid}.jpg") if (raw / part).is_dir() else (
            (raw / part).mkdir(parents=True), Image.fromarray(rgb(30, 40, 100 + i)).save(raw / part / f"{iid}.jpg"))
        if iid != "ISIC_5":  # one image without a segmentation
            m = np.zeros((30, 40), np.uint8)
            m[10:20, 10:25] = 255
            save(m, raw / "HAM10000_segmentations_lesion_tschandl" / f"{iid}_segmentation.png")
    (raw / "HAM10000_metadata.csv").write_text("\n".join(meta) + "\n")

    prepare("mnist", raw=raw, root=root)  # the alias works too
    rows, _ = read_manifest(root / "ham10000" / "manifest.csv")
    assert [r.image for r in rows] == ["ISIC_1.jpg", "ISIC_2.jpg", "ISIC_3.jpg", "ISIC_5.jpg", "ISIC_6.jpg"]
    assert [r.label for r in rows] == ["Melanocytic nevi", "Melanocytic nevi", "Melanoma", "Basal cell carcinoma",
                                       "Actinic Keratoses"]
    assert [r.group for r in rows] == ["HAM_1", "HAM_1", "HAM_2", "HAM_4", "HAM_5"]
    assert [r.mask for r in rows] == ["ISIC_1.png", "ISIC_2.png", "ISIC_3.png", "", "ISIC_6.png"]
    notes = read_info("ham10000", root)["summary"]["notes"]
    assert notes["images with dx='df', not a class of the seed (dropped)"] == 1
    assert notes["images without a segmentation (mask left empty)"] == 1
    assert validate_dataset("ham10000", root=root) == []
    ds = load_dataset("ham10000", root=root, image_size=16)
    assert ds.has_mask.tolist() == [True, True, True, False, True] and ds.masks[0].any()


def test_cov_ct_folders_with_optional_masks(root, tmp_path, save):
    raw, masks = tmp_path / "COVID-CT", tmp_path / "masks"
    for i in range(3):
        save(rgb(24, 24, 50 + i), raw / "CT_COVID" / f"covid{i}.png")
        save(np.full((20, 26), 80 + i, np.uint8), raw / "CT_NonCOVID" / f"{i}.jpg")
    save(rgb(8, 8, 1), raw / "extras" / "logo.png")
    prepare("cov_ct", raw=raw, root=root)
    info = read_info("cov_ct", root)
    assert info["summary"]["counts"] == {"COVID-19": 3, "Normal": 3}
    assert info["summary"]["n_masks"] == 0
    assert info["summary"]["notes"]["images in folder 'extras' that maps to no class (dropped)"] == 1
    assert validate_dataset("cov_ct", root=root) == []

    m = np.zeros((24, 24), np.uint8)
    m[4:9, 4:9] = 255
    save(m, masks / "covid0_mask.png")
    grey = np.zeros((12, 12), np.uint8)  # non-binary and half the size: thresholded and resized
    grey[2:6, 2:6] = 200
    grey[0, 0] = 30
    save(grey, masks / "CT_COVID" / "covid1.png")
    prepare("cov_ct", raw=raw, root=root, masks=masks)
    rows, _ = read_manifest(root / "cov_ct" / "manifest.csv")
    by_id = {r.id: r for r in rows}
    assert by_id["CT_COVID/covid0"].mask == "CT_COVID/covid0.png"
    assert by_id["CT_COVID/covid1"].mask == "CT_COVID/covid1.png"
    assert by_id["CT_COVID/covid2"].mask == "" and by_id["CT_NonCOVID/0"].label == "Normal"
    notes = read_info("cov_ct", root)["summary"]["notes"]
    assert notes["masks that were not binary, thresholded at half their maximum"] == 1
    assert notes["masks resized (nearest) to their image's size"] == 1
    assert validate_dataset("cov_ct", root=root) == []
    ds = load_dataset("cov_ct", root=root, image_size=24)
    assert int(ds.masks[ds.ids.index("CT_COVID/covid1")].sum()) == 64  # 4 x 4 at 12 px -> 8 x 8 at 24 px


def test_image_folder_matches_class_names_ignoring_case(root, tmp_path, save):
    raw = tmp_path / "polar"
    for i in range(2):
        save(rgb(16, 16, 10 * i), raw / "cad" / f"a{i}.png")
        save(rgb(16, 16, 10 * i + 5), raw / "NORMAL" / "sub" / f"b{i}.bmp")
    prepare("mpip", raw=raw, root=root)
    ds = load_dataset("mpip", root=root, image_size=8)
    assert ds.ids == ["NORMAL/sub/b0", "NORMAL/sub/b1", "cad/a0", "cad/a1"]  # folders in sorted order
    assert ds.labels.tolist() == [1, 1, 0, 0]
    with pytest.raises(FileNotFoundError, match="no class folders"):
        prepare("mpip", raw=tmp_path / "polar" / "cad", root=root)


def test_cells_codes_and_derived_masks(root, tmp_path):
    raw = tmp_path / "AML"
    truth = {}
    for code, cls in (("EOS", "Eosinophil"), ("LYT", "Typical Lymphocyte"), ("MON", "Monocyte"), ("BAS", None)):
        for i in range(2):
            s = draw("cells", cls or "Neutrophil", seed=2, index=i)
            big = Image.fromarray(s.image).resize((200, 200), Image.BILINEAR)
            (raw / code).mkdir(parents=True, exist_ok=True)
            big.save(raw / code / f"{code}_{i:04d}.tiff")
            truth[f"{code}/{code}_{i:04d}"] = np.asarray(Image.fromarray(s.mask).resize((200, 200), Image.NEAREST))
    prepare("cells", raw=raw, root=root)
    info = read_info("cells", root)["summary"]
    assert info["counts"] == {"Eosinophil": 2, "Typical Lymphocyte": 2, "Monocyte": 2, "Myeloblast": 0, "Neutrophil": 0}
    assert info["notes"]["crops in folder 'BAS', not a class of the seed (dropped)"] == 2
    rows, _ = read_manifest(root / "cells" / "manifest.csv")
    assert all(r.mask_source == "derived" and r.mask for r in rows)
    assert validate_dataset("cells", root=root) == []
    ds = load_dataset("cells", root=root, image_size=200)
    assert ds.mask_sources == ["derived"] * 6
    ious = []
    for i, rid in enumerate(ds.ids):
        m, t = ds.masks[i].numpy(), truth[rid]
        ious.append((m & t).sum() / (m | t).sum())
    assert np.median(ious) > 0.75, ious


def test_derive_cell_mask_on_an_empty_crop():
    assert derive_cell_mask(rgb(64, 64, 200)) is None


class FakeAnn:
    """Duck-typed pylidc Annotation: a ball in a volume, its bbox and its mask in any bbox frame."""

    def __init__(self, centre, radius, malignancy, shape=(48, 48, 12)):
        z, y, x = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
        self.full = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + ((x - centre[2]) * 4) ** 2 <= radius ** 2
        self.malignancy = malignancy

    def bbox_matrix(self):
        idx = np.nonzero(self.full)
        return np.array([[i.min(), i.max()] for i in idx])

    def boolean_mask(self, bbox):
        sl = tuple(slice(int(a), int(b) + 1) for a, b in bbox)
        return self.full[sl]


class FakeScan:
    def __init__(self, pid, nodules):
        self.patient_id = pid
        self._nodules = nodules

    def cluster_annotations(self):
        return self._nodules

    def to_volume(self, verbose=True):
        vol = np.full((48, 48, 12), -1000.0)
        for anns in self._nodules:
            vol[np.any([a.full for a in anns], axis=0)] = 40.0
        return vol


def test_lidc_rules_and_consensus(root, tmp_path):
    assert nodule_label([1, 2, 3]) == "Benign" and nodule_label([4, 5, 3]) == "Malignant"
    assert nodule_label([3, 3, 2]) is None and nodule_label([2, 4]) is None and nodule_label([]) is None
    a = [FakeAnn((20, 20, 6), 5, 4), FakeAnn((21, 20, 6), 5, 5), FakeAnn((20, 26, 6), 5, 4)]
    cmask, cbbox = consensus_mask(a, 0.5)
    expected = (np.sum([x.full for x in a], axis=0) >= 1.5)
    sl = tuple(slice(int(lo), int(hi) + 1) for lo, hi in cbbox)
    assert np.array_equal(cmask, expected[sl]) and expected.sum() == cmask.sum()

    scans = [
        FakeScan("LIDC-IDRI-0001", [a, [FakeAnn((10, 10, 3), 4, 1), FakeAnn((10, 10, 3), 4, 2), FakeAnn((10, 11, 3), 4, 2)]]),
        FakeScan("LIDC-IDRI-0002", [[FakeAnn((30, 30, 5), 4, 3), FakeAnn((30, 30, 5), 4, 3), FakeAnn((30, 30, 5), 4, 2)],
                                    [FakeAnn((30, 30, 5), 4, 5), FakeAnn((30, 30, 5), 4, 5)]]),
    ]
    card = load_card("lidc_idri")
    out, masks = root / "lidc_idri", root.parent / "reference_masks" / "lidc_idri"
    summary = lidc_idri(tmp_path, out, masks, card, scans=scans, crop=32)
    assert summary["counts"] == {"Benign": 1, "Malignant": 1}
    assert summary["notes"] == {"nodules marked by fewer than 3 readers (excluded)": 1,
                                "nodules with an indeterminate median malignancy (excluded)": 1}
    rows, _ = read_manifest(out / "manifest.csv")
    assert [(r.image, r.label, r.group) for r in rows] == [
        ("LIDC-IDRI-0001_n00.png", "Malignant", "LIDC-IDRI-0001"), ("LIDC-IDRI-0001_n01.png", "Benign", "LIDC-IDRI-0001")]
    assert validate_dataset("lidc_idri", root=root) == []
    img = np.asarray(Image.open(out / "LIDC-IDRI-0001_n00.png"))
    m = np.asarray(Image.open(masks / "LIDC-IDRI-0001_n00.png")) > 0
    assert img.shape == m.shape == (32, 32)
    central = expected[:, :, 6]  # the slice of largest consensus area
    assert m.sum() == central.sum()
    assert img[m].min() == 236 and img.min() == 60  # lung window: nodule 40 HU -> 236, air -1000 HU -> 60


def test_lidc_without_pylidc_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pylidc", None)  # import pylidc -> ImportError
    with pytest.raises(RuntimeError, match=r"pip install -e \.\[lidc\]"):
        lidc_idri(tmp_path, tmp_path / "o", tmp_path / "m", load_card("lidc_idri"))


def test_real_dataset_needs_raw(root):
    with pytest.raises(ValueError, match="needs --raw"):
        prepare("ham10000", root=root)
