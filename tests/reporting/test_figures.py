"""Every plot function writes a valid, non-empty PNG and returns its path."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnlstm.reporting import figures as plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def assert_png(path, expected):
    assert path == expected and path.exists()
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    assert len(data) < 300_000
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "P"
        assert im.size[0] > 100 and im.size[1] > 100


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def preds(rng):
    labels = np.repeat(np.arange(10), 20)
    logits = rng.normal(size=(200, 10))
    logits[np.arange(200), labels] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


def test_import_has_no_pyplot_side_effect():
    code = "import sys, cnnlstm.reporting.figures; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix(tmp_path, rng, normalize):
    cm = rng.integers(0, 30, (10, 10)) + np.eye(10, dtype=int) * 500
    out = tmp_path / "figs" / "cm.png"  # parent created
    assert_png(plots.plot_confusion_matrix(cm, NAMES, out, normalize=normalize), out)


@pytest.mark.parametrize("classes", [None, 6, [0, 6]])
def test_roc(tmp_path, preds, classes):
    labels, probs = preds
    out = tmp_path / "roc.png"
    assert_png(plots.plot_roc(labels, probs, NAMES, out, classes=classes), out)


def test_roc_absent_class(tmp_path, preds):
    labels, probs = preds
    labels = np.where(labels == 3, 4, labels)  # class 3 absent: curve undefined, no crash
    out = tmp_path / "roc3.png"
    assert_png(plots.plot_roc(labels, probs, NAMES, str(out), classes=3), out)


def test_history_rows_and_columns(tmp_path):
    rows = [{"epoch": str(i + 1), "train_loss": 1 / (i + 1), "train_acc": 0.8 + i / 100,
             "val_loss": 1.2 / (i + 1), "val_acc": 0.78 + i / 100, "lr": 1e-3, "seconds": 2}
            for i in range(5)]
    out = tmp_path / "hist.png"
    assert_png(plots.plot_history(rows, out), out)
    cols = {"train_loss": [1.0, 0.5, ""], "val_acc": [0.5, 0.6, 0.7]}  # no epoch, a gap
    out2 = tmp_path / "hist2.png"
    assert_png(plots.plot_history(cols, out2), out2)


def test_misclassified(tmp_path, rng):
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 50)
    out = tmp_path / "mis.png"
    assert_png(plots.plot_misclassified(images, labels, (labels + 1) % 10, NAMES, out,
                                       max_images=12), out)
    out2 = tmp_path / "none.png"
    assert_png(plots.plot_misclassified(images, labels, labels, NAMES, out2), out2)


def test_class_distribution(tmp_path):
    out = tmp_path / "dist.png"
    assert_png(plots.plot_class_distribution([6000] * 10, [1000] * 10, NAMES, out), out)


def test_boxplots(tmp_path, rng):
    labels = rng.integers(0, 10, 500)
    out = tmp_path / "box.png"
    values = rng.random(500) + labels * 0.1
    assert_png(plots.plot_boxplots(values, labels, NAMES, out, "Means", "mean pixel"), out)


def test_sample_grid_and_mean_images(tmp_path, rng):
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = np.arange(40) % 10
    out = tmp_path / "grid.png"
    assert_png(plots.plot_sample_grid(images, labels, NAMES, out, per_class=5), out)
    out2 = tmp_path / "means.png"
    assert_png(plots.plot_mean_images(rng.random((10, 28, 28)), NAMES, out2), out2)


def test_embedding_plots(tmp_path, rng):
    labels = rng.integers(0, 10, 300)
    emb = rng.normal(size=(300, 2)) + labels[:, None] * 3.0
    out = tmp_path / "emb.png"
    assert_png(plots.plot_embedding(emb, labels, NAMES, out, "t-SNE"), out)
    quality = {"embedding": {"knn1": 0.9, "knn10": 0.92, "trustworthiness": 0.97,
                             "spearman": None}, "features": {"knn1": 0.8, "knn10": 0.85}}
    panels = [(emb, labels, "pixels", quality), (emb * -1, labels, "model", None),
              (emb, labels, "flat", quality["embedding"]), (emb, labels, "four", {})]
    out2 = tmp_path / "side.png"
    assert_png(plots.plot_embeddings_side_by_side(panels, NAMES, out2), out2)
    assert plots.format_quality(quality) == "1-NN 0.900  10-NN 0.920  trust 0.970"
    with pytest.raises(ValueError):
        plots.plot_embeddings_side_by_side([], NAMES, tmp_path / "x.png")
