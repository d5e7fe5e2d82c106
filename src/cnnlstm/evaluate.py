"""Predictions -> metrics: batched inference (with optional test-time augmentation) and the
research plan's classification metrics, computed with :mod:`sklearn.metrics`.

Everything here works on plain arrays and tensors; run folders, checkpoints and the
``checkpoint`` / ``tta`` keys of ``metrics.json`` are the caller's business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn import metrics as skm

log = logging.getLogger(__name__)

TOP_CONFUSIONS = 10  # how many off-diagonal (true, pred) pairs `compute_metrics` lists

ViewFn = Callable[[torch.Tensor], Sequence[torch.Tensor]]


def _model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-free model)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _forward(model: torch.nn.Module, x: torch.Tensor, need_features: bool):
    """Logits (and features) for one batch, via ``forward_features``/``forward_head`` if present."""
    if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        feats = model.forward_features(x)
        return model.forward_head(feats), feats
    if need_features:
        raise TypeError("return_features=True needs a model with forward_features/forward_head")
    return model(x), None


def _batch_probs(model, xb: torch.Tensor, tta_views: ViewFn | None, need_features: bool):
    """Softmax probabilities (B, C) for one batch, averaged over TTA views, plus features."""
    if tta_views is None:
        logits, feats = _forward(model, xb, need_features)
        return torch.softmax(logits.float(), dim=1), feats
    views = list(tta_views(xb))
    if not views:
        raise ValueError("tta_views returned no views")
    probs = None
    for view in views:
        logits, _ = _forward(model, view, False)
        p = torch.softmax(logits.float(), dim=1)
        probs = p if probs is None else probs + p
    feats = _forward(model, xb, True)[1] if need_features else None  # features of the plain image
    return probs / len(views), feats


def predict_probs(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 1000,
    tta_views: ViewFn | None = None,
    return_features: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Class probabilities for a stack of images, in the input order.

    The model runs in eval mode under :func:`torch.inference_mode`; its previous
    train/eval mode is restored afterwards, so calling this never changes the model's state.
    Nothing is shuffled or augmented unless ``tta_views`` is given.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier. If it has ``forward_features(x)`` and ``forward_head(f)`` they are used
        (``forward = head(features)``); otherwise ``model(x)`` gives the logits.
    images : torch.Tensor
        ``(N, 1, H, W)`` float images, already normalised. Batches are moved to the model's
        device one at a time.
    batch_size : int, default 1000
        Images per forward pass.
    tta_views : callable, optional
        Test-time augmentation: ``tta_views(x)`` returns a list of views of the batch ``x``
        (e.g. ``[x, x.flip(-1)]``). Probabilities are the mean of the softmax of every view.
        ``None`` (default) means a single plain forward pass.
    return_features : bool, default False
        Also return ``forward_features`` of the plain (un-augmented) images.

    Returns
    -------
    probs : np.ndarray
        ``(N, C)`` float32, each row sums to 1.
    features : np.ndarray
        ``(N, F)`` float32 (features flattened per image); only when ``return_features``.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = _model_device(model)
    was_training = model.training
    model.eval()
    all_probs, all_feats = [], []
    try:
        with torch.inference_mode():
            for start in range(0, images.shape[0], batch_size):
                xb = images[start : start + batch_size].to(device)
                probs, feats = _batch_probs(model, xb, tta_views, return_features)
                all_probs.append(probs.cpu())
                if return_features:
                    all_feats.append(feats.float().flatten(1).cpu())  # (B, F)
    finally:
        model.train(was_training)
    n_out = all_probs[0].shape[1] if all_probs else 0
    probs_np = torch.cat(all_probs).numpy() if all_probs else np.zeros((0, n_out), np.float32)
    log.debug("predicted %d images (tta=%s)", probs_np.shape[0], tta_views is not None)
    if not return_features:
        return probs_np
    feats_np = torch.cat(all_feats).numpy() if all_feats else np.zeros((0, 0), np.float32)
    return probs_np, feats_np


def check_predictions(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(N,)`` as int64 and probabilities ``(N, C)`` as float64, or a ValueError.

    The one check of a prediction set, shared by the metrics here and by
    :mod:`cnnlstm.calibration`.
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
