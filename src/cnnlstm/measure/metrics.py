"""The research plan's classification metrics, computed with :mod:`sklearn.metrics`.

Accuracy, precision, recall and F1 (macro and micro), one-vs-rest ROC AUC, the confusion matrix,
the worst class and the most frequent confusions, from labels and probabilities (sklearn's
argument order: ``labels`` first). The ``checkpoint`` / ``tta`` keys of ``metrics.json`` are the
caller's business.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

TOP_CONFUSIONS = 10  # how many off-diagonal (true, pred) pairs `compute_metrics` lists


def check_predictions(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(N,)`` as int64 and probabilities ``(N, C)`` as float64, or a ValueError.

    The one check of a prediction set, shared by the metrics here and by
    :mod:`cnnlstm.measure.calibration`.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be (N, C) with N={labels.shape[0]}, got {probs.shape}")
    if labels.size == 0:
        raise ValueError("no predictions to evaluate")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in [0, {probs.shape[1]}), got {labels.min()}..{labels.max()}")
    return labels, probs


def _check_inputs(labels, probs, class_names) -> tuple[np.ndarray, np.ndarray]:
    labels, probs = check_predictions(labels, probs)
    if probs.shape[1] != len(class_names):
        raise ValueError(f"{probs.shape[1]} probability columns but {len(class_names)} class names")
    return labels, probs


def _binary_auc(is_pos: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of one-vs-rest scores, or None when only one side is present."""
    if is_pos.all() or not is_pos.any():
        return None
    return float(skm.roc_auc_score(is_pos, scores))


def _top_confusions(cm: np.ndarray, class_names: Sequence[str], top: int) -> list[dict]:
    """The most frequent off-diagonal (true, pred) pairs, ties broken by (true, pred)."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pairs = [(int(off[t, p]), t, p) for t, p in zip(*np.nonzero(off))]
    pairs.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [
        {"true": int(t), "true_name": str(class_names[t]), "pred": int(p),
         "pred_name": str(class_names[p]), "count": n}
        for n, t, p in pairs[:top]
    ]


def compute_metrics(labels, probs, class_names: Sequence[str]) -> dict:
    """The plan's test metrics for predicted probabilities, as JSON-ready plain Python values.

    Predictions are ``argmax(probs)``. Precision/recall/F1 use every class in
    ``range(C)`` with ``zero_division=0``; micro averages equal accuracy for single-label data
    (the plan's remark). ROC AUC is one-vs-rest on the probability column of each class; a
    class that is absent from ``labels`` (or is every label) gets ``roc_auc = None`` and is
    left out of ``roc_auc_macro`` (the mean of the defined per-class AUCs, as sklearn's
    ``multi_class="ovr", average="macro"`` when all classes are present).

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        True labels in ``[0, C)``.
    probs : array-like of float, shape (N, C)
        Class scores (softmax probabilities; any monotone score works for AUC).
    class_names : sequence of str, length C

    Returns
    -------
    dict
        ``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``,
        ``precision_micro``, ``recall_micro``, ``f1_micro``, ``roc_auc_macro`` (float or None),
        ``per_class`` (list of ``{label, name, precision, recall, f1, support, roc_auc}``),
        ``confusion_matrix`` (C x C counts, rows true, columns predicted),
        ``worst_class`` (label with the lowest F1 among classes present in ``labels``; ties ->
        lowest label), ``top_confusions`` (up to 10 ``{true, true_name, pred, pred_name, count}``,
        most frequent first, nonzero only), ``n_test``.
    """
    labels, probs = _check_inputs(labels, probs, class_names)
    n_classes = probs.shape[1]
    class_ids = list(range(n_classes))
    preds = probs.argmax(axis=1)
    out: dict = {"accuracy": float(skm.accuracy_score(labels, preds))}
    for avg in ("macro", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            labels, preds, labels=class_ids, average=avg, zero_division=0
        )
        out.update({f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)})
    p, r, f, s = skm.precision_recall_fscore_support(
        labels, preds, labels=class_ids, average=None, zero_division=0
    )
    aucs = [_binary_auc(labels == c, probs[:, c]) for c in class_ids]
    defined = [a for a in aucs if a is not None]
    out["roc_auc_macro"] = float(np.mean(defined)) if defined else None
    out["per_class"] = [
        {"label": c, "name": str(class_names[c]), "precision": float(p[c]), "recall": float(r[c]),
         "f1": float(f[c]), "support": int(s[c]), "roc_auc": aucs[c]}
        for c in class_ids
    ]
    cm = skm.confusion_matrix(labels, preds, labels=class_ids)
    out["confusion_matrix"] = cm.astype(int).tolist()
    present = [c for c in class_ids if s[c] > 0]
    out["worst_class"] = int(min(present, key=lambda c: (f[c], c)))
    out["top_confusions"] = _top_confusions(cm, class_names, TOP_CONFUSIONS)
    out["n_test"] = int(labels.shape[0])
    return out


def roc_curve_for_class(labels, probs, label: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    """One-vs-rest ROC curve of one class (the plan's Fig. 6 uses the worst class).

    Parameters
    ----------
    labels : array-like of int, shape (N,)
    probs : array-like of float, shape (N, C)
    label : int
        The positive class; its column of ``probs`` is the score.

    Returns
    -------
    fpr, tpr : np.ndarray
        From :func:`sklearn.metrics.roc_curve`. When the class is absent (or is every label)
        the curve is undefined and both are ``[0, 1]`` (the chance diagonal).
    auc : float or None
        Area under the curve, None when undefined.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    if not 0 <= label < probs.shape[1]:
        raise ValueError(f"label {label} outside [0, {probs.shape[1]})")
    is_pos = labels == label
    auc = _binary_auc(is_pos, probs[:, label])
    if auc is None:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), None
    fpr, tpr, _ = skm.roc_curve(is_pos, probs[:, label])
    return fpr, tpr, auc
