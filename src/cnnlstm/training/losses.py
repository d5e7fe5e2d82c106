"""Training losses by name: cross-entropy (the plan's "maximum likelihood") and the L2-SVM.

Every loss is an ``nn.Module`` called as ``loss(logits, targets, head_weight=None)`` and returning
a scalar tensor:

- ``logits``: ``(B, C)`` float, the model's ``forward`` output;
- ``targets``: ``(B,)`` int64 class indices;
- ``head_weight``: the final linear layer's weight ``(C, D)``, i.e. ``model.head_weight``. Only
  the SVM loss uses it (its ``mean(W**2)`` penalty); the others accept and ignore it, so a training
  loop can always pass it::

      loss_fn = make_loss(cfg.loss, label_smoothing=cfg.label_smoothing)
      loss = loss_fn(model(x), y, head_weight=model.head_weight)
"""

from __future__ import annotations

import typing

import torch
import torch.nn.functional as F
from torch import nn

from cnnlstm.config import LossName
from cnnlstm.errors import ConfigError

__all__ = ["LOSSES", "CrossEntropyLoss", "L2SVMLoss", "make_loss"]


class CrossEntropyLoss(nn.Module):
    """Mean softmax cross-entropy (= negative log-likelihood of the softmax model).

    Parameters
    ----------
    label_smoothing : float
        In ``[0, 1)``; the target puts ``1 - label_smoothing + label_smoothing / C`` on the true
        class and ``label_smoothing / C`` on each other class (``torch.nn.functional.cross_entropy``).
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = float(label_smoothing)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, head_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scalar mean loss; ``head_weight`` is ignored."""
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)


class L2SVMLoss(nn.Module):
    """Multi-class L2-SVM (squared hinge, one-vs-rest), as in Agarap (arXiv 1712.03541).

    ``loss = penalty * mean(W**2) + C * mean(max(0, 1 - y * out)**2)`` where ``out`` are the
    logits ``(B, K)``, ``y = +1`` for the true class and ``-1`` for the others, both means run over
    all entries (``B * K`` for the hinge, ``K * D`` for ``W``), and ``W`` is the head weight.
    Agarap uses ``penalty = 1`` and ``C = 1``. Predict with ``argmax(out)`` as usual.

    Parameters
    ----------
    c : float
        Weight ``C`` of the hinge term, > 0.
    penalty : float
        Weight of ``mean(W**2)``, >= 0; 0 drops the term (e.g. when the optimizer already applies
        weight decay). When it is > 0, calls must pass ``head_weight``.
    """

    def __init__(self, c: float = 1.0, penalty: float = 1.0) -> None:
        super().__init__()
        self.c = float(c)
        self.penalty = float(penalty)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, head_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scalar loss; ``head_weight`` ``(K, D)`` is required when ``penalty > 0``."""
        y = F.one_hot(targets, logits.shape[1]).to(logits.dtype) * 2 - 1  # (B, K) in {-1, +1}
        hinge = torch.clamp(1 - y * logits, min=0).square().mean()
        if self.penalty == 0:
            return self.c * hinge
        if head_weight is None:
            raise ValueError("the svm loss needs head_weight (model.head_weight) when svm_penalty > 0")
        return self.penalty * head_weight.square().mean() + self.c * hinge


#: Loss names accepted by :func:`make_loss`; ``nll`` is an alias of ``cross_entropy``.
LOSSES = typing.get_args(LossName)  # the names config.TrainConfig.loss takes


def make_loss(
    name: str,
    *,
    label_smoothing: float = 0.0,
    svm_c: float = 1.0,
    svm_penalty: float = 1.0,
) -> nn.Module:
    """Build the loss called ``name``.

    Parameters
    ----------
    name : {"cross_entropy", "nll", "svm"}
        ``cross_entropy`` (alias ``nll``: the plan's "maximum likelihood"; the model outputs
        logits, so NLL of the softmax is exactly cross-entropy) or ``svm`` (:class:`L2SVMLoss`).
    label_smoothing : float
        Cross-entropy only, in ``[0, 1)``; must be 0 for ``svm``.
    svm_c : float
        SVM hinge weight ``C`` (> 0).
    svm_penalty : float
        SVM weight of ``mean(W**2)`` of the head weights (>= 0; 0 turns it off).

    Returns
    -------
    nn.Module
        Called as ``loss(logits, targets, head_weight=None) -> scalar tensor``.

    Raises
    ------
    ConfigError
        Unknown name or a value out of range.
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"invalid label_smoothing {label_smoothing!r}; valid: a number in [0, 1)")
    if name in ("cross_entropy", "nll"):
        return CrossEntropyLoss(label_smoothing)
    if label_smoothing:
        raise ConfigError(
            f"invalid label_smoothing {label_smoothing!r} for loss 'svm'; "
            "valid: 0 (smoothing is cross-entropy only)"
        )
    if not svm_c > 0:
        raise ConfigError(f"invalid svm_c {svm_c!r}; valid: a number > 0")
    if not svm_penalty >= 0:
        raise ConfigError(f"invalid svm_penalty {svm_penalty!r}; valid: a number >= 0")
    return L2SVMLoss(svm_c, svm_penalty)
