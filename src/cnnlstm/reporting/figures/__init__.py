"""Matplotlib figures from arrays: each function takes arrays and an output path, writes one PNG
and returns its path. No statistics are computed here beyond what a figure needs to draw.

Figures are built with :class:`matplotlib.figure.Figure` on an explicit Agg canvas, so this
package never touches pyplot's global state or the process-wide backend: it is safe to import
next to interactive matplotlib users and in headless workers. PNGs are written as 8-bit
palette images (mode ``"P"``) at :data:`~cnnlstm.reporting.figures.canvas.DPI` dots per inch.

- :mod:`~cnnlstm.reporting.figures.canvas`: the canvas, class colours, the atomic PNG writer;
- :mod:`~cnnlstm.reporting.figures.runs`: one run's figures;
- :mod:`~cnnlstm.reporting.figures.dataset`: a dataset's figures and t-SNE scatter plots;
- :mod:`~cnnlstm.reporting.figures.sweep`: a sweep's figures;
- :mod:`~cnnlstm.reporting.figures.regimes`: the regime study's map and occlusion curves.

Every figure function is re-exported here, so callers write ``figures.plot_roc(...)``.
"""

from cnnlstm.reporting.figures.canvas import DPI, EMBED_POINT_SIZE, PALETTE_COLORS, class_colors
from cnnlstm.reporting.figures.dataset import (
    format_quality,
    plot_boxplots,
    plot_class_distribution,
    plot_embedding,
    plot_embeddings_side_by_side,
    plot_mean_images,
    plot_sample_grid,
)
from cnnlstm.reporting.figures.regimes import plot_occlusion, plot_regime_map
from cnnlstm.reporting.figures.runs import (
    plot_confusion_matrix,
    plot_explanations,
    plot_forest,
    plot_history,
    plot_image_pairs,
    plot_misclassified,
    plot_reliability,
    plot_robustness,
    plot_roc,
)
from cnnlstm.reporting.figures.sweep import plot_importances, plot_trials

__all__ = ["DPI", "EMBED_POINT_SIZE", "PALETTE_COLORS", "class_colors", "format_quality", "plot_boxplots", "plot_class_distribution", "plot_confusion_matrix", "plot_embedding", "plot_embeddings_side_by_side", "plot_explanations", "plot_forest", "plot_history", "plot_image_pairs", "plot_importances", "plot_mean_images", "plot_misclassified", "plot_occlusion", "plot_regime_map", "plot_reliability", "plot_robustness", "plot_roc", "plot_sample_grid", "plot_trials"]
