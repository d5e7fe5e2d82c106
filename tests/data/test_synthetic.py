"""The synthetic tasks: seeded, balanced, as asked (fragments, contour length, size), disjoint splits, one-line errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from cnnlstm.cli import main
from cnnlstm.data import load_data, synthetic
from cnnlstm.data.catalog import canonical_spec, spec_kind
from cnnlstm.data.debris import BACKGROUND, FRAGMENT_SIDES, render_debris
from cnnlstm.data.pathfinder import DASH, GAP, LENGTHS, MARKER_RADIUS, distractor_plan, render_pathfinder
from cnnlstm.data.synthetic import generate_split, load_synthetic, parse_spec, split_seed
from cnnlstm.errors import DatasetError

BAD_SPECS = ["debris:-1", "debris:x", "debris:", "debris:501", "debris:5:1", "debris:--1",
             "pathfinder:0", "pathfinder:x", "pathfinder:7", "pathfinder:", "pathfinder:14:2"]


@pytest.fixture
def small_sizes(monkeypatch):
    """Tiny default sizes, so that specs loaded through load_data generate in a blink."""
    monkeypatch.setattr(synthetic, "DEFAULT_SIZES", {"train": 40, "test": 20})


def digests(images: np.ndarray) -> set[str]:
    return {hashlib.sha256(img.tobytes()).hexdigest() for img in images}


# --------------------------------------------------------------------------- specs


def test_specs_parse_to_their_canonical_names():
    assert parse_spec("debris").name == "debris:50"
    assert parse_spec("debris:0").name == "debris:0"
    assert parse_spec("pathfinder").name == "pathfinder:14"
    assert [parse_spec(f"pathfinder:{n}").param for n in LENGTHS] == [6, 9, 14]
    assert spec_kind("debris:7") == "synthetic" and canonical_spec("debris") == "debris:50"
    assert canonical_spec("pathfinder:6") == "pathfinder:6" and spec_kind("fashion-mnist") == "idx"


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_a_bad_parameter_is_a_one_line_dataset_error(spec):
    with pytest.raises(DatasetError) as err:
        spec_kind(spec)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"--data {spec}:")


@pytest.mark.parametrize("spec", ["debris:-1", "pathfinder:0", "pathfinder:x"])
def test_a_bad_parameter_exits_2_with_one_line(spec, capsys):
    assert main(["data", "--data", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and spec in err


def test_synthetic_specs_take_no_data_dir_or_image_size(small_sizes):
    with pytest.raises(DatasetError, match="--data-dir is for the IDX datasets"):
        load_data("debris", data_dir="/tmp")
    with pytest.raises(DatasetError, match="image_size is for image folders"):
        load_data("pathfinder:6", image_size=28)


# --------------------------------------------------------------------------- debris


def test_debris_is_deterministic_under_a_seed():
    labels = np.arange(12) % 10
    a, _ = render_debris(labels, 20, np.random.default_rng(3))
    b, _ = render_debris(labels, 20, np.random.default_rng(3))
    c, _ = render_debris(labels, 20, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (12, 32, 32) and a.dtype == np.uint8
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("fragments", [0, 1, 7, 50])
def test_debris_pastes_the_fragments_asked_for_and_only_inside_them(fragments):
    labels = np.arange(20) % 10
    clean, _ = render_debris(labels, 0, np.random.default_rng(5))
    images, layout = render_debris(labels, fragments, np.random.default_rng(5))
    assert layout.fragments.shape == (20, fragments, 3)
    top, left, side = np.moveaxis(layout.fragments, -1, 0)
    assert ((side >= FRAGMENT_SIDES[0]) & (side <= FRAGMENT_SIDES[1])).all()
    assert ((top >= 0) & (left >= 0) & (top + side <= 32) & (left + side <= 32)).all()
    covered = np.zeros(images.shape, bool)  # the union of each image's fragment squares
    for i, boxes in enumerate(layout.fragments):
        for t, lft, s in boxes:
            covered[i, t:t + s, lft:lft + s] = True
    changed = images != clean  # the same seed draws the same digit whatever the fragment count
    assert not (changed & ~covered).any()
    if fragments:
        assert changed.any(axis=(1, 2)).mean() > 0.5
    else:
        assert not changed.any()


def test_the_clean_digit_is_drawn_where_its_offset_says():
    labels = np.repeat(np.arange(10), 6)
    images, layout = render_debris(labels, 0, np.random.default_rng(6))
    ink = images != BACKGROUND
    assert ink.any(axis=(1, 2)).all() and not ink.all(axis=(1, 2)).any()
    rows = (ink.sum(axis=2) * np.arange(32)).sum(axis=1) / ink.sum(axis=(1, 2))
    cols = (ink.sum(axis=1) * np.arange(32)).sum(axis=1) / ink.sum(axis=(1, 2))
    # the ink's centre follows the drawn offset (within the glyph's own asymmetry)
    assert np.abs(rows - 15.5 - layout.offset[:, 0]).max() < 2.5
    assert np.abs(cols - 15.5 - layout.offset[:, 1]).max() < 2.5


# --------------------------------------------------------------------------- pathfinder


def test_pathfinder_is_deterministic_under_a_seed():
    labels = np.arange(10) % 2
    a, _ = render_pathfinder(labels, 6, np.random.default_rng(1))
    b, _ = render_pathfinder(labels, 6, np.random.default_rng(1))
    c, _ = render_pathfinder(labels, 6, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (10, 32, 32) and a.dtype == np.uint8
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("length", LENGTHS)
def test_pathfinder_contours_have_the_length_asked_for(length):
    labels = np.arange(16) % 2
    images, layout = render_pathfinder(labels, length, np.random.default_rng(length))
    assert layout.targets.shape == (16, 2, length, 2, 2)
    count, dashes = distractor_plan(length)
    assert layout.distractors.shape == (16, count, dashes, 2, 2) and dashes == length // 3
    starts, ends = layout.targets[..., 0, :], layout.targets[..., 1, :]
    np.testing.assert_allclose(np.linalg.norm(ends - starts, axis=-1), DASH, atol=1e-4)
    # one dash begins GAP pixels past the previous one's end: a chain, not scattered dashes
    np.testing.assert_allclose(np.linalg.norm(starts[:, :, 1:] - ends[:, :, :-1], axis=-1), GAP, atol=1e-4)
    assert ((layout.targets >= 1) & (layout.targets <= 31)).all()
    middles = np.floor((starts + ends) / 2).astype(int)  # every target dash is drawn:
    rows = np.arange(16)[:, None, None]
    # its midpoint's pixel centre is within 0.71 px of it, so at least 1 - 0.71 of full intensity
    assert (images[rows, middles[..., 0], middles[..., 1]] >= 74).all()


def test_the_two_target_contours_never_touch():
    _, layout = render_pathfinder(np.arange(16) % 2, 14, np.random.default_rng(3))
    a = layout.targets[:, 0].reshape(16, -1, 1, 2)
    b = layout.targets[:, 1].reshape(16, 1, -1, 2)
    assert np.linalg.norm(a - b, axis=-1).min() > 1.0


def test_the_markers_sit_on_one_contour_exactly_when_the_label_is_1():
    labels = np.arange(20) % 2
    images, layout = render_pathfinder(labels, 9, np.random.default_rng(4))
    origin, terminal = layout.marked[:, 0], layout.marked[:, 1]
    np.testing.assert_array_equal(origin == terminal, labels == 1)
    rows = np.arange(20)
    np.testing.assert_allclose(layout.markers[:, 0], layout.targets[rows, origin, 0, 0])
    np.testing.assert_allclose(layout.markers[:, 1], layout.targets[rows, terminal, -1, 1])
    centres = np.floor(layout.markers).astype(int)
    assert (images[rows[:, None], centres[..., 0], centres[..., 1]] == 255).all()
    assert MARKER_RADIUS > 1  # a marker is a disc wider than a dash


# --------------------------------------------------------------------------- splits


@pytest.mark.parametrize("spec", ["debris:10", "pathfinder:6"])
def test_splits_are_seeded_balanced_and_disjoint(spec):
    parsed = parse_spec(spec)
    k = len(parsed.classes)
    train_x, train_y = generate_split(parsed, "train", 53)
    test_x, test_y = generate_split(parsed, "test", 27)
    again_x, again_y = generate_split(parsed, "train", 53)
    np.testing.assert_array_equal(train_x, again_x)
    np.testing.assert_array_equal(train_y, again_y)
    for labels, n in ((train_y, 53), (test_y, 27)):
        counts = np.bincount(labels, minlength=k)
        assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert split_seed(parsed, "train") != split_seed(parsed, "test")
    assert not digests(train_x) & digests(test_x)
    assert len(digests(train_x)) == 53  # no image repeats within a split either


def test_progress_is_reported_per_chunk(monkeypatch):
    monkeypatch.setattr(synthetic, "CHUNK", 16)
    calls = []
    generate_split(parse_spec("debris:3"), "test", 40, progress=lambda *a: calls.append(a))
    assert calls == [("debris:3 test", 16, 40), ("debris:3 test", 32, 40), ("debris:3 test", 40, 40)]


# --------------------------------------------------------------------------- the Dataset and its cache


@pytest.mark.parametrize(("spec", "classes", "flips"), [("debris:4", 10, False), ("pathfinder:9", 2, True)])
def test_load_data_returns_the_dataset_every_source_returns(small_sizes, spec, classes, flips):
    ds = load_data(spec)
    assert ds.name == spec and ds.num_classes == classes and ds.flip_preserves_labels is flips
    assert ds.train_images.shape == (40, 32, 32) and ds.test_images.shape == (20, 32, 32)
    assert ds.train_labels.dtype == np.int64 and ds.channels == 1 and ds.image_size == 32
    assert not ds.verified and "disjoint seeds" in ds.split
    assert ds.describe()["name"] == spec


def test_the_cache_is_keyed_checked_and_rebuilt_when_damaged(small_sizes, isolated_cache):
    first = load_synthetic("debris:2")
    second = load_synthetic("debris:2")
    assert not first.source.endswith("(cache)") and second.source.endswith("(cache)")
    assert first.checksum == second.checksum
    assert load_synthetic("debris:2", n_train=30).train_images.shape[0] == 30  # sizes are part of the key
    folder = next((isolated_cache / "cnnlstm" / "synthetic").glob("debris-2-*"))
    damaged = folder / "train_images.npy"
    raw = bytearray(damaged.read_bytes())
    raw[-1] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    third = load_synthetic("debris:2")
    assert not third.source.endswith("(cache)") and third.checksum == first.checksum


@pytest.mark.parametrize(("spec", "name", "n_train"), [("pathfinder:6:120", "pathfinder:6:120", 120),
                                                       ("debris:3:1k", "debris:3:1000", 1000)])
def test_a_spec_can_ask_for_more_training_images_under_its_own_name(small_sizes, spec, name, n_train):
    assert parse_spec(spec).name == name and canonical_spec(spec) == name
    ds = load_synthetic(spec, use_cache=False)
    assert ds.name == name and ds.train_images.shape == (n_train, 32, 32)
    counts = np.bincount(ds.train_labels, minlength=ds.num_classes)
    assert counts.max() - counts.min() <= 1
    # the test split is the plain task's own (same seed, same size), so results on both sizes compare
    plain = load_synthetic(name.rsplit(":", 1)[0], use_cache=False)
    np.testing.assert_array_equal(ds.test_images, plain.test_images)
    with pytest.raises(DatasetError, match="names 120 training images"):
        load_synthetic("pathfinder:6:120", n_train=200, use_cache=False)


def test_the_data_command_shows_a_synthetic_task(small_sizes, capsys):
    assert main(["data", "--data", "pathfinder:6"]) == 0
    out = capsys.readouterr().out
    assert "pathfinder:6" in out and "connected" in out and "flips keep the labels" in out
