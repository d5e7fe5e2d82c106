"""Figures of a dataset and of embeddings: class balance, pixel box plots, sample grids, mean images,
t-SNE scatter plots."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from cnnlstm.reporting.figures.canvas import EMBED_POINT_SIZE, _figure, _image_mosaic, _save, class_colors


def plot_class_distribution(train_counts, test_counts, class_names: Sequence[str], path) -> Path:
    """Grouped bars of examples per class in the train and test splits.

    Parameters
    ----------
    train_counts, test_counts : array-like of int, shape (C,)
    class_names : sequence of str
    path : str or Path

    Returns
    -------
    Path
    """
    x = np.arange(len(class_names))
    fig = _figure(8.0, 4.0)
    ax = fig.add_subplot()
    colors = class_colors(2)
    for offset, counts, name, color in ((-0.2, train_counts, "train", colors[0]),
                                        (0.2, test_counts, "test", colors[1])):
        bars = ax.bar(x + offset, np.asarray(counts), width=0.4, label=name, color=color)
        ax.bar_label(bars, fontsize=6, padding=1)
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    ax.set_ylabel("examples")
    ax.set_title("Examples per class")
    ax.legend()
    return _save(fig, path)


def plot_boxplots(values, labels, class_names: Sequence[str], path, title: str,
                  ylabel: str) -> Path:
    """One box per class of a per-image value (the plan's Fig. 2 means, Fig. 3 variances).

    Parameters
    ----------
    values : array-like, shape (N,)
        e.g. per-image pixel means from :func:`cnnlstm.data.dataset_stats.per_image_stats`.
    labels : array-like of int, shape (N,)
    class_names : sequence of str
    path : str or Path
    title, ylabel : str

    Returns
    -------
    Path
    """
    values, labels = np.asarray(values).ravel(), np.asarray(labels).ravel()
    groups = [values[labels == c] for c in range(len(class_names))]
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    box = ax.boxplot(groups, patch_artist=True, widths=0.6,
                     flierprops={"markersize": 1.5, "alpha": 0.3, "rasterized": True},
                     medianprops={"color": "black"})
    for patch, color in zip(box["boxes"], class_colors(len(class_names))):
        patch.set_facecolor(color)
        patch.set_alpha(0.7)
    ax.set_xticks(range(1, len(class_names) + 1), class_names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_sample_grid(images, labels, class_names: Sequence[str], path, per_class: int = 8) -> Path:
    """One row per class showing its first ``per_class`` images in the given order.

    Pass ``images[idx], labels[idx]`` with ``idx`` from
    :func:`cnnlstm.data.dataset_stats.sample_indices_per_class` for a random sample.

    Returns
    -------
    Path
    """
    labels = np.asarray(labels).ravel()
    n = len(class_names)
    fig = _figure(0.9 * per_class + 1.4, 0.95 * n + 0.5)
    ax = fig.add_subplot()
    images = np.asarray(images)
    rows = []  # class c's first per_class images in row c, blank where it has fewer
    for c in range(n):
        members = np.flatnonzero(labels == c)[:per_class]
        row = np.zeros((per_class, *images.shape[1:]), dtype=images.dtype)
        if images.ndim == 4:
            row[:] = 255 if images.dtype == np.uint8 else 1
        row[:len(members)] = images[members]
        rows.append(row)
    cell_h, _ = _image_mosaic(ax, np.concatenate(rows), per_class,
                              vmax=255 if images.dtype == np.uint8 else 1)
    for c in range(n):
        ax.text(-2, c * cell_h + images.shape[1] / 2, class_names[c], ha="right", va="center", fontsize=8)
    fig.suptitle("Sample images per class")
    return _save(fig, path)


def plot_mean_images(mean_images, class_names: Sequence[str], path) -> Path:
    """The average image of each class (``cnnlstm.data.dataset_stats.class_mean_images``, [0, 1] units).

    Returns
    -------
    Path
    """
    n = len(class_names)
    ncols = min(5, n)
    fig = _figure(1.8 * ncols, 2.2 * math.ceil(n / ncols) + 0.5)
    _image_mosaic(fig.add_subplot(), np.asarray(mean_images)[:n], ncols, vmax=1, titles=list(class_names),
                  title_lines=1, fontsize=9)
    fig.suptitle("Mean image per class")
    return _save(fig, path)


def _scatter_classes(ax, embedding, labels, n_classes: int) -> None:
    """Scatter coloured by class, drawn in a fixed shuffled order so no class hides the rest."""
    embedding, labels = np.asarray(embedding), np.asarray(labels).astype(np.int64).ravel()
    order = np.random.default_rng(0).permutation(len(labels))  # drawing order only
    colors = class_colors(n_classes)
    ax.scatter(embedding[order, 0], embedding[order, 1], c=colors[labels[order]],
               s=EMBED_POINT_SIZE, linewidths=0, rasterized=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")


def _class_legend(class_names: Sequence[str]) -> list[Line2D]:
    colors = class_colors(len(class_names))
    return [Line2D([], [], ls="", marker="o", ms=6, color=colors[c], label=name)
            for c, name in enumerate(class_names)]


def plot_embedding(embedding, labels, class_names: Sequence[str], path, title: str) -> Path:
    """2-D embedding coloured by class, with a class legend (the plan's Fig. 4).

    Parameters
    ----------
    embedding : np.ndarray, shape (N, 2)
    labels : array-like of int, shape (N,)
    class_names : sequence of str
    path : str or Path
    title : str

    Returns
    -------
    Path
    """
    fig = _figure(7.6, 6.0)
    ax = fig.add_subplot()
    _scatter_classes(ax, embedding, labels, len(class_names))
    ax.set_title(title)
    fig.legend(handles=_class_legend(class_names), loc="outside right center", fontsize=8)
    return _save(fig, path)


def format_quality(metrics: Mapping | None) -> str:
    """One line of embedding-quality numbers (``embed.embedding_quality`` output or its block)."""
    if not metrics:
        return ""
    block = metrics.get("embedding", metrics)
    names = (("knn1", "1-NN"), ("knn10", "10-NN"), ("trustworthiness", "trust"),
             ("spearman", "Spearman"))
    return "  ".join(f"{label} {block[k]:.3f}" for k, label in names if block.get(k) is not None)


def plot_embeddings_side_by_side(panels: Sequence, class_names: Sequence[str], path) -> Path:
    """Several embeddings (e.g. raw pixels vs each model's features) in one figure.

    Parameters
    ----------
    panels : sequence of (embedding, labels, title, metrics_dict or None)
        ``metrics_dict`` is shown under the title via :func:`format_quality`.
    class_names : sequence of str
    path : str or Path

    Returns
    -------
    Path
    """
    if not panels:
        raise ValueError("need at least one embedding panel")
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(4.6 * ncols + 1.6, 4.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (embedding, labels, title, metrics) in zip(axes, panels):
        _scatter_classes(ax, embedding, labels, len(class_names))
        quality = format_quality(metrics)
        ax.set_title(title + (f"\n{quality}" if quality else ""), fontsize=9)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.legend(handles=_class_legend(class_names), loc="outside right center", fontsize=8)
    return _save(fig, path)


# --------------------------------------------------------------------------- sweeps
