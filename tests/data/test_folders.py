"""Image folders and .npz files as datasets: the layouts, the decoding rules, the cache, bad folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlstm.cli import main
from cnnlstm.data import load_data, load_dataset
from cnnlstm.data.folders import load_image_folder
from cnnlstm.errors import DatasetError

from conftest import synthetic_arrays, write_dataset


def write_png_folder(root, arrays, classes=None):
    """``root/train/<class>/<i>.png`` and ``root/test/...`` from uint8 arrays (grey or RGB)."""
    n_classes = int(max(arrays["train_labels"].max(), arrays["test_labels"].max())) + 1
    classes = classes or [f"c{i:02d}" for i in range(n_classes)]
    for split in ("train", "test"):
        for i, (img, label) in enumerate(zip(arrays[f"{split}_images"], arrays[f"{split}_labels"])):
            folder = root / split / classes[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:05d}.png")
    return root


def rgb_arrays(size: int, n_train: int = 60, n_test: int = 20, n_classes: int = 3, seed: int = 0):
    """Colour images whose class is its dominant channel, plus noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = np.arange(n) % n_classes
        images = rng.integers(0, 60, size=(n, size, size, 3), dtype=np.uint8)
        for i, c in enumerate(labels):
            images[i, :, :, c % 3] += 150
        return images, labels.astype(np.int64)

    (a, b), (c, d) = make(n_train), make(n_test)
    return {"train_images": a, "train_labels": b, "test_images": c, "test_labels": d}


def test_png_folder_loads_to_the_idx_arrays(tmp_path):
    """Fashion-MNIST-style IDX arrays written out as PNGs come back bit-identical."""
    arrays = synthetic_arrays(n_train=120, n_test=30)
    idx = load_dataset(write_dataset(tmp_path / "idx", arrays), verify=False)
    folder = load_data(str(write_png_folder(tmp_path / "png", arrays)))
    assert folder.channels == 1 and folder.image_size == 28 and folder.split == ""
    # classes sort as c00..c09, so labels keep their numbers; files sort by name = original order
    for key in ("train_images", "test_images"):
        order = np.argsort(getattr(idx, key.replace("images", "labels")), kind="stable")
        assert np.array_equal(getattr(folder, key), getattr(idx, key)[order])
    assert folder.norm == idx.norm


def test_folder_cache_is_keyed_by_contents(tmp_path):
    root = write_png_folder(tmp_path / "png", rgb_arrays(8))
    first = load_image_folder(root)
    assert first.channels == 3 and not first.source.endswith("(cache)")
    again = load_image_folder(root)
    assert again.source.endswith("(cache)") and again.checksum == first.checksum
    some = next((root / "train").rglob("*.png"))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(some)  # same name, new contents
    changed = load_image_folder(root)
    assert not changed.source.endswith("(cache)") and changed.checksum != first.checksum


def test_single_tree_is_split_stratified_and_recorded(tmp_path):
    arrays = rgb_arrays(8, n_train=50, n_test=1)
    for i, (img, label) in enumerate(zip(arrays["train_images"], arrays["train_labels"])):
        (tmp_path / "tree" / f"k{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "tree" / f"k{label}" / f"{i}.png")
    ds = load_data(str(tmp_path / "tree"))
    assert len(ds.train_labels) + len(ds.test_labels) == 50 and len(ds.test_labels) == 10
    assert sorted(np.bincount(ds.test_labels)) == [3, 3, 4]
    assert "stratified" in ds.split and "seed 0" in ds.split
    assert ds.describe()["split"] == ds.split


def test_resize_and_mixed_modes_follow_the_stated_rules(tmp_path):
    root = tmp_path / "mixed"
    for split in ("train", "test"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            Image.new("L", (20, 30), 128).save(root / split / c / "grey.png")  # greyscale, not square
            Image.new("RGB", (40, 40), (200, 10, 10)).save(root / split / c / "red.jpg")
    with pytest.raises(DatasetError, match="not square|differ in size"):
        load_image_folder(root)
    ds = load_image_folder(root, image_size=16)
    assert ds.train_images.shape == (4, 16, 16, 3)  # any colour image makes the whole set RGB
    grey = ds.train_images[ds.train_images[..., 1] > 100][0]
    assert (grey == 128).all()  # a grey image repeats its value in the three channels


def test_dataset_toml_sets_flips(tmp_path):
    root = write_png_folder(tmp_path / "digits", rgb_arrays(8))
    assert load_image_folder(root).flip_preserves_labels
    (root / "dataset.toml").write_text("flip_preserves_labels = false\n")
    assert not load_image_folder(root).flip_preserves_labels
    (root / "dataset.toml").write_text("flips = false\n")
    with pytest.raises(DatasetError, match="unknown key 'flips'"):
        load_image_folder(root)


def test_npz_loads_uint8_and_unit_floats(tmp_path):
    a = rgb_arrays(12)
    np.savez(tmp_path / "u8.npz", x_train=a["train_images"], y_train=a["train_labels"], x_test=a["test_images"],
             y_test=a["test_labels"], classes=np.array(["r", "g", "b"]))
    ds = load_data(str(tmp_path / "u8.npz"))
    assert ds.classes == ("r", "g", "b") and ds.channels == 3 and ds.image_size == 12
    np.savez(tmp_path / "f.npz", x_train=a["train_images"] / 255.0, y_train=a["train_labels"],
             x_test=a["test_images"] / 255.0, y_test=a["test_labels"])
    same = load_data(str(tmp_path / "f.npz"))
    assert np.array_equal(same.train_images, ds.train_images) and same.classes == ("class 0", "class 1", "class 2")
    np.savez(tmp_path / "bad.npz", x_train=a["train_images"] * 2.0, y_train=a["train_labels"],
             x_test=a["test_images"], y_test=a["test_labels"])
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        load_data(str(tmp_path / "bad.npz"))


def test_mnist_checksums_are_of_the_gz_files(tmp_path):
    """MNIST's published MD5s cover the .gz files: other bytes fail, raw files need --no-verify."""
    folder = write_dataset(tmp_path / "fake-mnist")
    with pytest.raises(DatasetError, match="MD5 does not match MNIST's"):
        load_data("mnist", data_dir=folder)
    raw = write_dataset(tmp_path / "raw", gz=False)
    with pytest.raises(DatasetError, match="published checksums are of the .gz files"):
        load_data("mnist", data_dir=raw)
    ds = load_data("mnist", data_dir=raw, verify=False)
    assert ds.name == "mnist" and not ds.flip_preserves_labels and not ds.verified


def _bad_folder(tmp_path, case: str):
    root = tmp_path / case
    img = np.full((8, 8), 50, np.uint8)
    for c in ("a", "b"):
        for split in ("train", "test"):
            (root / split / c).mkdir(parents=True)
            Image.fromarray(img).save(root / split / c / "0.png")
    if case == "empty":
        (root / "train" / "b" / "0.png").unlink()
    elif case == "single":
        for split in ("train", "test"):
            for f in (root / split / "b").iterdir():
                f.unlink()
            (root / split / "b").rmdir()
    elif case == "unreadable":
        (root / "train" / "a" / "broken.png").write_bytes(b"not a png at all")
    elif case == "unknown":
        (root / "test" / "zebra").mkdir()
        Image.fromarray(img).save(root / "test" / "zebra" / "0.png")
    return root


@pytest.mark.parametrize("case, message", [
    ("empty", "class 'b' has no image files"),
    ("single", "only one class"),
    ("unreadable", "broken.png: not a readable image"),
    ("unknown", "test class 'zebra' is not a class of"),
])
def test_bad_folders_are_one_line_with_exit_2(tmp_path, capsys, case, message):
    root = _bad_folder(tmp_path, case)
    assert main(["data", "--data", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_unknown_spec_is_one_line(tmp_path, capsys):
    assert main(["data", "--data", "cifar-1000"]) == 2
    assert "not a dataset name (fashion-mnist, mnist, kmnist)" in capsys.readouterr().err
