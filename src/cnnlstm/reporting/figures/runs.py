"""Figures of one trained run: confusion matrices, ROC curves, training curves, misclassified images,
the reliability diagram, robustness heat maps and attributions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps

from cnnlstm.reporting.figures.canvas import _figure, _image_mosaic, _save, class_colors


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
    from cnnlstm.measure.metrics import roc_curve_for_class

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
    fig = _figure(1.3 * ncols + 0.4, 1.85 * nrows + 0.6)
    ax = fig.add_subplot()
    if len(wrong):
        titles = [f"{class_names[labels[i]]}\n-> {class_names[preds[i]]}" for i in wrong]
        _image_mosaic(ax, np.asarray(images)[wrong], ncols, vmax=255, titles=titles, title_lines=2)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    total = int((labels != preds).sum())
    fig.suptitle(f"Misclassified test images (true -> predicted), {len(wrong)} of {total}")
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
        :func:`cnnlstm.measure.calibration.reliability_bins` of the test predictions (``edges``,
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


def plot_forest(rows: Sequence[Mapping], path, *, title: str = "Matched comparisons: A − B") -> Path:
    """One row per pair: Δ test accuracy (points) with its 95% interval over seeds, and a zero line.

    ``rows``: ``{"label": "A vs B", "diff": float, "low": float or None, "high": float or None,
    "n": int}`` in percentage points. A single-seed pair has no interval: its point is hollow and
    labelled "1 seed".
    """
    n = max(len(rows), 1)
    fig = _figure(7.0, 0.9 + 0.45 * n)
    ax = fig.add_subplot()
    ys = np.arange(len(rows))[::-1]
    for y, row in zip(ys, rows):
        if row.get("low") is not None:
            excludes = row["low"] > 0 or row["high"] < 0
            color = "#1b7837" if excludes else "#4d4d4d"
            ax.errorbar(row["diff"], y, xerr=[[row["diff"] - row["low"]], [row["high"] - row["diff"]]],
                        fmt="o", color=color, capsize=4, markersize=6)
            note = f"n={row.get('n', '')}"
        else:
            ax.plot(row["diff"], y, "o", markerfacecolor="white", color="#4d4d4d", markersize=6)
            note = "1 seed"
        ax.annotate(note, (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ax.axvline(0.0, color="#b2182b", linewidth=1.0, linestyle="--")
    ax.set_yticks(ys, [row["label"] for row in rows])
    ax.set_xlabel("Δ test accuracy, points (95% t-interval over paired seeds)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    if not rows:
        ax.text(0.5, 0.5, "no pairs to compare", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)
