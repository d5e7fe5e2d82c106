"""Tests for cnnlstm.measure.inference: batched prediction, TTA and sklearn-backed metrics."""

import json

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from cnnlstm.measure.inference import predict_probs
from cnnlstm.measure.metrics import compute_metrics, roc_curve_for_class

NAMES = [f"c{i}" for i in range(4)]


class TinyNet(torch.nn.Module):
    """forward_features/forward_head model with dropout, so train vs eval mode matters."""

    def __init__(self, n_classes=4):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 3, 3)
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(3 * 6 * 6, n_classes)

    def forward_features(self, x):
        return self.drop(torch.relu(self.conv(x))).flatten(1)  # (B, 3*6*6)

    def forward_head(self, f):
        return self.fc(f)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _fixed_predictions(seed=0, n=200, c=4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), labels] += 1.0  # better than chance, not perfect
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


@pytest.fixture
def images():
    return torch.randn(25, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_predict_probs_rows_sum_to_one_and_batching_invariant(images):
    model = TinyNet()
    p_small = predict_probs(model, images, batch_size=7)
    p_big = predict_probs(model, images, batch_size=1000)
    assert p_small.shape == (25, 4)
    np.testing.assert_allclose(p_small.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p_small, p_big, atol=1e-6)


def test_predict_probs_is_eval_mode_and_restores_mode(images):
    model = TinyNet()
    model.train()
    p1 = predict_probs(model, images)
    p2 = predict_probs(model, images)
    np.testing.assert_array_equal(p1, p2)  # dropout off: deterministic
    assert model.training  # previous mode restored
    model.eval()
    predict_probs(model, images)
    assert not model.training


def test_tta_identity_view_equals_no_tta(images):
    model = TinyNet()
    plain = predict_probs(model, images)
    tta = predict_probs(model, images, tta_views=lambda x: [x])
    np.testing.assert_allclose(plain, tta, atol=1e-6)


def test_tta_averages_softmax_of_views(images):
    model = TinyNet()
    tta = predict_probs(model, images, tta_views=lambda x: [x, x.flip(-1)])
    flipped = predict_probs(model, images.flip(-1))
    np.testing.assert_allclose(tta, (predict_probs(model, images) + flipped) / 2, atol=1e-6)


def test_return_features_matches_forward_features(images):
    model = TinyNet().eval()
    probs, feats = predict_probs(model, images, batch_size=10, return_features=True)
    with torch.no_grad():
        expected = model.forward_features(images).numpy()
    assert feats.shape == (25, 108) and probs.shape == (25, 4)
    np.testing.assert_allclose(feats, expected, atol=1e-6)
    _, feats_tta = predict_probs(model, images, tta_views=lambda x: [x.flip(-1)], return_features=True)
    np.testing.assert_allclose(feats_tta, expected, atol=1e-6)  # features of the plain images


def test_metrics_equal_sklearn():
    labels, probs = _fixed_predictions()
    preds = probs.argmax(1)
    m = compute_metrics(labels, probs, NAMES)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, preds))
    for avg in ("macro", "micro"):
        assert m[f"precision_{avg}"] == pytest.approx(skm.precision_score(labels, preds, average=avg))
        assert m[f"recall_{avg}"] == pytest.approx(skm.recall_score(labels, preds, average=avg))
        assert m[f"f1_{avg}"] == pytest.approx(skm.f1_score(labels, preds, average=avg))
    assert m["f1_micro"] == pytest.approx(m["accuracy"])
    assert m["roc_auc_macro"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr"))
    f1s = skm.f1_score(labels, preds, average=None)
    assert [c["f1"] for c in m["per_class"]] == pytest.approx(list(f1s))
    assert m["confusion_matrix"] == skm.confusion_matrix(labels, preds).tolist()
    assert sum(map(sum, m["confusion_matrix"])) == m["n_test"] == 200
    assert sum(c["support"] for c in m["per_class"]) == 200


def test_metrics_keys_and_json_serialisable():
    labels, probs = _fixed_predictions()
    m = compute_metrics(labels, probs, NAMES)
    assert set(m) == {
        "accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_micro",
        "recall_micro", "f1_micro", "roc_auc_macro", "per_class", "confusion_matrix",
        "worst_class", "top_confusions", "n_test",
    }
    assert set(m["per_class"][0]) == {"label", "name", "precision", "recall", "f1", "support", "roc_auc"}
    assert json.loads(json.dumps(m)) == m


def test_perfect_classifier():
    labels = np.repeat(np.arange(4), 5)
    probs = np.eye(4)[labels] * 0.9 + 0.025
    m = compute_metrics(labels, probs, NAMES)
    assert m["accuracy"] == 1.0 and m["f1_macro"] == 1.0 and m["roc_auc_macro"] == 1.0
    assert all(c["roc_auc"] == 1.0 for c in m["per_class"])
    assert m["top_confusions"] == []
    fpr, tpr, auc = roc_curve_for_class(labels, probs, 2)
    assert auc == 1.0 and fpr[0] == 0.0 and tpr[-1] == 1.0


def test_worst_class_and_top_confusions_crafted():
    # class 2 is half confused with class 3; everything else right
    labels = np.array([0] * 10 + [1] * 10 + [2] * 10 + [3] * 10)
    preds = labels.copy()
    preds[20:25] = 3
    preds[0] = 1
    probs = np.eye(4)[preds]
    m = compute_metrics(labels, probs, NAMES)
    assert m["worst_class"] == 2
    assert m["top_confusions"][0] == {"true": 2, "true_name": "c2", "pred": 3, "pred_name": "c3", "count": 5}
    assert m["top_confusions"][1]["count"] == 1 and len(m["top_confusions"]) == 2


def test_absent_class_is_graceful():
    labels = np.array([0, 0, 1, 1, 2, 2])  # class 3 never appears
    probs = np.full((6, 4), 0.1)
    probs[np.arange(6), [0, 0, 1, 3, 2, 2]] = 0.7
    with np.errstate(all="raise"):
        m = compute_metrics(labels, probs, NAMES)
    assert m["per_class"][3]["roc_auc"] is None and m["per_class"][3]["support"] == 0
    assert m["per_class"][3]["precision"] == 0.0
    assert m["roc_auc_macro"] is not None
    assert m["worst_class"] != 3  # only classes present in the labels compete
    fpr, tpr, auc = roc_curve_for_class(labels, probs, 3)
    assert auc is None and list(fpr) == [0.0, 1.0]


def test_roc_curve_matches_sklearn():
    labels, probs = _fixed_predictions(seed=3)
    fpr, tpr, auc = roc_curve_for_class(labels, probs, 1)
    assert auc == pytest.approx(skm.roc_auc_score(labels == 1, probs[:, 1]))
    assert auc == pytest.approx(skm.auc(fpr, tpr))


def test_bad_shapes_raise():
    labels, probs = _fixed_predictions()
    with pytest.raises(ValueError):
        compute_metrics(labels[:-1], probs, NAMES)
    with pytest.raises(ValueError):
        compute_metrics(labels, probs, NAMES[:3])
