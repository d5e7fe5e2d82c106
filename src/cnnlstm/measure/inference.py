"""Batched inference: probabilities (with optional test-time augmentation) and features of a model.

Everything here works on plain tensors and arrays; run folders and checkpoints are the caller's
business. The metrics computed from these predictions are :mod:`cnnlstm.measure.metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


ViewFn = Callable[[torch.Tensor], Sequence[torch.Tensor]]


def model_device(model: torch.nn.Module) -> torch.device:
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
    device = model_device(model)
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
