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


def _image_grid(fig: Figure, n: int, ncols: int):
    """Axes for an n-image grid with ncols columns, ticks off."""
    nrows = max(1, math.ceil(n / ncols))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes:
        ax.set_axis_off()
    return axes
