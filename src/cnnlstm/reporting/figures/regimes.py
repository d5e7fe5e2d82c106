"""The regime study's figures: the map of Δ over size x width, and accuracy against occlusion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm

from cnnlstm.reporting.figures.canvas import _figure, _save


def plot_regime_map(panels: Sequence[Mapping], path) -> Path:
    """One heat map per pair: Δ (hybrid − control, points) per cell with its 95% interval printed.

    ``panels``: ``{"title": str, "rows": [size labels], "cols": [width labels], "cells":
    {(row, col): {"diff": float, "low": float or None, "high": float or None, "claimed": bool}}}``. A
    cell whose difference is claimed (it survives its family's correction) gets a black frame and a
    star; an empty cell reads "not run".
    """
    widths = [max(2.4, 1.5 * len(p["cols"]) + 0.9) for p in panels] or [3.0]
    fig = _figure(sum(widths) + 0.8, 0.9 + 0.85 * max((len(p["rows"]) for p in panels), default=1))
    axes = fig.subplots(1, max(1, len(panels)), gridspec_kw={"width_ratios": widths}, squeeze=False)[0]
    values = [c["diff"] for p in panels for c in p["cells"].values()]
    span = max([abs(v) for v in values] + [0.5])
    norm = TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span)
    cmap = colormaps["RdBu"]
    image = None
    for ax, panel in zip(axes, panels):
        grid = np.full((len(panel["rows"]), len(panel["cols"])), np.nan)
        for (r, c), cell in panel["cells"].items():
            grid[r, c] = cell["diff"]
        image = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto")
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                cell = panel["cells"].get((r, c))
                if cell is None:
                    ax.text(c, r, "not run", ha="center", va="center", fontsize=7, color="#666666")
                    continue
                excludes = cell["claimed"]
                ci = "no interval" if cell["low"] is None else f"[{cell['low']:+.2f}, {cell['high']:+.2f}]"
                dark = abs(cell["diff"]) > 0.6 * span  # white text on the deep ends of the colour scale
                ax.text(c, r, f"{cell['diff']:+.2f}{' *' if excludes else ''}\n{ci}", ha="center", va="center",
                        fontsize=7.5, fontweight="bold" if excludes else "normal",
                        color="white" if dark else "black")
                if excludes:
                    ax.add_patch(_frame(fig, c, r))
        ax.set_xticks(range(len(panel["cols"])), panel["cols"])
        ax.set_yticks(range(len(panel["rows"])), panel["rows"])
        ax.set_xlabel("stem width (channels)")
        ax.set_ylabel("training images")
        ax.set_title(panel["title"], fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="Δ test accuracy, points", shrink=0.9)
    return _save(fig, path)


def _frame(fig, col: int, row: int):
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.0)


def plot_occlusion(panels: Sequence[Mapping], path) -> Path:
    """Accuracy against test-time occlusion (top) and translation (bottom), hybrid and control.

    ``panels``: ``{"title": str, "hybrid": name, "control": name, "erase": {level: {"hybrid":
    (mean, std), "control": (mean, std)}}, "shift": {...}}`` with accuracies as fractions; the band
    is ± one sample std over seeds.
    """
    n = max(1, len(panels))
    fig = _figure(3.2 * n + 0.4, 5.6)
    axes = fig.subplots(2, n, squeeze=False)
    for col, panel in enumerate(panels):
        for row, (kind, xlabel) in enumerate((("erase", "fraction of the image erased"),
                                              ("shift", "translation (px)"))):
            ax = axes[row, col]
            levels = sorted(panel[kind], key=float)
            x = np.array([float(v) for v in levels])
            for side, color in (("hybrid", "#2166ac"), ("control", "#b2182b")):
                mean = np.array([100 * panel[kind][v][side][0] for v in levels])
                std = np.array([100 * (panel[kind][v][side][1] or 0.0) for v in levels])
                ax.plot(x, mean, "o-", color=color, label=panel[side], markersize=4)
                ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(panel["title"], fontsize=9)
                ax.legend(fontsize=7)
    return _save(fig, path)
