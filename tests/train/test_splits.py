import numpy as np
import pytest

from bench.data.splits import make_splits, splits_from_column


def _groups_disjoint(split, groups):
    g = np.asarray(groups)
    parts = [set(g[split.train]), set(g[split.val]), set(g[split.test])]
    return all(not (a & b) for i, a in enumerate(parts) for b in parts[i + 1 :])


def test_single_split_is_grouped_stratified_and_complete():
    labels = np.repeat([0, 1, 2], 40)
    groups = [f"p{i // 3}" for i in range(120)]  # three images per patient
    (s,) = make_splits(labels, groups, test_fraction=0.2, val_fraction=0.15, seed=1)
    assert sorted(np.concatenate([s.train, s.val, s.test]).tolist()) == list(range(120))
    assert _groups_disjoint(s, groups)
    assert 18 <= len(s.test) <= 30 and 12 <= len(s.val) <= 24
    assert set(labels[s.test]) == {0, 1, 2}


def test_kfold_test_parts_cover_every_image_once():
    labels = np.repeat([0, 1], 50)
    groups = [f"l{i // 2}" for i in range(100)]
    splits = make_splits(labels, groups, folds=5, seed=0)
    assert len(splits) == 5
    tests = np.concatenate([s.test for s in splits])
    assert sorted(tests.tolist()) == list(range(100))
    assert all(_groups_disjoint(s, groups) for s in splits)


def test_same_seed_same_split_other_seed_other_split():
    labels = np.repeat([0, 1], 30)
    a = make_splits(labels, None, seed=3)[0]
    b = make_splits(labels, None, seed=3)[0]
    c = make_splits(labels, None, seed=4)[0]
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)


def test_manifest_split_column():
    s = splits_from_column(["train", "val", "test", "TRAIN"])
    assert s.train.tolist() == [0, 3] and s.val.tolist() == [1] and s.test.tolist() == [2]
    assert splits_from_column(["train", ""]) is None
    with pytest.raises(ValueError, match="folds"):
        make_splits([0, 1], folds=0)
