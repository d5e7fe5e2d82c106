"""Tests for cnnlstm.measure.embed: K0, seeded openTSNE embedding, embedding-quality metrics."""

import json

import numpy as np
import pytest

from cnnlstm.measure.embed import default_k0, embedding_quality, knn_accuracy, tsne_embed


def _blobs(n_per=30, n_classes=10, dim=20, spread=0.3, seed=0):
    """Well-separated Gaussian blobs: n_per points around each of n_classes random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(n_classes, dim))
    labels = np.repeat(np.arange(n_classes), n_per)
    return centres[labels] + rng.normal(scale=spread, size=(labels.size, dim)), labels


def test_default_k0_natural_log():
    assert default_k0(70_000) == 124
    assert default_k0(10_000) == 84
    assert default_k0(1) == 0
    with pytest.raises(ValueError):
        default_k0(0)


def test_tsne_same_seed_identical_other_seed_different():
    x, _ = _blobs(n_per=20)  # 200 points
    a = tsne_embed(x, n_iter=50, k0=20, seed=3)
    b = tsne_embed(x, n_iter=50, k0=20, seed=3)
    c = tsne_embed(x, n_iter=50, k0=20, seed=4)
    assert a.shape == (200, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_tsne_pca_first_and_tiny_perplexity_clip():
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(60, 100))  # D > pca_dims -> PCA path
    assert tsne_embed(wide, n_iter=20, k0=5, pca_dims=10).shape == (60, 2)
    tiny = rng.normal(size=(12, 4))  # perplexity 30 clipped to 11/3
    assert tsne_embed(tiny, n_iter=20, k0=5).shape == (12, 2)
    with pytest.raises(ValueError):
        tsne_embed(rng.normal(size=(3, 4)))


def test_tsne_separates_blobs():
    x, labels = _blobs(n_per=20)
    emb = tsne_embed(x, n_iter=100, seed=0)
    assert knn_accuracy(emb, labels)["knn10"] > 0.95


def test_knn_accuracy_separable_and_shuffled():
    x, labels = _blobs()  # 300 points
    acc = knn_accuracy(x, labels)
    assert acc["knn1"] == pytest.approx(1.0) and acc["knn10"] == pytest.approx(1.0)
    shuffled = np.random.default_rng(1).permutation(labels)
    bad = knn_accuracy(x, shuffled)
    assert bad["knn1"] < 0.3 and bad["knn10"] < 0.3


def test_knn_excludes_self_even_with_duplicates():
    x = np.repeat(np.arange(6.0)[:, None], 2, axis=0)  # every point duplicated once
    labels = np.repeat(np.arange(6), 2)
    assert knn_accuracy(x, labels, ks=(1,))["knn1"] == 1.0  # the twin, never itself
    assert knn_accuracy(x.astype(np.uint8), labels, ks=(1,))["knn1"] == 1.0  # integer input
    lonely = np.arange(10.0)[:, None]
    assert knn_accuracy(lonely, np.arange(10) % 2, ks=(1,))["knn1"] == 0.0  # alternating labels


def test_embedding_quality_identity_like_embedding():
    x, labels = _blobs(dim=2)
    q = embedding_quality(x, x * 3.0 + 1.0, labels, sample=200, spearman_sample=100)
    assert q["embedding"]["trustworthiness"] == pytest.approx(1.0)
    assert q["embedding"]["spearman"] == pytest.approx(1.0)
    assert q["embedding"]["knn1"] == q["features"]["knn1"] == pytest.approx(1.0)
    assert q["n"] == 300 and q["n_sample"] == 200 and q["n_spearman"] == 100
    assert json.loads(json.dumps(q)) == q


def test_embedding_quality_random_embedding_is_worse_and_features_only():
    x, labels = _blobs()
    noise = np.random.default_rng(0).normal(size=(x.shape[0], 2))
    q = embedding_quality(x, noise, labels, sample=None)
    assert q["embedding"]["trustworthiness"] < 0.7
    assert abs(q["embedding"]["spearman"]) < 0.2
    assert q["embedding"]["knn10"] < 0.3 < q["features"]["knn10"]
    only = embedding_quality(x, None, labels)
    assert set(only) == {"features", "n", "n_sample"}


def test_embedding_quality_is_seeded():
    x, labels = _blobs(spread=6.0)
    emb = x[:, :2]
    a = embedding_quality(x, emb, labels, sample=100, spearman_sample=50, seed=5)
    b = embedding_quality(x, emb, labels, sample=100, spearman_sample=50, seed=5)
    assert a == b
