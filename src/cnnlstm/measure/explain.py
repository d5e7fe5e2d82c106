"""Where the model looks: Grad-CAM on the last convolution and an attribution over the LSTM's steps.

Both come from captum and explain the class the model predicts:

- **Grad-CAM** (Selvaraju et al. 2017; :class:`captum.attr.LayerGradCam`) on the output of the
  model's last ``nn.Conv2d``: the feature maps weighted by their mean gradient, summed, rectified,
  upsampled bilinearly to the image and scaled to a maximum of 1 per image. For
  ``parallel_cnn_lstm`` this is the CNN branch only (its LSTM reads raw pixels).
- **Step attribution**: integrated gradients (:class:`captum.attr.LayerIntegratedGradients`,
  32 Gauss-Legendre steps, a black image as the baseline) on the sequence the LSTM reads, summed
  over each step's features: one signed score per step (a row, a column or a position of the
  feature map, as the model's ``seq_axis`` reads it). By completeness the scores of an image sum to
  the change of its explained logit when the LSTM's input is that of the black image (for the
  sequential hybrids: the logit minus the black image's logit; for ``parallel_cnn_lstm`` the CNN
  branch keeps seeing the real image). Models without an LSTM have no steps; their records say so.

Gradients run through ``nn.LSTM`` in eval mode, which cuDNN refuses on CUDA ("cudnn RNN backward
can only be called in training mode"), so attribution runs with cuDNN disabled. It runs on a
copy of the model whose in-place activations are turned off, so hooks see unmodified tensors.

:func:`cnnlstm.study.explain.run_explain` drives these for a run folder (``cnnlstm explain``).
"""

from __future__ import annotations

import copy
import logging
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

IG_STEPS = 32  # integration steps of the step attribution
BATCH = 64  # images per attribution batch
PER_CLASS = 3  # default images per class in figures/explain.png
MISTAKES = 8  # default confident mistakes of the worst class in figures/explain_mistakes.png


def last_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The name and module of the model's last ``nn.Conv2d`` in registration order (None if none)."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            found = (name, module)
    return found


def lstm_reader(model: nn.Module) -> nn.Module | None:
    """The module that reads the LSTM's input sequence (``model.reader``), or None for a CNN."""
    reader = getattr(model, "reader", None)
    return reader if isinstance(reader, nn.Module) and hasattr(model, "seq_axis") else None


def attribution_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every in-place activation made out-of-place."""
    clone = copy.deepcopy(model).eval()
    for module in clone.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return clone


def _cudnn_off(device: torch.device):
    """cuDNN's RNN backward refuses eval mode; the native kernels do not."""
    return torch.backends.cudnn.flags(enabled=False) if device.type == "cuda" else nullcontext()


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Grad-CAM of ``target`` on the last conv layer, upsampled to the image, in [0, 1].

    Parameters
    ----------
    model : nn.Module
        An eval-mode classifier without in-place activations (:func:`attribution_copy`).
    x : torch.Tensor
        ``(N, 1, H, W)`` normalised images on the model's device.
    target : torch.Tensor
        ``(N,)`` int64 classes to explain.

    Returns
    -------
    np.ndarray
        ``(N, H, W)`` float32, each image scaled to a maximum of 1 (all zero when the rectified
        map is zero everywhere).
    """
    from captum.attr import LayerAttribution, LayerGradCam

    found = last_conv(model)
    if found is None:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM")
    cam = LayerGradCam(model, found[1])
    with _cudnn_off(x.device):
        attr = cam.attribute(x, target=target, relu_attributions=True)  # (N, 1, h, w)
    up = LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    heat = up[:, 0].clamp_min(0).float().cpu().numpy()
    peak = heat.reshape(len(heat), -1).max(axis=1)
    return (heat / np.where(peak > 0, peak, 1.0)[:, None, None]).astype(np.float32)


def step_attribution(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                     n_steps: int = IG_STEPS, black: torch.Tensor | None = None) -> np.ndarray | None:
    """Integrated gradients over the LSTM's input steps, one signed score per step.

    Parameters
    ----------
    model : nn.Module
        As for :func:`grad_cam`.
    x : torch.Tensor
        ``(N, C, H, W)`` normalised images.
    target : torch.Tensor
        ``(N,)`` classes to explain.
    n_steps : int, default 32
        Integration steps.
    black : torch.Tensor, optional
        ``(1, C, 1, 1)``: a black pixel under the run's normalisation (the baseline image);
        default Fashion-MNIST's (:func:`cnnlstm.data.splits.black_image`).

    Returns
    -------
    np.ndarray or None
        ``(N, T)`` float32 (T = the LSTM's sequence length); None for a model without an LSTM.
    """
    from captum.attr import LayerIntegratedGradients

    reader = lstm_reader(model)
    if reader is None:
        return None
    black = torch.full_like(x, _black_value()) if black is None else black.to(x).expand_as(x).contiguous()
    ig = LayerIntegratedGradients(model, reader)
    with _cudnn_off(x.device):
        attr = ig.attribute(x, baselines=black, target=target, n_steps=n_steps,
                            attribute_to_layer_input=True)  # (N, T, F): the sequence the LSTM reads
    if isinstance(attr, (tuple, list)):
        attr = attr[0]
    return attr.detach().float().sum(dim=2).cpu().numpy()


def _black_value() -> float:
    """A black pixel (0) after the dataset normalisation of :func:`cnnlstm.data.to_tensor`."""
    from cnnlstm.data import FASHION_NORM

    return FASHION_NORM.black[0]


def sequence_grid(model: nn.Module, image_size: int) -> tuple[int, int] | None:
    """``(h, w)`` of the map the LSTM reads as a sequence (the stem's output, or the raw image)."""
    if lstm_reader(model) is None:
        return None
    stem = getattr(model, "stem", None)
    if stem is None:  # the parallel hybrid's LSTM reads the raw image
        return image_size, image_size
    from cnnlstm.models.base import conv_output_shape

    _, h, w = conv_output_shape(stem, image_size)
    return h, w


def step_maps(scores: np.ndarray, seq_axis: str, grid: tuple[int, int], image_size: int) -> np.ndarray:
    """Spread each step's score over the image pixels it covers, scaled to [-1, 1] per image.

    ``rows``: step t covers the image rows of feature-map row t; ``cols`` the same for columns;
    ``spatial``: step t is position ``(t // w, t % w)``. Nearest-neighbour upsampling: a step is
    drawn where its feature-map row or column lies when the map is stretched to the image (its
    receptive field is wider; this shows the order and weight of the steps, not exact pixels).

    Returns
    -------
    np.ndarray
        ``(N, image_size, image_size)`` float32.
    """
    n = len(scores)
    h, w = grid
    if seq_axis == "rows":
        fmap = np.repeat(scores[:, :, None], w, axis=2)  # (N, h, w)
    elif seq_axis == "cols":
        fmap = np.repeat(scores[:, None, :], h, axis=1)
    else:
        fmap = scores.reshape(n, h, w)
    rows = np.minimum((np.arange(image_size) * h) // image_size, h - 1)
    cols = np.minimum((np.arange(image_size) * w) // image_size, w - 1)
    up = fmap[:, rows][:, :, cols]
    peak = np.abs(up).reshape(n, -1).max(axis=1)
    return (up / np.where(peak > 0, peak, 1.0)[:, None, None]).astype(np.float32)


def explain_images(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                   n_steps: int = IG_STEPS, black: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Grad-CAM ``(N, H, W)`` and step scores ``(N, T)`` (or None) in batches of 64."""
    clone = attribution_copy(model)
    heats, steps = [], []
    for start in range(0, len(x), BATCH):
        xb, tb = x[start:start + BATCH], target[start:start + BATCH]
        heats.append(grad_cam(clone, xb, tb))
        s = step_attribution(clone, xb, tb, n_steps=n_steps, black=black)
        if s is not None:
            steps.append(s)
    heat = np.concatenate(heats) if heats else np.zeros((0,) + tuple(x.shape[-2:]), np.float32)
    return heat, (np.concatenate(steps) if steps else None)


def pick_per_class(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, int]:
    """Seeded random test indices, the same number of each present class, grouped by class.

    Returns the indices and that number: ``per_class``, or fewer when a class has fewer images
    (so every class fills one row of the figure).
    """
    from cnnlstm.data.dataset_stats import sample_indices_per_class

    counts = np.bincount(labels)
    k = int(min(per_class, counts[counts > 0].min()))
    return sample_indices_per_class(labels, k, seed), k


def confident_mistakes(labels: np.ndarray, probs: np.ndarray, label: int, limit: int) -> np.ndarray:
    """Indices of images of class ``label`` predicted as another class, most confident first."""
    preds = probs.argmax(1)
    wrong = np.flatnonzero((labels == label) & (preds != label))
    order = np.argsort(-probs[wrong].max(axis=1), kind="stable")
    return wrong[order][:limit]


def step_profile(steps: np.ndarray | None, labels: np.ndarray, classes) -> dict | None:
    """Mean share of ``|score|`` per step, over all explained images and per class (None without steps)."""
    if steps is None or len(steps) == 0:
        return None
    share = np.abs(steps) / np.maximum(np.abs(steps).sum(axis=1, keepdims=True), 1e-12)
    by_class = {str(classes[c]): share[labels == c].mean(axis=0).round(4).tolist()
                for c in np.unique(labels)}
    return {"all": share.mean(axis=0).round(4).tolist(), "by_class": by_class}


