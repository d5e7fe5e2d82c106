"""The 15 corruptions of Fashion-MNIST-C, regenerated locally at five severities.

Fashion-MNIST-C (Weiss & Tonella, ISSTA 2022) applies one of 15 corruptions to each test image,
with the corruption code and parameter tables of MNIST-C (Mu & Gilmer 2019). Neither is packaged,
so this module re-implements each corruption with numpy/scipy from its published definition. As in
ImageNet-C, every corruption with a strength is evaluated at all five severities (Fashion-MNIST-C
itself uses one default severity per corruption).

Every public corruption maps ``uint8 (N, H, W)`` to ``uint8 (N, H, W)`` and draws its randomness
from the :class:`numpy.random.Generator` it is given, so the same generator state gives the same
images. Work is vectorised over the batch; pixels are processed in [0, 1] and rounded back to
uint8 at the end (MNIST-C truncates; rounding keeps the identity exact).

Severity 0 means "no corruption" for every corruption (the clean images, returned as a copy).
``inverse``, ``flip_h``, ``flip_v``, ``turn_left`` and ``turn_right`` have no strength: severity
does not apply to them, and any severity from 1 to 5 gives the same images.

Parameters per severity 1..5 (MNIST-C's tables):

=============  ===============================================================================
shot_noise     Poisson photon count per unit intensity ``[60, 25, 12, 5, 3]``
impulse_noise  fraction of salt-and-pepper pixels ``[.03, .06, .09, .17, .27]``
glass_blur     (Gaussian sigma, max pixel swap distance, passes) ``[(.7,1,2), (.9,2,1),
               (1,2,3), (1.1,3,2), (1.5,4,2)]``
motion_blur    (radius, sigma) of ImageMagick's one-sided motion kernel ``[(10,3), (15,5), (15,8),
               (15,12), (20,15)]``, angle uniform in [-45, 45] degrees per image
shear          shear angle in radians ``[.2, .4, .6, .8, 1.0]``, random sign per image
scale          content shrunk to ``[.9, .8, .7, .6, .5]`` of its size about the centre
rotate         rotation in radians ``[.2, .4, .6, .8, 1.0]`` (11 to 57 degrees), random sign
brightness     added to the HSV value ``[.1, .2, .3, .4, .5]``
contrast       deviations from the image mean multiplied by ``[.4, .3, .2, .1, .05]``
saturate       (gain, shift) applied to all three HSV channels ``[(.3,0), (.1,0), (2,0), (5,.1),
               (20,.2)]`` (not monotone in severity; MNIST-C's table)
=============  ===============================================================================
"""

from __future__ import annotations

import colorsys
import copy
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from cnnlstm.errors import ConfigError

log = logging.getLogger(__name__)

SEVERITIES = (1, 2, 3, 4, 5)
LUMA = np.array([0.2125, 0.7154, 0.0721])  # ITU-R 709 weights of scikit-image's rgb2gray

FloatFn = Callable[[np.ndarray, np.random.Generator, Any], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    """One corruption: its group, its per-severity parameters and the function applying them.

    Attributes
    ----------
    name : str
    group : str
        ``noise``, ``blur``, ``geometry``, ``intensity`` or ``flip``.
    fn : callable
        ``fn(x, rng, param) -> x`` on float images in [0, 1] of shape ``(N, H, W)``.
    levels : tuple or None
        The parameter of severities 1..5; None when severity does not apply.
    description : str
    """

    name: str
    group: str
    fn: FloatFn
    levels: tuple | None
    description: str

    @property
    def severity_applies(self) -> bool:
        return self.levels is not None


# --------------------------------------------------------------------------- noise


def shot_noise(x: np.ndarray, rng: np.random.Generator, photons: float) -> np.ndarray:
    """Poisson noise: each pixel becomes ``Poisson(x * photons) / photons``."""
    return rng.poisson(x * photons).astype(np.float32) / np.float32(photons)


def impulse_noise(x: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Salt and pepper: a fraction ``amount`` of pixels set to 0 or 1 with equal odds."""
    hit = rng.random(x.shape) < amount
    salt = rng.random(x.shape) < 0.5
    out = x.copy()
    out[hit & salt] = 1.0
    out[hit & ~salt] = 0.0
    return out


# --------------------------------------------------------------------------- blur


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """Per-image Gaussian blur, edge pixels repeated (scikit-image's ``gaussian`` defaults)."""
    return ndimage.gaussian_filter(x, sigma=(0.0, sigma, sigma), mode="nearest", truncate=4.0)


def glass_blur(x: np.ndarray, rng: np.random.Generator, param: tuple[float, int, int]) -> np.ndarray:
    """Blur, locally shuffle pixels, blur again (the frosted-glass look of ImageNet-C).

    Each pass visits the interior pixels from the bottom-right corner up and, with probability
    1/2, swaps the pixel with one at offset ``(dy, dx)``, each drawn from ``[-delta, delta)``.
    The swaps are sequential within an image (a pixel can move several times), so the loop runs
    over positions and is vectorised over the batch.
    """
    sigma, delta, passes = param
    n, h, w = x.shape
    out = _gaussian(x, sigma)
    batch = np.arange(n)
    for _ in range(passes):
        for r in range(h - delta, delta, -1):
            for c in range(w - delta, delta, -1):
                move = rng.random(n) < 0.5
                dy, dx = rng.integers(-delta, delta, size=(2, n))
                b = batch[move]
                r2, c2 = r + dy[move], c + dx[move]
                here = out[b, r, c].copy()
                out[b, r, c] = out[b, r2, c2]
                out[b, r2, c2] = here
    return _gaussian(out, sigma)


def motion_kernel(radius: float, sigma: float) -> np.ndarray:
    """ImageMagick's motion-blur weights: ``exp(-i^2 / (2 sigma^2))`` for ``i = 0 .. 2*radius``, normalised.

    The kernel is one-sided (the image is smeared in one direction), of width
    ``2 * ceil(radius) + 1`` as ImageMagick's ``GetOptimalKernelWidth1D`` sets it.
    """
    width = int(2 * math.ceil(radius) + 1)
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i**2) / (2.0 * sigma**2))
    return k / k.sum()


def motion_blur(x: np.ndarray, rng: np.random.Generator, param: tuple[float, float]) -> np.ndarray:
    """Motion blur along a random angle in [-45, 45] degrees per image.

    Tap ``i`` of :func:`motion_kernel` reads the pixel ``i`` steps along the angle, rounded to
    the pixel grid (as ImageMagick's ``MotionBlurImage`` does); reads beyond the border repeat
    the edge pixel (ImageMagick's default virtual-pixel method).
    """
    radius, sigma = param
    n, h, w = x.shape
    kernel = motion_kernel(radius, sigma)
    angle = np.deg2rad(rng.uniform(-45.0, 45.0, size=n))
    steps = np.arange(len(kernel))
    # (N, taps) integer offsets along each image's direction
    off_x = np.ceil(steps[None, :] * np.cos(angle)[:, None] - 0.5).astype(np.int64)
    off_y = np.ceil(steps[None, :] * np.sin(angle)[:, None] - 0.5).astype(np.int64)
    batch = np.arange(n)[:, None, None]
    rows, cols = np.arange(h), np.arange(w)
    out = np.zeros_like(x)
    for t, weight in enumerate(kernel):
        rr = np.clip(rows[None, :] + off_y[:, t, None], 0, h - 1)  # (N, H)
        cc = np.clip(cols[None, :] + off_x[:, t, None], 0, w - 1)  # (N, W)
        out += np.float32(weight) * x[batch, rr[:, :, None], cc[:, None, :]]
    return out


# --------------------------------------------------------------------------- geometry


def _affine_about_centre(x: np.ndarray, matrix_xy: np.ndarray) -> np.ndarray:
    """Bilinear warp of every image by one inverse map (output -> input), centre kept fixed.

    ``matrix_xy`` is the 2x2 inverse map in (x = column, y = row) coordinates, as scikit-image's
    ``AffineTransform`` writes it; pixels that map outside the image read black (0).
    """
    (a, b), (c, d) = matrix_xy
    rc = np.array([[d, c], [b, a]])  # the same map in (row, column) order
    h, w = x.shape[1:]
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    matrix = np.eye(3)
    matrix[1:, 1:] = rc
    offset = np.concatenate([[0.0], centre - rc @ centre])
    return ndimage.affine_transform(x, matrix, offset=offset, order=1, mode="grid-constant", cval=0.0)


def _signed_warp(x: np.ndarray, rng: np.random.Generator, make_matrix: Callable[[float], np.ndarray],
                 magnitude: float) -> np.ndarray:
    """Warp each image by ``make_matrix(+magnitude)`` or ``make_matrix(-magnitude)``, sign drawn per image."""
    sign = rng.choice(np.array([-1.0, 1.0]), size=x.shape[0])
    out = np.empty_like(x)
    for s in (-1.0, 1.0):
        pick = sign == s
        if pick.any():
            out[pick] = _affine_about_centre(x[pick], make_matrix(s * magnitude))
    return out


def _shear_matrix(angle: float) -> np.ndarray:
    # scikit-image's AffineTransform(shear=angle) as MNIST-C used it: [[1, -sin], [0, cos]]
    return np.array([[1.0, -math.sin(angle)], [0.0, math.cos(angle)]])


def _rotation_matrix(angle: float) -> np.ndarray:
    return np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])


def shear(x: np.ndarray, rng: np.random.Generator, angle: float) -> np.ndarray:
    """Shear about the image centre by ``angle`` radians, the direction drawn per image."""
    return _signed_warp(x, rng, _shear_matrix, angle)


def rotate(x: np.ndarray, rng: np.random.Generator, angle: float) -> np.ndarray:
    """Rotate about the image centre by ``angle`` radians, clockwise or not drawn per image."""
    return _signed_warp(x, rng, _rotation_matrix, angle)


def scale(x: np.ndarray, rng: np.random.Generator, factor: float) -> np.ndarray:
    """Shrink the content about the centre to ``factor`` of its size (black border around it)."""
    return _affine_about_centre(x, np.eye(2) / factor)


# --------------------------------------------------------------------------- intensity


def brightness(x: np.ndarray, rng: np.random.Generator, shift: float) -> np.ndarray:
    """Add ``shift`` to the HSV value; for a grey image the HSV round trip is just ``x + shift``."""
    return x + np.float32(shift)


def contrast(x: np.ndarray, rng: np.random.Generator, factor: float) -> np.ndarray:
    """Shrink each pixel's deviation from its image's mean by ``factor``."""
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * np.float32(factor) + mean


def saturate(x: np.ndarray, rng: np.random.Generator, param: tuple[float, float]) -> np.ndarray:
    """MNIST-C's saturate: ``hsv * gain + shift`` on all three HSV channels, clipped, back to grey.

    A grey pixel has hue = saturation = 0 and value ``v``, so after the change it has hue and
    saturation ``shift`` and value ``clip(gain * v + shift)``; HSV -> RGB is linear in the value,
    so its grey level (scikit-image's luma weights) is that value times one constant, computed
    here with :func:`colorsys.hsv_to_rgb` rather than converting every pixel.
    """
    gain, shift = param
    tint = min(max(shift, 0.0), 1.0)
    luma = float(LUMA @ np.array(colorsys.hsv_to_rgb(tint, tint, 1.0)))
    return np.clip(x * np.float32(gain) + np.float32(shift), 0.0, 1.0) * np.float32(luma)


def inverse(x: np.ndarray, rng: np.random.Generator, param: None) -> np.ndarray:
    """Photographic negative ``1 - x`` (no strength: severity does not apply)."""
    return 1.0 - x


# --------------------------------------------------------------------------- flips and turns


def flip_h(x: np.ndarray, rng: np.random.Generator, param: None) -> np.ndarray:
    """Mirror left to right (no strength)."""
    return x[:, :, ::-1]


def flip_v(x: np.ndarray, rng: np.random.Generator, param: None) -> np.ndarray:
    """Mirror top to bottom (no strength)."""
    return x[:, ::-1, :]


def turn_left(x: np.ndarray, rng: np.random.Generator, param: None) -> np.ndarray:
    """Turn 90 degrees counter-clockwise (no strength)."""
    return np.rot90(x, k=1, axes=(1, 2))


def turn_right(x: np.ndarray, rng: np.random.Generator, param: None) -> np.ndarray:
    """Turn 90 degrees clockwise (no strength)."""
    return np.rot90(x, k=3, axes=(1, 2))


# --------------------------------------------------------------------------- registry

_CORRUPTIONS = (
    Corruption("shot_noise", "noise", shot_noise, (60, 25, 12, 5, 3), "Poisson (photon) noise"),
    Corruption("impulse_noise", "noise", impulse_noise, (0.03, 0.06, 0.09, 0.17, 0.27),
               "salt-and-pepper noise"),
    Corruption("glass_blur", "blur", glass_blur,
               ((0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
               "blur, local pixel shuffle, blur"),
    Corruption("motion_blur", "blur", motion_blur, ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
               "one-sided motion blur at a random angle"),
    Corruption("shear", "geometry", shear, (0.2, 0.4, 0.6, 0.8, 1.0), "shear about the centre"),
    Corruption("scale", "geometry", scale, (0.9, 0.8, 0.7, 0.6, 0.5), "content shrunk about the centre"),
    Corruption("rotate", "geometry", rotate, (0.2, 0.4, 0.6, 0.8, 1.0), "rotation about the centre"),
    Corruption("brightness", "intensity", brightness, (0.1, 0.2, 0.3, 0.4, 0.5), "brighter"),
    Corruption("contrast", "intensity", contrast, (0.4, 0.3, 0.2, 0.1, 0.05), "lower contrast"),
    Corruption("saturate", "intensity", saturate, ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)),
               "HSV gain and shift"),
    Corruption("inverse", "intensity", inverse, None, "negative image"),
    Corruption("flip_h", "flip", flip_h, None, "mirrored left to right"),
    Corruption("flip_v", "flip", flip_v, None, "mirrored top to bottom"),
    Corruption("turn_left", "flip", turn_left, None, "turned 90 degrees counter-clockwise"),
    Corruption("turn_right", "flip", turn_right, None, "turned 90 degrees clockwise"),
)
CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in _CORRUPTIONS}


def list_corruptions() -> tuple[str, ...]:
    """The corruption names in Fashion-MNIST-C's order (noise, blur, geometry, intensity, flips)."""
    return tuple(CORRUPTIONS)


def severity_applies(name: str) -> bool:
    """Whether ``name`` has a strength (False for inverse, flips and turns)."""
    return get_corruption(name).severity_applies


def get_corruption(name: str) -> Corruption:
    """The :class:`Corruption` called ``name``.

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the valid ones).
    """
    try:
        return CORRUPTIONS[name]
    except KeyError:
        raise ConfigError(f"unknown corruption {name!r}; valid: {', '.join(CORRUPTIONS)}") from None


def check_corruptions(names: Iterable[str]) -> tuple[str, ...]:
    """Validate corruption names (one-line :class:`ConfigError` for an unknown one); keep their order."""
    names = tuple(dict.fromkeys(names))
    for name in names:
        get_corruption(name)
    if not names:
        raise ConfigError("no corruption given")
    return names


def check_severities(severities: Iterable[int]) -> tuple[int, ...]:
    """Validate severities (integers 1..5), sorted without repeats.

    Raises
    ------
    ConfigError
        For a severity outside 1..5 or no severity at all.
    """
    out = []
    for s in severities:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= s <= 5:
            raise ConfigError(f"severity must be an integer from 1 to 5, got {s!r}")
        out.append(int(s))
    if not out:
        raise ConfigError("no severity given")
    return tuple(sorted(set(out)))


def corrupt(images: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply one corruption at one severity.

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W)`` or ``(N, H, W, C)`` uint8 (the turns need square images); colour channels
        share every random draw (see the code).
    name : str
        One of :func:`list_corruptions`.
    severity : int
        0 (no corruption: a copy of ``images``) or 1..5. Ignored, beyond 0, by the corruptions
        whose severity does not apply.
    rng : numpy.random.Generator
        All randomness is drawn from it: the same state gives the same images.

    Returns
    -------
    np.ndarray
        ``(N, H, W)`` uint8.

    Raises
    ------
    ConfigError
        Unknown corruption or severity outside 0..5.
    """
    spec = get_corruption(name)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 0 <= severity <= 5:
        raise ConfigError(f"severity must be an integer from 0 to 5, got {severity!r}")
    images = np.asarray(images)
    if images.ndim not in (3, 4) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W) or (N, H, W, C), got {images.dtype} {images.shape}")
    if severity == 0 or images.shape[0] == 0:
        return images.copy()
    param = spec.levels[severity - 1] if spec.levels is not None else None
    x = images.astype(np.float32) / np.float32(255.0)
    if x.ndim == 4:
        # Colour: each channel through the same function with a copy of the same generator, so every
        # per-image draw (a rotation's sign, a blur's angle, which pixels get noise) is shared and
        # the channels stay aligned; noise is then the same in the three channels (luminance noise).
        out = np.stack([spec.fn(x[..., c], copy.deepcopy(rng), param) for c in range(x.shape[-1])], axis=-1)
    else:
        out = spec.fn(x, rng, param)
    return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def corruption_rng(seed: int, name: str, severity: int) -> np.random.Generator:
    """The generator of one (corruption, severity) cell: a function of the three alone.

    So one cell's images do not depend on which other cells are built, or in what order.
    """
    index = list(CORRUPTIONS).index(get_corruption(name).name)
    return np.random.default_rng([int(seed), index, int(severity)])


def corrupt_seeded(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """:func:`corrupt` with the generator :func:`corruption_rng` gives for ``(seed, name, severity)``."""
    return corrupt(images, name, severity, corruption_rng(seed, name, severity))


def level_label(name: str, severity: int) -> str:
    """``"rotate 3"`` or, where severity does not apply, just ``"inverse"``."""
    return f"{name} {severity}" if severity_applies(name) else name


def describe(names: Sequence[str] | None = None) -> list[dict]:
    """Name, group, description and per-severity parameters of each corruption, JSON-ready."""
    out = []
    for name in names or list_corruptions():
        spec = get_corruption(name)
        out.append({"name": spec.name, "group": spec.group, "description": spec.description,
                    "severity_applies": spec.severity_applies,
                    "levels": None if spec.levels is None else [list(p) if isinstance(p, tuple) else p
                                                                for p in spec.levels]})
    return out
