"""Test-time occlusion and translation: the regime study's "does recurrence read past a hidden part?".

Both act on uint8 images ``(N, H, W)`` or ``(N, H, W, C)`` and fill with black (0), the colour of
Fashion-MNIST's background, so a hidden part looks like missing cloth rather than a new texture:

- :func:`occlude` blacks out one square of ``fraction`` of the image area per image, at a
  position drawn uniformly among those where it fits (Spoerer et al. 2017 occluded digits the
  same way, with black blobs);
- :func:`translate` moves each image ``pixels`` pixels left, right, up or down (one direction
  drawn per image), the edge that comes in black.

Level 0 returns the images unchanged, so accuracy at 0 equals the clean accuracy exactly. Every
draw comes from the ``rng`` passed in: with :func:`level_rng`, the same ``(seed, kind, level)``
gives every model the same perturbed images.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlstm.errors import ConfigError

__all__ = ["KINDS", "level_rng", "occlude", "perturb", "translate"]

KINDS = ("erase", "shift")


def level_rng(seed: int, kind: str, level: float) -> np.random.Generator:
    """The generator of one ``(kind, level)`` cell: independent of every other cell and of order."""
    return np.random.default_rng([seed, KINDS.index(kind), int(round(level * 1000))])


def occlude(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Each image with one black square covering ``fraction`` of its area (side rounded).

    Raises
    ------
    ConfigError
        ``fraction`` outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"an occlusion fraction must be in [0, 1), got {fraction}")
    out = images.copy()
    if fraction == 0.0:
        return out
    h, w = images.shape[1:3]
    side = max(1, round(math.sqrt(fraction * h * w)))
    tops = rng.integers(0, h - side + 1, size=len(images))
    lefts = rng.integers(0, w - side + 1, size=len(images))
    for i, (top, left) in enumerate(zip(tops, lefts)):
        out[i, top:top + side, left:left + side] = 0
    return out


def translate(images: np.ndarray, pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved ``pixels`` px in one of the four axis directions, the uncovered edge black.

    Raises
    ------
    ConfigError
        ``pixels`` negative or not smaller than the image.
    """
    h, w = images.shape[1:3]
    if not 0 <= pixels < min(h, w):
        raise ConfigError(f"a translation must be 0 to {min(h, w) - 1} px, got {pixels}")
    if pixels == 0:
        return images.copy()
    out = np.zeros_like(images)
    p = pixels
    directions = rng.integers(0, 4, size=len(images))
    right, left, down, up = (np.flatnonzero(directions == d) for d in range(4))
    out[right, :, p:] = images[right, :, :-p]
    out[left, :, :-p] = images[left, :, p:]
    out[down, p:] = images[down, :-p]
    out[up, :-p] = images[up, p:]
    return out


def perturb(images: np.ndarray, kind: str, level: float, seed: int) -> np.ndarray:
    """``occlude`` (kind ``"erase"``, level = fraction) or ``translate`` (``"shift"``, level = px),
    seeded by :func:`level_rng`."""
    rng = level_rng(seed, kind, level)
    if kind == "erase":
        return occlude(images, float(level), rng)
    if kind == "shift":
        return translate(images, int(level), rng)
    raise ConfigError(f"unknown perturbation {kind!r}; valid: {', '.join(KINDS)}")
