"""Digit debris (Spoerer, McClure & Kriegeskorte 2017): a digit under fragments cut from digits.

How an image is made, following the digit-debris generator of ``cjspoerer/digitclutter``
(``generate.make_debris`` and ``add_debris``) with Pillow in place of ImageMagick:

1. **The target.** One digit, black face with a thin white edge, on a mid-grey background (119),
   rendered at 4x and box-averaged to 32x32. Its em size is 0.75 of the image side, as the source's
   font size 384 on its 512-pixel canvas. Its centre is offset by a uniform draw of
   ``x in [-0.29, 0.29]`` and ``y in [-0.114, 0.266]`` of the side (the source's offsets), on a
   quarter-pixel grid. Its size is scaled by one of :data:`SCALES` (the source's default draws no
   scale jitter; here a small one is added).
2. **The debris.** ``fragments`` square crops, each ``6..9`` pixels a side, cut from the ten digits
   rendered the same way at 32x32 (trimmed to their ink), the digit, crop and place drawn
   uniformly; each fragment is pasted where its own ink is, over the target and over earlier
   fragments. The source's default is 50 fragments ("digit debris"); its "light debris" uses 10.
   A fragment's digit is drawn from all ten, so it may be of the target's class, as in the source.

The font is DejaVu Sans Bold from Debian's ``fonts-dejavu-core`` when present (the source used
Helvetica Bold), else DejaVu Sans, else Pillow's own ``ImageFont.load_default(size)`` (Aileron
Regular, which needs Pillow >= 10.1 built with FreeType). The font changes the images, so it is
part of the dataset's identity: :func:`font_identity` names it and its SHA-256.

Everything random is drawn from a :class:`numpy.random.Generator` passed in; the digit's draws
come before the fragments', so the same generator state gives the same digit whatever the
fragment count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cnnlstm.errors import DatasetError

__all__ = ["BACKGROUND", "DEFAULT_FRAGMENTS", "DebrisLayout", "FONT_PATHS", "FRAGMENT_SIDES", "SCALES",
           "SIDE", "font_identity", "render_debris"]

SIDE = 32  # output images are SIDE x SIDE grey
SUPERSAMPLE = 4  # rendered at 4x, then box-averaged: the source rendered at 512 and scaled to 32
BACKGROUND = 119  # the source's grey, rgba(119, 119, 119)
EM_FRACTION = 0.75  # font size / image side (the source: 384 / 512)
STROKE = 3  # white edge width at 4x: 0.75 px at 32x32 (the source: 20 of 512 px, half of it outside)
X_OFFSET = (-0.29, 0.29)  # digit centre offset, fraction of the side (the source's defaults)
Y_OFFSET = (0.076 - 0.19, 0.076 + 0.19)
SCALES = (0.8, 0.85, 0.9, 0.95, 1.0)  # digit size jitter, one drawn per image
FRAGMENT_SIDES = (6, 9)  # fragment side in pixels, inclusive (the source's debris_size)
DEFAULT_FRAGMENTS = 50  # the source's n_debris default
FONT_PATHS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
              "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
_MAX_FRAG = FRAGMENT_SIDES[1]
_PAD = 48  # margin of a glyph canvas at 4x, beyond the largest offset (0.29 * 128 = 37 px)


@dataclass(frozen=True)
class DebrisLayout:
    """What :func:`render_debris` drew, per image.

    Attributes
    ----------
    scale : np.ndarray
        ``(N,)`` the digit's size factor, one of :data:`SCALES`.
    offset : np.ndarray
        ``(N, 2)`` the digit centre's offset from the image centre in pixels, ``(y, x)``.
    fragments : np.ndarray
        ``(N, F, 3)`` int: each fragment's top row, left column and side, in pixels.
    """

    scale: np.ndarray
    offset: np.ndarray
    fragments: np.ndarray


def _font_file() -> str | None:
    return next((p for p in FONT_PATHS if Path(p).is_file()), None)


def font_identity() -> str:
    """``"DejaVuSans-Bold.ttf sha256:1a2b..."`` (or Pillow's default font and version): what a cache key needs."""
    path = _font_file()
    if path is None:
        import PIL

        return f"Pillow {PIL.__version__} load_default"
    return f"{Path(path).name} sha256:{hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]}"


def _font(size: int):
    from PIL import ImageFont

    path = _font_file()
    if path is not None:
        return ImageFont.truetype(path, size)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError as exc:  # Pillow < 10.1 has no sized default font
        raise DatasetError("the debris task needs fonts-dejavu-core (apt-get install fonts-dejavu-core) "
                           "or Pillow >= 10.1 with FreeType") from exc
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise DatasetError("the debris task needs fonts-dejavu-core (apt-get install fonts-dejavu-core) "
                           "or a Pillow built with FreeType")
    return font


def _glyph(digit: int, size: int, canvas: int, *, mask: bool) -> np.ndarray:
    """One digit drawn at 4x on a ``canvas``-square, its ink box centred: the image, or its ink mask."""
    from PIL import Image, ImageDraw

    font = _font(size)
    text = str(digit)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(
        (0, 0), text, font=font, stroke_width=STROKE)
    origin = (canvas / 2 - (left + right) / 2, canvas / 2 - (top + bottom) / 2)
    img = Image.new("L", (canvas, canvas), 0 if mask else BACKGROUND)
    face, edge = (255, 255) if mask else (0, 255)
    ImageDraw.Draw(img).text(origin, text, font=font, fill=face, stroke_width=STROKE, stroke_fill=edge)
    return np.asarray(img, dtype=np.uint8)


def _box_down(images: np.ndarray) -> np.ndarray:
    """``(N, 4S, 4S)`` uint8 -> ``(N, S, S)`` uint8: the mean of each 4x4 block, rounded."""
    n, h, w = images.shape
    blocks = images.reshape(n, h // SUPERSAMPLE, SUPERSAMPLE, w // SUPERSAMPLE, SUPERSAMPLE)
    sums = blocks.sum(axis=(2, 4), dtype=np.int32)
    return ((sums + SUPERSAMPLE ** 2 // 2) // SUPERSAMPLE ** 2).astype(np.uint8)


@lru_cache(maxsize=2)
def _targets(font_id: str) -> np.ndarray:
    """``(len(SCALES), 10, C, C)`` uint8 at 4x: every digit at every scale, centred on a padded canvas.

    ``font_id`` keys the cache (a font installed mid-process draws anew).
    """
    canvas = SIDE * SUPERSAMPLE + 2 * _PAD
    em = EM_FRACTION * SIDE * SUPERSAMPLE
    glyphs = np.stack([np.stack([_glyph(d, round(em * s), canvas, mask=False) for d in range(10)])
                       for s in SCALES])
    glyphs.setflags(write=False)  # shared by every call through the cache
    return glyphs


@lru_cache(maxsize=2)
def _fragment_sources(font_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ten digits at 32x32 trimmed to their ink, as fragments are cut from them.

    Returns ``values (10, Hm + 9, Wm + 9)`` uint8, ``ink (10, Hm + 9, Wm + 9)`` bool (False in the
    padding beyond each digit, so a 9x9 window never reads another digit's pixels) and
    ``shape (10, 2)`` (each trimmed digit's height and width).
    """
    canvas = SIDE * SUPERSAMPLE
    em = round(EM_FRACTION * canvas)
    values = _box_down(np.stack([_glyph(d, em, canvas, mask=False) for d in range(10)]))
    ink = _box_down(np.stack([_glyph(d, em, canvas, mask=True) for d in range(10)])) >= 128
    boxes = []
    for m in ink:
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        boxes.append((rows[0], rows[-1] + 1, cols[0], cols[-1] + 1))
    shape = np.array([(b - a, d - c) for a, b, c, d in boxes])
    hm, wm = shape.max(axis=0)
    out_v = np.zeros((10, hm + _MAX_FRAG, wm + _MAX_FRAG), np.uint8)
    out_m = np.zeros((10, hm + _MAX_FRAG, wm + _MAX_FRAG), bool)
    for d, (a, b, c, e) in enumerate(boxes):
        out_v[d, : b - a, : e - c] = values[d, a:b, c:e]
        out_m[d, : b - a, : e - c] = ink[d, a:b, c:e]
    for arr in (out_v, out_m, shape):  # shared by every call through the cache
        arr.setflags(write=False)
    return out_v, out_m, shape


def _draw_targets(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clean digits ``(N, 32, 32)``, their scales ``(N,)`` and offsets ``(N, 2)`` in pixels."""
    n = len(labels)
    scale_idx = rng.integers(0, len(SCALES), n)
    big = SIDE * SUPERSAMPLE
    # offsets on the 4x grid: quarter-pixel positions at 32x32
    dy = np.round(rng.uniform(*Y_OFFSET, n) * big).astype(int)
    dx = np.round(rng.uniform(*X_OFFSET, n) * big).astype(int)
    glyphs = _targets(font_identity())
    crops = np.empty((n, big, big), np.uint8)
    for i in range(n):  # a slice per image: the centred glyph read from a shifted window
        top, left = _PAD - dy[i], _PAD - dx[i]
        crops[i] = glyphs[scale_idx[i], labels[i], top:top + big, left:left + big]
    offset = np.stack([dy, dx], axis=1) / SUPERSAMPLE
    return _box_down(crops), np.asarray(SCALES)[scale_idx], offset


def _draw_fragments(canvas: np.ndarray, fragments: int, rng: np.random.Generator) -> np.ndarray:
    """Paste ``fragments`` fragments on each image of ``canvas`` (in place); returns ``(N, F, 3)`` boxes."""
    n = len(canvas)
    values, ink, shape = _fragment_sources(font_identity())
    side = rng.integers(FRAGMENT_SIDES[0], FRAGMENT_SIDES[1] + 1, (n, fragments))
    digit = rng.integers(0, 10, (n, fragments))
    # crop corners inside the trimmed digit, as the source's randint(shape - side)
    crop_y = rng.integers(0, np.maximum(shape[digit, 0] - side, 1))
    crop_x = rng.integers(0, np.maximum(shape[digit, 1] - side, 1))
    top = rng.integers(0, SIDE - side)
    left = rng.integers(0, SIDE - side)
    padded = np.zeros((n, SIDE + _MAX_FRAG, SIDE + _MAX_FRAG), np.uint8)
    padded[:, :SIDE, :SIDE] = canvas
    win = np.arange(_MAX_FRAG)
    rows_all = np.arange(n)[:, None, None]
    for j in range(fragments):  # one fragment per image at a time, all images at once
        d = digit[:, j, None, None]
        sy = (crop_y[:, j, None] + win)[:, :, None]  # (N, 9, 1) source rows
        sx = (crop_x[:, j, None] + win)[:, None, :]  # (N, 1, 9) source columns
        inside = (win[None, :, None] < side[:, j, None, None]) & (win[None, None, :] < side[:, j, None, None])
        keep = ink[d, sy, sx] & inside  # (N, 9, 9): the fragment's own ink only
        ty = (top[:, j, None] + win)[:, :, None]
        tx = (left[:, j, None] + win)[:, None, :]
        padded[rows_all, ty, tx] = np.where(keep, values[d, sy, sx], padded[rows_all, ty, tx])
    canvas[:] = padded[:, :SIDE, :SIDE]
    return np.stack([top, left, side], axis=-1)


def render_debris(labels: np.ndarray, fragments: int, rng: np.random.Generator) -> tuple[np.ndarray, DebrisLayout]:
    """Digit-debris images of the given digits.

    Parameters
    ----------
    labels : np.ndarray
        ``(N,)`` ints in ``0..9``: the digit each image shows.
    fragments : int
        Fragments pasted over each digit (0 gives the clean digits).
    rng : numpy.random.Generator
        All randomness; the digits' draws come first, then the fragments'.

    Returns
    -------
    images : np.ndarray
        ``(N, 32, 32)`` uint8, grey.
    layout : DebrisLayout
        The scale and offset of each digit and the box of each fragment.

    Examples
    --------
    >>> images, layout = render_debris(np.arange(10), 50, np.random.default_rng(0))
    >>> images.shape, layout.fragments.shape
    ((10, 32, 32), (10, 50, 3))
    """
    labels = np.asarray(labels, dtype=np.int64)
    images, scale, offset = _draw_targets(labels, rng)
    boxes = _draw_fragments(images, int(fragments), rng)
    return images, DebrisLayout(scale=scale, offset=offset, fragments=boxes)
