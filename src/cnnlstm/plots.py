"""Matplotlib figures from arrays: each function takes arrays and an output path, writes one PNG
and returns its path. No statistics are computed here beyond what a figure needs to draw.

Figures are built with :class:`matplotlib.figure.Figure` on an explicit Agg canvas, so this
module never touches pyplot's global state or the process-wide backend: it is safe to import
next to interactive matplotlib users and in headless workers. PNGs are written as 8-bit
palette images (mode ``"P"``) at :data:`DPI` dots per inch.

Why one module of this size: it is a flat list of independent figure functions (one per
figure the commands draw) sharing one canvas helper and one atomic saver; splitting it by
command would separate figures that share axes styles and the saver for no gain.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
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


def plot_confusion_matrix(cm, class_names: Sequence[str], path, normalize: bool = False) -> Path:
    """Confusion matrix heat map (rows true, columns predicted) with the value in each cell.

    Parameters
    ----------
    cm : array-like, shape (C, C)
        Counts, rows true labels, columns predictions (``metrics.json``'s ``confusion_matrix``).
    class_names : sequence of str
    path : str or Path
        Output PNG.
    normalize : bool, default False
        Show each row as fractions of its true class (recall on the diagonal).

    Returns
    -------
    Path
    """
    cm = np.asarray(cm, dtype=np.float64)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    fig = _figure(1.6 + 0.62 * n, 1.2 + 0.55 * n)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class" if normalize else "count")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > threshold else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""))
    return _save(fig, path)


def plot_roc(labels, probs, class_names: Sequence[str], path, classes=None) -> Path:
    """One-vs-rest ROC curves with their AUC (the plan's Fig. 6 shows the worst class).

    Parameters
    ----------
    labels : array-like of int, shape (N,)
    probs : array-like, shape (N, C)
    class_names : sequence of str
    path : str or Path
    classes : int or sequence of int, optional
        The classes to draw; None draws every class.

    Returns
    -------
    Path
    """
    from cnnlstm.evaluate import roc_curve_for_class  # lazy: keeps torch out of `import plots`

    probs = np.asarray(probs)
    if classes is None:
        classes = range(probs.shape[1])
    elif np.isscalar(classes):
        classes = [int(classes)]
    classes = list(classes)
    colors = class_colors(len(class_names))
    fig = _figure(5.6, 5.0)
    ax = fig.add_subplot()
    for c in classes:
        fpr, tpr, auc = roc_curve_for_class(labels, probs, c)
        auc_text = "n/a" if auc is None else f"{auc:.4f}"
        ax.plot(fpr, tpr, color=colors[c], lw=1.6, label=f"{class_names[c]} (AUC {auc_text})")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    title = f"ROC: {class_names[classes[0]]} vs rest" if len(classes) == 1 else "ROC, one-vs-rest"
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _history_columns(history) -> dict[str, np.ndarray]:
    """Rows (list of dicts, e.g. from csv.DictReader) or a dict of lists -> float columns."""
    if isinstance(history, Mapping):
        cols = {k: list(v) for k, v in history.items()}
    else:
        keys = list(dict.fromkeys(k for row in history for k in row))
        cols = {k: [row.get(k) for row in history] for k in keys}

    def to_float(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan

    return {k: np.array([to_float(v) for v in vals]) for k, vals in cols.items()}


def _plot_pair(ax, x, cols, keys, ylabel):
    for key, style in zip(keys, ("-o", "--s")):
        if key in cols and np.isfinite(cols[key]).any():
            ax.plot(x, cols[key], style, ms=3, label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)


def plot_history(history, path) -> Path:
    """Training curves: loss, accuracy and learning rate per epoch.

    Parameters
    ----------
    history : list of dict or dict of lists
        ``history.csv`` columns ``epoch, train_loss, train_acc, val_loss, val_acc, lr``; any
        missing column is skipped, non-numeric values are drawn as gaps.
    path : str or Path

    Returns
    -------
    Path
    """
    cols = _history_columns(history)
    n = max((len(v) for v in cols.values()), default=0)
    x = cols.get("epoch", np.arange(1, n + 1, dtype=np.float64))
    fig = _figure(12.0, 3.6)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    _plot_pair(ax_loss, x, cols, ("train_loss", "val_loss"), "loss")
    ax_loss.set_title("Loss")
    _plot_pair(ax_acc, x, cols, ("train_acc", "val_acc"), "accuracy")
    ax_acc.set_title("Accuracy")
    _plot_pair(ax_lr, x, cols, ("lr",), "learning rate")
    ax_lr.set_title("Learning rate")
    return _save(fig, path)


def _image_grid(fig: Figure, n: int, ncols: int):
    """Axes for an n-image grid with ncols columns, ticks off."""
    nrows = max(1, math.ceil(n / ncols))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes:
        ax.set_axis_off()
    return axes


def plot_misclassified(images, labels, preds, class_names: Sequence[str], path,
                       max_images: int = 36) -> Path:
    """Grid of the first ``max_images`` misclassified images, titled ``true -> predicted``.

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W)`` uint8 (the un-normalised test images).
    labels, preds : array-like of int, shape (N,)
    class_names : sequence of str
    path : str or Path
    max_images : int, default 36

    Returns
    -------
    Path
    """
    labels, preds = np.asarray(labels).ravel(), np.asarray(preds).ravel()
    wrong = np.flatnonzero(labels != preds)[:max_images]
    ncols = max(1, min(6, len(wrong)))
    nrows = max(1, math.ceil(len(wrong) / ncols))
    fig = _figure(1.7 * ncols + 0.4, 1.8 * nrows + 0.5)
    axes = _image_grid(fig, max(1, len(wrong)), ncols)
    for ax, i in zip(axes, wrong):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"{class_names[labels[i]]}\n-> {class_names[preds[i]]}", fontsize=7)
    if len(wrong) == 0:
        axes[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    total = int((labels != preds).sum())
    fig.suptitle(f"Misclassified test images (true -> predicted), {len(wrong)} of {total}")
    return _save(fig, path)


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
        e.g. per-image pixel means from :func:`cnnlstm.dataset_stats.per_image_stats`.
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
    :func:`cnnlstm.dataset_stats.sample_indices_per_class` for a random sample.

    Returns
    -------
    Path
    """
    labels = np.asarray(labels).ravel()
    n = len(class_names)
    fig = _figure(0.9 * per_class + 1.4, 0.95 * n + 0.5)
    axes = fig.subplots(n, per_class, squeeze=False)
    for c in range(n):
        members = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            if j < len(members):
                ax.imshow(images[members[j]], cmap="gray_r", vmin=0, vmax=255)
        axes[c, 0].set_ylabel(class_names[c], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Sample images per class")
    return _save(fig, path)


def plot_mean_images(mean_images, class_names: Sequence[str], path) -> Path:
    """The average image of each class (``cnnlstm.dataset_stats.class_mean_images``, [0, 1] units).

    Returns
    -------
    Path
    """
    n = len(class_names)
    ncols = min(5, n)
    fig = _figure(1.8 * ncols, 2.0 * math.ceil(n / ncols) + 0.4)
    axes = _image_grid(fig, n, ncols)
    for c in range(n):
        axes[c].imshow(np.asarray(mean_images[c]), cmap="gray_r", vmin=0, vmax=1)
        axes[c].set_title(class_names[c], fontsize=9)
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


def plot_trials(trials: Sequence[Mapping], path) -> Path:
    """A sweep's objective per trial (complete: dots, pruned: crosses at their last value) and
    the best value so far.

    Parameters
    ----------
    trials : sequence of dict
        ``sweep.json`` trial records: ``number``, ``state`` and ``value`` (None when unknown).
    path : str or Path

    Returns
    -------
    Path
    """
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    pruned = [t for t in trials if t["state"] == "PRUNED" and t["value"] is not None]
    ax.scatter([t["number"] for t in done], [t["value"] for t in done], s=18, label="complete")
    if pruned:
        ax.scatter([t["number"] for t in pruned], [t["value"] for t in pruned], marker="x", s=18,
                   color="0.55", label="pruned (last epoch)")
    if done:
        xs, best, run = [], [], -math.inf
        for t in sorted(done, key=lambda t: t["number"]):
            run = max(run, t["value"])
            xs.append(t["number"])
            best.append(run)
        ax.step(xs, best, where="post", color="C3", label="best so far")
    else:
        ax.text(0.5, 0.5, "no complete trials yet", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="trial", ylabel="best validation accuracy", title="Sweep history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if done or pruned:
        ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def plot_importances(importances: Mapping[str, float], path) -> Path:
    """Horizontal bars of a sweep's parameter importances (a note when there are none).

    Parameters
    ----------
    importances : mapping of str to float
        Parameter -> importance, most important first (``sweep.json``'s ``importances``).
    path : str or Path

    Returns
    -------
    Path
    """
    fig = _figure(6.4, max(2.4, 0.4 * len(importances) + 1.2))
    ax = fig.add_subplot()
    if importances:
        names = list(importances)[::-1]  # most important on top
        ax.barh(names, [importances[n] for n in names], color="C0")
        ax.set(xlabel="importance (fANOVA, sums to 1)")
    else:
        ax.text(0.5, 0.5, "needs at least 2 complete trials with varying parameters", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title("Parameter importances")
    return _save(fig, path)


def _reliability_panel(ax, ax_count, bins: Mapping, title: str) -> None:
    edges = np.asarray(bins["edges"], dtype=np.float64)
    width = np.diff(edges)
    centers = edges[:-1] + width / 2
    acc = np.array([np.nan if a is None else a for a in bins["accuracy"]])
    conf = np.array([np.nan if c is None else c for c in bins["confidence"]])
    count = np.asarray(bins["count"], dtype=np.float64)
    full = count > 0
    ax.bar(centers[full], acc[full], width=width[full], color="C0", edgecolor="white", label="accuracy")
    ax.bar(centers[full], conf[full] - acc[full], bottom=acc[full], width=width[full], color="C3",
           alpha=0.35, edgecolor="C3", hatch="//", label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=title)
    ax.legend(loc="upper left", fontsize=7)
    ax.grid(alpha=0.3)
    share = count / max(count.sum(), 1)
    ax_count.bar(centers, share, width=width, color="0.45", edgecolor="white")
    ax_count.set(xlim=(0, 1), xlabel="confidence (top probability)", ylabel="share")
    ax_count.set_yscale("symlog", linthresh=0.01)
    ax_count.grid(alpha=0.3)


def plot_reliability(bins: Mapping, path, *, scaled: Mapping | None = None, temperature: float | None = None,
                     ece: float | None = None, ece_scaled: float | None = None) -> Path:
    """Reliability diagram: accuracy against confidence per bin, with the share of predictions per bin.

    Parameters
    ----------
    bins : mapping
        :func:`cnnlstm.calibration.reliability_bins` of the test predictions (``edges``,
        ``count``, ``accuracy``, ``confidence``).
    path : str or Path
    scaled : mapping, optional
        The same after temperature scaling: drawn in a second column.
    temperature : float, optional
        Shown in the second column's title.
    ece, ece_scaled : float, optional
        Shown in the titles.

    Returns
    -------
    Path
    """
    ncols = 2 if scaled is not None else 1
    fig = _figure(4.6 * ncols + 0.4, 5.2)
    axes = fig.subplots(2, ncols, squeeze=False, height_ratios=[3, 1], sharex="col")
    ece_text = f", ECE {ece:.4f}" if ece is not None else ""
    _reliability_panel(axes[0, 0], axes[1, 0], bins, f"Test predictions{ece_text}")
    if scaled is not None:
        t_text = f"T = {temperature:.3f}" if temperature else "temperature scaled"
        ece_text = f", ECE {ece_scaled:.4f}" if ece_scaled is not None else ""
        _reliability_panel(axes[0, 1], axes[1, 1], scaled, f"After temperature scaling ({t_text}){ece_text}")
    fig.suptitle(f"Reliability diagram ({len(bins['count'])} equal-width confidence bins)")
    return _save(fig, path)


def plot_robustness(corruptions: Sequence[str], columns: Sequence[str], accuracy, clean_accuracy: float,
                    path, *, title: str, mean_accuracy: Sequence[float] | None = None,
                    ce: Sequence[float | None] | None = None) -> Path:
    """Accuracy per corruption and severity (heat map) beside each corruption's mean accuracy (bars).

    Parameters
    ----------
    corruptions : sequence of str
        Row labels.
    columns : sequence of str
        Column labels (severities, plus e.g. ``"n/a"`` for corruptions without one).
    accuracy : array-like, shape (len(corruptions), len(columns))
        Accuracy in [0, 1]; NaN where a corruption has no such column.
    clean_accuracy : float
        Drawn as a line on the bars.
    path : str or Path
    title : str
    mean_accuracy : sequence of float, optional
        One per corruption (default: the row means, NaNs ignored).
    ce : sequence of float or None, optional
        Corruption error relative to a baseline, written beside each bar.

    Returns
    -------
    Path
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    rows = len(corruptions)
    means = np.asarray(mean_accuracy if mean_accuracy is not None else np.nanmean(acc, axis=1), dtype=np.float64)
    fig = _figure(4.2 + 0.55 * len(columns) + 3.6, 1.2 + 0.32 * rows)
    ax_map, ax_bar = fig.subplots(1, 2, width_ratios=[0.55 * len(columns) + 1.6, 3.6], sharey=True)
    masked = np.ma.masked_invalid(acc)
    cmap = colormaps["viridis"].with_extremes(bad="white")
    im = ax_map.imshow(masked, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(rows):
        for j in range(len(columns)):
            if np.isfinite(acc[i, j]):
                ax_map.text(j, i, f"{100 * acc[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if acc[i, j] < 0.6 else "black")
    ax_map.set_xticks(range(len(columns)), columns)
    ax_map.set_yticks(range(rows), corruptions)
    ax_map.set_xlabel("severity")
    ax_map.set_title("accuracy (%)", fontsize=9)
    fig.colorbar(im, ax=ax_map, shrink=0.6, label="accuracy")
    ax_bar.barh(range(rows), means, color="C0")
    ax_bar.axvline(clean_accuracy, color="C3", ls="--", lw=1.2, label=f"clean {100 * clean_accuracy:.1f}%")
    for i, m in enumerate(means):
        text = f"{100 * m:.1f}%" if np.isfinite(m) else "n/a"
        if ce is not None and ce[i] is not None:
            text += f"  CE {ce[i]:.2f}"
        ax_bar.text(0.01, i, text, va="center", fontsize=7, color="white" if np.isfinite(m) and m > 0.25 else "black")
    ax_bar.set(xlim=(0, 1), xlabel="mean accuracy over severities")
    ax_bar.invert_yaxis() if not ax_bar.yaxis_inverted() else None
    ax_bar.legend(loc="lower right", fontsize=7)
    ax_bar.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_image_pairs(pairs: Sequence, path, *, title: str, per_row: int = 4) -> Path:
    """Pairs of images side by side with a caption each (e.g. duplicates found by the audit).

    Parameters
    ----------
    pairs : sequence of (image_a, image_b, caption)
        ``(H, W)`` uint8 images.
    path : str or Path
    title : str
    per_row : int, default 4
        Pairs per row.

    Returns
    -------
    Path
    """
    n = max(1, len(pairs))
    per_row = max(1, min(per_row, n))
    nrows = math.ceil(n / per_row)
    fig = _figure(2.5 * per_row + 0.4, 1.75 * nrows + 0.5)
    grid = fig.add_gridspec(nrows, per_row)
    for k, (a, b, caption) in enumerate(pairs):
        cell = grid[k // per_row, k % per_row].subgridspec(1, 2, wspace=0.05)
        for m, img in enumerate((a, b)):
            ax = fig.add_subplot(cell[0, m])
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if m == 0:
                ax.set_title(caption, fontsize=6.5, loc="left")
    if not pairs:
        ax = fig.add_subplot(grid[0, 0])
        ax.set_axis_off()
        ax.text(0.5, 0.5, "none found", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_explanations(images, heat, steps, titles: Sequence[str], path, *, title: str, per_row: int,
                      row_labels: Sequence[str] | None = None, steps_note: str = "") -> Path:
    """Each image with its Grad-CAM heat map and, where there is one, its LSTM step attribution.

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W)`` uint8.
    heat : np.ndarray
        ``(N, H, W)`` Grad-CAM in [0, 1] (drawn with the ``jet`` colour map over the image).
    steps : np.ndarray or None
        ``(N, H, W)`` step attribution spread over the pixels each step reads, in [-1, 1]
        (red: for the explained class, blue: against); None when the model has no LSTM.
    titles : sequence of str
        One per image.
    path : str or Path
    title : str
    per_row : int
        Images per row (each takes one or two panels).
    row_labels : sequence of str, optional
        A label at the left of each row (e.g. the class).
    steps_note : str
        Added to the figure title (e.g. why there is no step attribution).

    Returns
    -------
    Path
    """
    n = len(images)
    panels = 1 if steps is None else 2
    per_row = max(1, min(per_row, max(n, 1)))
    nrows = max(1, math.ceil(n / per_row))
    fig = _figure(1.25 * panels * per_row + (1.0 if row_labels else 0.3), 1.45 * nrows + 0.6)
    axes = fig.subplots(nrows, panels * per_row, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    for k in range(n):
        r, c = divmod(k, per_row)
        ax = axes[r, panels * c]
        ax.imshow(images[k], cmap="gray", vmin=0, vmax=255)
        ax.imshow(heat[k], cmap="jet", vmin=0, vmax=1, alpha=0.45)
        ax.set_title(titles[k], fontsize=6)
        if steps is not None:
            ax2 = axes[r, panels * c + 1]
            ax2.imshow(images[k], cmap="gray", vmin=0, vmax=255)
            ax2.imshow(steps[k], cmap="RdBu_r", vmin=-1, vmax=1, alpha=0.55)
            ax2.set_title("LSTM steps", fontsize=6)
    if row_labels:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no images", ha="center", va="center", transform=axes[0, 0].transAxes)
    panel_text = "Grad-CAM (jet)" + ("; LSTM step attribution (red for, blue against)" if steps is not None else "")
    fig.suptitle(f"{title}\n{panel_text}" + (f"\n{steps_note}" if steps_note else ""), fontsize=9)
    return _save(fig, path)
