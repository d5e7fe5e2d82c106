"""The canvas every figure is drawn on: an explicit Agg :class:`~matplotlib.figure.Figure`, class colours,
image grids, and the one atomic palette-PNG writer."""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image  # a matplotlib dependency

from cnnlstm.runs import atomic_write

log = logging.getLogger(__name__)

DPI = 110  # dots per inch of every PNG
PALETTE_COLORS = 256  # colours in the PNG palette
EMBED_POINT_SIZE = 2.0  # scatter marker area (points^2) for t-SNE plots


def class_colors(n_classes: int) -> np.ndarray:
    """``(n_classes, 4)`` RGBA colours: colour-blind-aware tab10 up to 10 classes, tab20 up to 20."""
    name = "tab10" if n_classes <= 10 else "tab20"
    cmap = colormaps[name]
    return np.array([cmap(i % cmap.N) for i in range(n_classes)])


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    """Render on the Agg canvas and write an 8-bit palette PNG.

    A 256-colour palette is visually the same for these flat-colour figures and keeps dense
    scatter plots (70,000 points) to a fraction of the size of an RGBA PNG. The file is written
    atomically (:func:`cnnlstm.runs.atomic_write`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    palette = rgb.quantize(colors=PALETTE_COLORS, method=Image.Quantize.MEDIANCUT,
                           dither=Image.Dither.NONE)
    png = io.BytesIO()
    palette.save(png, format="PNG", optimize=True, dpi=(DPI, DPI))
    atomic_write(path, png.getvalue())  # a report read meanwhile never sees half a PNG
    log.debug("wrote %s", path)
    return path


def _image_mosaic(ax, images, ncols: int, *, vmax: float, titles=(), title_lines: int = 0,
                  fontsize: float = 7) -> tuple[int, int]:
    """Tile ``images`` row by row into one picture on ``ax``, each under its title; axes off.

    One ``imshow`` instead of an axes per image: a layout engine sizes one axes in a fraction of
    the time it needs for a grid of 80 (the study's figures are drawn after every run).

    Parameters
    ----------
    ax : matplotlib Axes
    images : array-like
        ``(N, H, W)`` grey (drawn dark on white) or ``(N, H, W, C)`` colour, in ``[0, vmax]``.
    ncols : int
    vmax : float
        The brightest value: 255 for uint8 images, 1 for images in [0, 1].
    titles : sequence of str
        One per image, drawn in a band ``title_lines`` text lines tall above it.
    title_lines : int
    fontsize : float

    Returns
    -------
    (cell_height, cell_width) : tuple of int
        The pixels from one cell's top to the next's (band, image and gap), for labels beside rows.
    """
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    nrows = max(1, math.ceil(n / ncols))
    gap = max(1, h // 14)
    band = math.ceil(title_lines * 0.22 * h)  # a text line per 0.22 of an image's height, at the sizes drawn
    cell_h, cell_w = band + h + gap, w + gap
    colour = images.ndim == 4
    # grey: 0 draws white under gray_r; colour: vmax in every channel is white
    tiles = np.full((nrows * cell_h, ncols * cell_w, *images.shape[3:]), vmax if colour else 0, dtype=images.dtype)
    for i in range(n):
        r, c = divmod(i, ncols)
        tiles[r * cell_h + band:r * cell_h + band + h, c * cell_w:c * cell_w + w] = images[i]
    if colour:
        ax.imshow(tiles if images.dtype == np.uint8 else tiles / vmax, interpolation="nearest")
    else:
        ax.imshow(tiles, cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest")
    for i, title in enumerate(titles):
        r, c = divmod(i, ncols)
        ax.text(c * cell_w + w / 2, r * cell_h + band - 0.5, title, ha="center", va="bottom", fontsize=fontsize)
    ax.set_axis_off()
    return cell_h, cell_w
