"""The Fashion-MNIST-C corruptions: shapes, determinism, identities and known values."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlstm.data import corruptions as corr
from cnnlstm.errors import ConfigError

from conftest import synthetic_arrays

NAMES = corr.list_corruptions()
UNGRADED = ("inverse", "flip_h", "flip_v", "turn_left", "turn_right")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return synthetic_arrays(n_train=8, n_test=2)["train_images"]  # (8, 28, 28) uint8, not symmetric


def test_the_fifteen_corruptions_of_fashion_mnist_c():
    assert NAMES == ("shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate",
                     "brightness", "contrast", "saturate", "inverse", "flip_h", "flip_v", "turn_left", "turn_right")
    assert [n for n in NAMES if not corr.severity_applies(n)] == list(UNGRADED)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_shape_dtype_determinism_and_change(images, name, severity):
    a = corr.corrupt(images, name, severity, np.random.default_rng(7))
    b = corr.corrupt(images, name, severity, np.random.default_rng(7))
    assert a.shape == images.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    changed = (a != images).reshape(len(images), -1).any(axis=1)
    assert changed.all(), f"{name} {severity} left {int((~changed).sum())} images unchanged"


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_is_the_identity(images, name):
    out = corr.corrupt(images, name, 0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, images)
    assert out is not images


@pytest.mark.parametrize("name", UNGRADED)
def test_severity_does_not_apply_to_inverse_flips_and_turns(images, name):
    outs = [corr.corrupt(images, name, s, np.random.default_rng(s)) for s in range(1, 6)]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


@pytest.mark.parametrize("fn, param", [
    (corr.rotate, 0.0), (corr.shear, 0.0), (corr.scale, 1.0), (corr.brightness, 0.0),
    (corr.contrast, 1.0), (corr.saturate, (1.0, 0.0)), (corr.motion_blur, (0, 1.0)),
])
def test_parametric_identity_leaves_images_unchanged(images, fn, param):
    x = images.astype(np.float32) / 255.0
    out = fn(x, np.random.default_rng(0), param)
    np.testing.assert_array_equal(np.rint(out * 255).astype(np.uint8), images)


def test_random_corruptions_depend_on_the_seed(images):
    for name in ("shot_noise", "impulse_noise", "glass_blur", "motion_blur", "rotate", "shear"):
        a = corr.corrupt_seeded(images, name, 3, seed=0)
        b = corr.corrupt_seeded(images, name, 3, seed=1)
        assert not np.array_equal(a, b), name


def test_a_cell_does_not_depend_on_the_other_cells(images):
    first = corr.corrupt_seeded(images, "rotate", 2, seed=5)
    corr.corrupt_seeded(images, "shot_noise", 4, seed=5)  # building another cell in between changes nothing
    np.testing.assert_array_equal(corr.corrupt_seeded(images, "rotate", 2, seed=5), first)


def test_known_values(images):
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(corr.corrupt(images, "inverse", 1, rng), 255 - images)
    np.testing.assert_array_equal(corr.corrupt(images, "flip_h", 1, rng), images[:, :, ::-1])
    np.testing.assert_array_equal(corr.corrupt(images, "flip_v", 1, rng), images[:, ::-1, :])
    left = corr.corrupt(images, "turn_left", 1, rng)
    np.testing.assert_array_equal(corr.corrupt(left, "turn_right", 1, rng), images)
    np.testing.assert_array_equal(left[:, 0, :], images[:, :, -1])  # the right column becomes the top row
    black = np.zeros((2, 28, 28), np.uint8)
    assert (corr.corrupt(black, "brightness", 5, rng) == 128).all()  # 0 + 0.5 -> 127.5 -> 128
    flat = np.full((1, 28, 28), 100, np.uint8)
    np.testing.assert_array_equal(corr.corrupt(flat, "contrast", 5, rng), flat)  # no deviation to shrink
    assert corr.corrupt(flat, "saturate", 1, rng)[0, 0, 0] == 30  # 100 * 0.3


def test_scale_shrinks_towards_the_centre():
    square = np.zeros((1, 28, 28), np.uint8)
    square[0, 4:24, 4:24] = 255
    out = corr.corrupt(square, "scale", 5, np.random.default_rng(0))  # half size
    rows = np.flatnonzero(out[0].max(axis=1) > 127)
    assert rows.min() >= 8 and rows.max() <= 19


def test_rotation_keeps_a_centred_disc():
    yy, xx = np.mgrid[:28, :28]
    disc = (((yy - 13.5) ** 2 + (xx - 13.5) ** 2) <= 64).astype(np.uint8)[None] * 255
    out = corr.corrupt(disc, "rotate", 5, np.random.default_rng(0))
    assert np.abs(out.astype(int) - disc).mean() < 6  # only the rim is resampled


def test_motion_kernel_is_imagemagicks():
    k = corr.motion_kernel(10, 3)
    assert k.shape == (21,) and abs(k.sum() - 1) < 1e-12 and (np.diff(k) < 0).all()


def test_motion_blur_of_a_point_smears_it_to_one_side():
    point = np.zeros((1, 28, 28), np.float32)
    point[0, 14, 14] = 1.0
    out = corr.motion_blur(point, np.random.default_rng(0), (10, 3))
    assert abs(out.sum() - 1) < 1e-5  # a point in the middle loses no mass
    # every reading pixel lies on one side of the point (taps step away from it in one direction)
    ys, xs = np.nonzero(out[0] > 1e-6)
    assert ((xs <= 14).all() or (xs >= 14).all())


def test_errors_are_one_line_config_errors(images):
    with pytest.raises(ConfigError, match="unknown corruption 'fog'"):
        corr.corrupt(images, "fog", 1, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="severity"):
        corr.corrupt(images, "rotate", 6, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="from 1 to 5"):
        corr.check_severities([0])
    with pytest.raises(ConfigError):
        corr.check_corruptions(["rotate", "snow"])
    assert corr.check_severities([5, 1, 1]) == (1, 5)
    with pytest.raises(ValueError):
        corr.corrupt(images.astype(np.float32), "rotate", 1, np.random.default_rng(0))


def test_describe_lists_the_parameters():
    rows = corr.describe()
    assert len(rows) == 15
    shot = rows[0]
    assert shot["levels"] == [60, 25, 12, 5, 3] and shot["severity_applies"]
    assert rows[-1]["levels"] is None


@pytest.mark.parametrize("name", ["rotate", "motion_blur", "impulse_noise", "glass_blur"])
def test_colour_channels_share_every_draw(name):
    """An RGB image whose three channels are equal stays so: the channels see the same draws."""
    grey = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    out = corr.corrupt_seeded(rgb, name, 3, seed=1)
    assert out.shape == rgb.shape
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert np.array_equal(out[..., 0], corr.corrupt_seeded(grey, name, 3, seed=1))
