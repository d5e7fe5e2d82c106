"""Tests for cnnlstm.data.dataset_stats: dataset statistics against hand-computed numpy."""

import json

import numpy as np
import pytest

import cnnlstm.data.dataset_stats as stats_module
from cnnlstm.data.dataset_stats import (
    class_counts,
    class_mean_images,
    dataset_stats,
    per_image_stats,
    sample_indices_per_class,
    summarize,
)

NAMES = ["a", "b", "c"]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 5, 4), dtype=np.uint8)
    labels = np.array([0, 1, 1, 2] * 10)
    return images, labels


def test_class_counts():
    np.testing.assert_array_equal(class_counts([0, 2, 2, 2], 4), [1, 0, 3, 0])
    with pytest.raises(ValueError):
        class_counts([0, 5], 3)


def test_per_image_stats_by_hand(data, monkeypatch):
    images, _ = data
    monkeypatch.setattr(stats_module, "CHUNK", 7)  # exercise the chunking
    means, variances = per_image_stats(images)
    x = images.reshape(40, -1) / 255.0
    np.testing.assert_allclose(means, x.mean(1))
    np.testing.assert_allclose(variances, x.var(1))
    m0, v0 = per_image_stats(np.zeros((2, 3, 3), np.uint8) + 255)
    assert m0.tolist() == [1.0, 1.0] and v0.tolist() == [0.0, 0.0]


def test_class_mean_images_by_hand(data, monkeypatch):
    images, labels = data
    monkeypatch.setattr(stats_module, "CHUNK", 9)
    means = class_mean_images(images, labels, 4)  # class 3 absent
    assert means.shape == (4, 5, 4)
    for c in range(3):
        np.testing.assert_allclose(means[c], images[labels == c].mean(0) / 255.0)
    assert not means[3].any()


def test_sample_indices_per_class(data):
    _, labels = data
    idx = sample_indices_per_class(labels, 3, seed=1)
    assert idx.tolist() == sample_indices_per_class(labels, 3, seed=1).tolist()
    assert labels[idx].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert len(set(idx.tolist())) == 9
    assert idx.tolist() != sample_indices_per_class(labels, 3, seed=2).tolist()
    few = sample_indices_per_class(labels, 100, seed=0)  # more than exist: all of them
    assert sorted(few.tolist()) == list(range(40))


def test_summarize():
    s = summarize([1, 2, 3, 4, 5])
    assert s == {"min": 1.0, "q1": 2.0, "median": 3.0, "q3": 4.0, "max": 5.0, "mean": 3.0}


def test_dataset_stats_by_hand(data):
    images, labels = data
    tr_i, tr_l, te_i, te_l = images[:30], labels[:30], images[30:], labels[30:]
    stats = dataset_stats(tr_i, tr_l, te_i, te_l, NAMES)
    assert json.loads(json.dumps(stats)) == stats
    assert stats["image_shape"] == [5, 4] and stats["class_names"] == NAMES
    train = stats["splits"]["train"]
    assert train["n"] == 30 and train["class_counts"] == np.bincount(tr_l, minlength=3).tolist()
    assert train["pixel_mean"] == pytest.approx(tr_i.mean() / 255.0)
    assert train["pixel_std"] == pytest.approx((tr_i / 255.0).std())
    assert stats["splits"]["all"]["pixel_std"] == pytest.approx((images / 255.0).std())
    assert stats["splits"]["test"]["n"] == 10
    pc = stats["per_class"][1]
    assert (pc["label"], pc["name"], pc["n_train"], pc["n_test"]) == (1, "b", 15, 5)
    img_means = images[labels == 1].reshape(20, -1).mean(1) / 255.0
    assert pc["mean"]["median"] == pytest.approx(np.median(img_means))
    assert pc["mean"]["q1"] == pytest.approx(np.percentile(img_means, 25))
    img_vars = (images[labels == 1].reshape(20, -1) / 255.0).var(1)
    assert pc["variance"]["mean"] == pytest.approx(img_vars.mean())
