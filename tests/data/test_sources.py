"""The data layer: IDX parsing, every bad-file case, sources, checksums, cache, splits."""

from __future__ import annotations

import dataclasses
import gzip
import json
import struct

import numpy as np
import pytest

from cnnlstm.cli import main
from cnnlstm.data import idx
from cnnlstm.data import sources as data
from cnnlstm.data.splits import PIXEL_MEAN
from cnnlstm.errors import DatasetError

from conftest import REAL_DATA_DIR, STEMS, idx_bytes, synthetic_arrays, write_dataset


def test_parse_idx_roundtrip_raw_and_gz(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(idx.load_idx(tmp_path / "a"), arr)
    np.testing.assert_array_equal(idx.load_idx(tmp_path / "a.gz"), arr)


def test_parse_idx_big_endian_int32():
    values = np.array([1, -2, 70000], dtype=">i4")
    raw = struct.pack(">BBBBI", 0, 0, 0x0C, 1, 3) + values.tobytes()
    out = idx.parse_idx(raw)
    assert out.tolist() == [1, -2, 70000] and out.dtype.isnative


BAD_FILES = {
    "empty": (b"", "empty"),
    "truncated": (idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5], "truncated"),
    "trailing": (idx_bytes(np.zeros((3, 4, 4), np.uint8)) + b"xx", "trailing"),
    "magic": (b"\x01\x02\x08\x03" + idx_bytes(np.zeros((3, 4, 4), np.uint8))[4:], "magic"),
    "zero_dims": (b"\x00\x00\x08\x00", "0 dimensions"),
    "short_header": (b"\x00\x00\x08\x03\x00\x00", "header"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_idx_raises_dataset_error_naming_file(tmp_path, case):
    payload, words = BAD_FILES[case]
    path = tmp_path / f"{case}-idx3-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DatasetError, match=words) as err:
        idx.load_idx(path)
    assert str(path) in str(err.value)


def test_gz_name_without_gzip_data(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(idx_bytes(np.zeros((2, 2), np.uint8)))
    with pytest.raises(DatasetError, match="not gzip"):
        idx.load_idx(path)


def test_damaged_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 50), np.uint8)))[:-20])
    with pytest.raises(DatasetError, match="gzip"):
        idx.load_idx(path)


def test_wrong_dimension_count_for_images(tmp_path):
    arrays = synthetic_arrays(20, 10)
    arrays["train_images"] = arrays["train_images"].reshape(20, -1)  # 2-D images
    folder = write_dataset(tmp_path / "d", arrays)
    with pytest.raises(DatasetError, match="dimensions"):
        data.load_dataset(folder, verify=False)


def test_label_out_of_range(tmp_path):
    arrays = synthetic_arrays(20, 10)
    arrays["test_labels"][3] = 12
    with pytest.raises(DatasetError, match="label 12 out of range"):
        data.load_dataset(write_dataset(tmp_path / "d", arrays), verify=False)


def test_image_label_count_mismatch(tmp_path):
    arrays = synthetic_arrays(20, 10)
    arrays["train_labels"] = arrays["train_labels"][:-1]
    with pytest.raises(DatasetError, match="20 images but 19 labels"):
        data.load_dataset(write_dataset(tmp_path / "d", arrays), verify=False)


def test_checksum_mismatch_is_caught_and_no_verify_loads(tiny_data_dir):
    with pytest.raises(DatasetError, match="SHA-256"):
        data.load_dataset(tiny_data_dir)
    ds = data.load_dataset(tiny_data_dir, verify=False)
    assert not ds.verified
    assert ds.train_images.shape == (200, 28, 28) and ds.train_labels.dtype == np.int64
    assert ds.classes[0] == "class 0" and len(ds.classes) == 10


def test_classes_txt_names_the_classes(tiny_data_dir):
    (tiny_data_dir / "classes.txt").write_text("\n".join(f"thing{i}" for i in range(10)))
    assert data.load_dataset(tiny_data_dir, verify=False).classes[3] == "thing3"


def test_raw_files_load_too(tmp_path):
    folder = write_dataset(tmp_path / "raw", gz=False)
    assert data.load_dataset(folder, verify=False).test_images.shape == (50, 28, 28)


def test_source_order_env_then_cache_then_debian(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "env")
    monkeypatch.setenv("CNNLSTM_DATA", str(folder))
    assert data.candidate_dirs(None)[0] == ("$CNNLSTM_DATA", folder)
    labels = [label for label, _ in data.candidate_dirs(None)]
    assert labels == ["$CNNLSTM_DATA", "cache", "debian"]
    assert data.load_dataset(verify=False, download=False).source.startswith(str(folder))


def test_nothing_found_without_download_says_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "nope")
    with pytest.raises(DatasetError) as err:
        data.load_dataset(download=False)
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg and "download" in msg


def test_download_is_atomic_and_checked(tmp_path, monkeypatch):
    """A 'wrong mirror' serving other bytes fails the checksum and leaves no file behind."""
    served = gzip.compress(idx_bytes(np.zeros((5, 28, 28), np.uint8)))
    src = tmp_path / "mirror.gz"
    src.write_bytes(served)
    monkeypatch.setattr(data, "FASHION_MNIST", dataclasses.replace(data.FASHION_MNIST, url=src.as_uri()))
    dest = tmp_path / "cache"
    with pytest.raises(DatasetError, match="wrong mirror"):
        data.download_fashion_mnist(dest)
    assert not list(dest.glob("*.gz")) and not list(dest.glob(".*part"))


def test_download_retries_then_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.setattr(data.time, "sleep", lambda s: None)
    with pytest.raises(DatasetError, match="could not download"):
        data.download_file((tmp_path / "missing").as_uri(), tmp_path / "out", retries=2)
    assert list(tmp_path.iterdir()) == []


def test_cache_is_used_then_rebuilt_when_damaged(tiny_data_dir, isolated_cache):
    first = data.load_dataset(tiny_data_dir, verify=False)
    assert "(cache)" not in first.source
    second = data.load_dataset(tiny_data_dir, verify=False)
    assert second.source.endswith("(cache)")
    np.testing.assert_array_equal(first.train_images, second.train_images)
    cache = data.cache_folder(tiny_data_dir)
    npy = cache / "train_images.npy"
    blob = bytearray(npy.read_bytes())
    blob[-1] ^= 0xFF  # flip one pixel of the cached array
    npy.write_bytes(bytes(blob))
    third = data.load_dataset(tiny_data_dir, verify=False)
    assert "(cache)" not in third.source  # damaged cache was not trusted
    np.testing.assert_array_equal(third.train_images, first.train_images)
    assert data.load_dataset(tiny_data_dir, verify=False).source.endswith("(cache)")  # rebuilt


def test_cache_manifest_garbage_is_not_trusted(tiny_data_dir):
    data.load_dataset(tiny_data_dir, verify=False)
    (data.cache_folder(tiny_data_dir) / "manifest.json").write_text("{not json")
    assert "(cache)" not in data.load_dataset(tiny_data_dir, verify=False).source


def test_unverified_cache_is_not_used_for_a_verified_load(tiny_data_dir):
    data.load_dataset(tiny_data_dir, verify=False)
    with pytest.raises(DatasetError, match="SHA-256"):
        data.load_dataset(tiny_data_dir, verify=True)


# --------------------------------------------------------------------------- CLI


def test_cli_data_reports_synthetic(tiny_data_dir, capsys):
    assert main(["data", "--data-dir", str(tiny_data_dir), "--no-verify", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "NOT verified" in out and "class 9" in out and "200" in out


@pytest.mark.parametrize("case", ["empty", "truncated", "magic", "not_gzip", "label", "count", "checksum"])
def test_cli_bad_files_one_line_exit_2(tmp_path, capsys, case):
    arrays = synthetic_arrays(20, 10)
    if case == "label":
        arrays["train_labels"][0] = 99
    if case == "count":
        arrays["test_labels"] = arrays["test_labels"][:5]
    folder = write_dataset(tmp_path / "d", arrays)
    target = folder / f"{STEMS['test_images']}.gz"
    if case == "empty":
        target.write_bytes(gzip.compress(b""))
    elif case == "truncated":
        target.write_bytes(gzip.compress(idx_bytes(arrays["test_images"])[:-100]))
    elif case == "magic":
        target.write_bytes(gzip.compress(b"\x12\x34" + idx_bytes(arrays["test_images"])[2:]))
    elif case == "not_gzip":
        target.write_bytes(idx_bytes(arrays["test_images"]))
    argv = ["data", "--data-dir", str(folder)] + ([] if case == "checksum" else ["--no-verify"])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cnnlstm data: error:") and "Traceback" not in err


def test_cli_debug_shows_the_traceback(tmp_path):
    with pytest.raises(DatasetError):
        main(["data", "--data-dir", str(tmp_path / "missing"), "--debug"])


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_fashion_mnist(isolated_cache):
    ds = data.load_dataset(download=False)
    assert ds.source == str(REAL_DATA_DIR) and ds.verified
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    assert ds.classes[6] == "Shirt"
    again = data.load_dataset(download=False)
    assert again.source == f"{REAL_DATA_DIR} (cache)" and again.verified
    assert abs(ds.train_images.mean() / 255 - PIXEL_MEAN) < 1e-3
    manifest = json.loads((data.cache_folder(REAL_DATA_DIR) / "manifest.json").read_text())
    assert manifest["meta"]["verified"] is True
