import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

from bench.metrics import classification_report
from bench.metrics.classification import UndefinedMetricWarning

Y_BIN = np.array([0, 0, 0, 1, 1, 1, 1, 0])
P_BIN = np.array([0.1, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7, 0.2])


def test_binary_agrees_with_sklearn_and_hand_values():
    prob = np.stack([1 - P_BIN, P_BIN], axis=1)
    r = classification_report(Y_BIN, prob, positive="malignant", class_names=["benign", "malignant"])
    pred = (P_BIN > 0.5).astype(int)
    assert r["accuracy"] == pytest.approx(accuracy_score(Y_BIN, pred)) == pytest.approx(6 / 8)
    assert r["sensitivity"] == pytest.approx(recall_score(Y_BIN, pred)) == pytest.approx(3 / 4)
    assert r["specificity"] == pytest.approx(recall_score(Y_BIN, pred, pos_label=0)) == pytest.approx(3 / 4)
    assert r["auc"] == pytest.approx(roc_auc_score(Y_BIN, P_BIN)) == pytest.approx(15 / 16)
    assert r["f1"] == pytest.approx(f1_score(Y_BIN, pred))
    assert r["positive"] == "malignant" and r["average"] == "binary"


def test_positive_class_zero_swaps_sensitivity_and_specificity():
    prob = np.stack([1 - P_BIN, P_BIN], axis=1)
    r1 = classification_report(Y_BIN, prob, positive=1)
    r0 = classification_report(Y_BIN, prob, positive=0)
    y0 = 1 - Y_BIN
    assert r0["sensitivity"] == r1["specificity"]
    assert r0["f1"] == pytest.approx(f1_score(y0, (P_BIN <= 0.5).astype(int)))
    with pytest.raises(ValueError, match="not one of"):
        classification_report(Y_BIN, prob, positive="cancer", class_names=["a", "b"])


def test_multiclass_macro_agrees_with_sklearn():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    prob = rng.dirichlet(np.ones(4), size=40)
    prob[np.arange(40), y] += 0.3
    prob /= prob.sum(1, keepdims=True)
    r = classification_report(y, prob)
    pred = prob.argmax(1)
    assert r["average"] == "macro"
    assert r["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert r["sensitivity"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert r["f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert r["auc"] == pytest.approx(roc_auc_score(y, prob, multi_class="ovr", average="macro"))
    spec = [recall_score(y != k, pred != k) for k in range(4)]
    assert r["specificity"] == pytest.approx(np.mean(spec))
    assert [p["support"] for p in r["per_class"]] == [10, 10, 10, 10]


def test_class_absent_from_test_split_is_nan_with_warning():
    y = np.array([0, 0, 1, 1])
    prob = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    with pytest.warns(UndefinedMetricWarning, match="absent"):
        r = classification_report(y, prob, class_names=["a", "b", "c"])
    c = r["per_class"][2]
    assert np.isnan(c["sensitivity"]) and np.isnan(c["auc"]) and np.isnan(c["f1"])
    assert c["specificity"] == pytest.approx(3 / 4)
    assert r["sensitivity"] == pytest.approx(np.mean([1 / 2, 1 / 2]))  # NaN class skipped
    assert r["accuracy"] == pytest.approx(2 / 4)


def test_binary_with_one_class_only_gives_nan_auc_not_a_crash():
    with pytest.warns(UndefinedMetricWarning):
        r = classification_report(np.array([1, 1, 1]), np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]))
    assert np.isnan(r["auc"]) and np.isnan(r["specificity"]) and r["sensitivity"] == pytest.approx(2 / 3)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        classification_report([0, 1], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="integer classes"):
        classification_report([0, 5], np.zeros((2, 2)))
