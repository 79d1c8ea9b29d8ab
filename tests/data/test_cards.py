import pytest

from bench.data import CardError, list_cards, load_card
from bench.data.cards import canonical_key, read_card

TABLE1 = {
    "pet_ct": ({"Benign": 61, "Malignant": 111}, "Malignant"),
    "lidc_idri": ({"Benign": 620, "Malignant": 616}, "Malignant"),
    "cov_x": ({"Pulmonary Edema": 293, "Pleural Effusion": 311, "Obstructive Pulmonary Disease": 315,
               "Pulmonary Fibrosis": 280, "COVID-19": 455, "Bacterial and Viral Pneumonia": 910, "Normal": 1341}, ""),
    "cov_ct": ({"COVID-19": 349, "Normal": 397}, "COVID-19"),
    "cells": ({"Eosinophil": 424, "Typical Lymphocyte": 3937, "Monocyte": 1789, "Myeloblast": 3268,
               "Neutrophil": 4419}, ""),
    "mpip": ({"CAD": 136, "Normal": 80}, "CAD"),
    "ham10000": ({"Actinic Keratoses": 327, "Basal cell carcinoma": 514, "Benign keratosis": 1099,
                  "Melanoma": 1113, "Melanocytic nevi": 6705}, ""),
}


@pytest.mark.parametrize("key", sorted(TABLE1))
def test_seed_cards_match_table1(key):
    card = load_card(key)
    counts, positive = TABLE1[key]
    assert card.key == key
    assert dict(zip(card.classes, card.counts)) == counts
    assert list(card.classes) == list(counts)  # the fixed order
    assert card.positive == positive
    for field in ("title", "modality", "citation", "licence", "images_from", "masks_from", "raw_layout",
                  "mask_definition"):
        assert getattr(card, field).strip(), f"{key}: empty {field}"
    assert card.phantom.evidence and card.phantom.nuisance
    assert set(card.phantom.classes) == set(card.classes)


def test_aliases_and_phantom_keys():
    assert load_card("mnist").key == "ham10000"
    assert canonical_key("synthetic-mnist") == "synthetic-ham10000"
    assert load_card("synthetic-cov_x").key == "cov_x"
    with pytest.raises(ValueError, match="no card for dataset 'nope'"):
        load_card("nope")


def test_user_card_in_data_root_and_errors_name_key_and_file(root):
    (root / "mine.toml").write_text('key = "mine"\ntitle = "M"\nmodality = "x"\nclasses = ["a", "b", "c"]\ncounts = [1, 2, 3]\n')
    assert {c.key for c in list_cards(root)} >= {"mine", "cells"}
    assert load_card("mine", root).classes == ("a", "b", "c")

    bad = root / "bad.toml"
    bad.write_text('key = "bad"\ntitle = "B"\nmodality = "x"\nclasses = ["a", "b"]\ncounts = [1, 2]\n'
                   'positive = "a"\ncolour = "red"\n')
    with pytest.raises(CardError, match=r"bad\.toml.*unknown key 'colour'"):
        read_card(bad)
    bad.write_text('key = "bad"\ntitle = "B"\nmodality = "x"\nclasses = ["a", "b"]\ncounts = ["1", 2]\npositive = "a"\n')
    with pytest.raises(CardError, match=r"bad\.toml.*counts\[0\] must be int"):
        read_card(bad)
    bad.write_text('key = "bad"\ntitle = "B"\nmodality = "x"\nclasses = ["a", "b"]\ncounts = [1, 2]\n')
    with pytest.raises(CardError, match=r"bad\.toml: positive: a binary dataset"):
        read_card(bad)
    bad.write_text('key = "bad"\ntitle = "B"\nmodality = "x"\nclasses = ["a", "b"]\ncounts = [1]\npositive = "a"\n')
    with pytest.raises(CardError, match=r"bad\.toml: counts"):
        read_card(bad)
    bad.write_text('key = "other"\ntitle = "B"\nmodality = "x"\nclasses = ["a", "b"]\ncounts = [1, 1]\npositive = "a"\n')
    with pytest.raises(CardError, match=r"bad\.toml: key: 'other' must equal the file name"):
        read_card(bad)
    bad.write_text('key = "bad"\ntitle = "B"\nmodality = "x"\nclasses = ["a", "b"]\ncounts = [1, 1]\npositive = "a"\n'
                   '[convert.class_map]\nA = "z"\n')
    with pytest.raises(CardError, match=r"convert\.class_map\.A"):
        read_card(bad)


def test_an_alias_claimed_by_two_cards_names_both_files(root):
    (root / "aaa.toml").write_text('key = "aaa"\ntitle = "A"\nmodality = "x"\nclasses = ["a", "b"]\n'
                                   'counts = [1, 1]\npositive = "a"\naliases = ["mnist"]\n')
    # the user's data root is searched first, so the packaged card is the one found to clash
    with pytest.raises(CardError, match=r"ham10000\.toml: aliases: 'mnist' is already claimed \(by .*aaa\.toml\)"):
        list_cards(root)
