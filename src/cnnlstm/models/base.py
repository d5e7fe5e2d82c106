"""The one interface every classifier implements, plus small shared building blocks.

Every model is an :class:`ImageClassifier`: ``forward_features`` maps a normalised image batch
``(B, C, H, W)`` (``C`` is the model's ``in_channels``: 1 grey, 3 RGB) to a feature matrix
``(B, feature_dim)``; ``forward_head`` maps features to logits ``(B, num_classes)``. t-SNE,
feature export and the SVM loss (which penalises the head weights) all go through these two
methods, so they work on every registered model alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlstm.errors import ConfigError

__all__ = [
    "ImageClassifier",
    "SEQ_AXES",
    "check_choice",
    "check_dropout",
    "check_pair",
    "check_positive",
    "channels_last_",
    "conv_block",
    "conv_output_shape",
    "sequence_shape",
    "to_sequence",
]

#: How a feature map ``(B, C, H, W)`` is read as a sequence (see :func:`to_sequence`).
SEQ_AXES = ("rows", "cols", "spatial")


class ImageClassifier(nn.Module):
    """Base class: ``forward(x) = forward_head(forward_features(x))``.

    Subclasses build their layers, set ``self.head`` (an ``nn.Linear`` mapping ``feature_dim`` to
    ``num_classes``) and implement :meth:`forward_features`.

    Parameters
    ----------
    num_classes : int
        Number of output logits.
    feature_dim : int
        Width of the vector returned by :meth:`forward_features`.
    """

    def __init__(self, num_classes: int, feature_dim: int) -> None:
        super().__init__()
        check_positive("num_classes", num_classes)
        self.num_classes = int(num_classes)
        self.feature_dim = int(feature_dim)
        self.head: nn.Linear = nn.Linear(self.feature_dim, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(B, C, H, W)`` to features ``(B, feature_dim)``."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map features ``(B, feature_dim)`` to logits ``(B, num_classes)``."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, C, H, W)``."""
        return self.forward_head(self.forward_features(x))

    @property
    def head_weight(self) -> torch.Tensor:
        """Weight matrix ``(num_classes, feature_dim)`` of the final linear layer.

        The L2-SVM loss penalises it (``losses.make_loss("svm")``'s ``head_weight`` argument).
        """
        return self.head.weight


# ---------------------------------------------------------------------------------------------
# argument checks: bad user input is a ConfigError with a one-line message


def check_choice(key: str, value: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ConfigError`."""
    if value not in choices:
        raise ConfigError(f"invalid {key} {value!r}; valid: {', '.join(choices)}")
    return value


def check_dropout(value: float, key: str = "dropout") -> float:
    """Return ``value`` as a float if ``0 <= value < 1``, else raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"invalid {key} {value!r}; valid: a number in [0, 1)")
    return float(value)


def check_pair(key: str, value: Sequence[int]) -> tuple[int, int]:
    """Return ``value`` as two positive channel counts, else raise :class:`ConfigError`."""
    if len(value) != 2:
        raise ConfigError(f"invalid {key} {list(value)!r}; valid: two channel counts, e.g. [8, 32]")
    return check_positive(key, value[0]), check_positive(key, value[1])


def check_positive(key: str, value: int) -> int:
    """Return ``value`` if it is an int >= 1, else raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"invalid {key} {value!r}; valid: an integer >= 1")
    return value


# ---------------------------------------------------------------------------------------------
# layers


def conv_block(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    padding: int = 0,
    batch_norm: bool = False,
    pool: bool = True,
) -> nn.Sequential:
    """Conv -> [BatchNorm] -> ReLU -> [MaxPool 2x2].

    With ``batch_norm`` the convolution has no bias: BatchNorm's shift makes it redundant.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def channels_last_(module: nn.Module) -> nn.Module:
    """Store ``module``'s 4-D weights channels-last (NHWC), in place; returns ``module``.

    oneDNN's CPU convolutions and max-pooling run about 1.5x faster per training step on NHWC
    tensors for these small models (measured: Model I 13 -> 9 ms, a 32/64-channel CNN-LSTM
    75 -> 47 ms per batch of 128 with 2 threads). A conv whose weight is NHWC returns NHWC output
    even for an NCHW input, so callers need not convert their batches; ``module.to(device)``
    keeps the format.
    """
    return module.to(memory_format=torch.channels_last)


@torch.no_grad()
def conv_output_shape(stem: nn.Module, image_size: int) -> tuple[int, int, int]:
    """``(C, H, W)`` of ``stem``'s output for one ``image_size`` square image (channels: its first conv's).

    Runs a dry forward pass in eval mode (so BatchNorm statistics are untouched) and raises
    :class:`ConfigError` when the image is too small for the stem.
    """
    in_channels = next(m for m in stem.modules() if isinstance(m, nn.Conv2d)).in_channels
    was_training = stem.training
    stem.eval()
    try:
        out = stem(torch.zeros(1, in_channels, image_size, image_size))
    except RuntimeError as err:  # e.g. "Kernel size can't be greater than actual input size"
        raise ConfigError(f"invalid image_size {image_size}: too small for this model") from err
    finally:
        stem.train(was_training)
    if out.numel() == 0:
        raise ConfigError(f"invalid image_size {image_size}: too small for this model")
    _, c, h, w = out.shape
    return c, h, w


def sequence_shape(shape: tuple[int, int, int], seq_axis: str) -> tuple[int, int]:
    """``(steps, step_features)`` that :func:`to_sequence` makes of a ``(C, H, W)`` map."""
    c, h, w = shape
    return {"rows": (h, c * w), "cols": (w, c * h), "spatial": (h * w, c)}[seq_axis]


def to_sequence(fmap: torch.Tensor, seq_axis: str) -> torch.Tensor:
    """Read a feature map ``(B, C, H, W)`` as a batch-first sequence for an LSTM.

    ``rows``: ``(B, H, C*W)``, one step per image row (top to bottom);
    ``cols``: ``(B, W, C*H)``, one step per column (left to right);
    ``spatial``: ``(B, H*W, C)``, one step per pixel in raster order.
    """
    if seq_axis == "rows":
        return fmap.permute(0, 2, 1, 3).flatten(2)  # (B, H, C*W): rows become LSTM steps
    if seq_axis == "cols":
        return fmap.permute(0, 3, 1, 2).flatten(2)  # (B, W, C*H): columns become LSTM steps
    if seq_axis == "spatial":
        return fmap.flatten(2).transpose(1, 2)  # (B, H*W, C): pixels become LSTM steps
    raise ConfigError(f"invalid seq_axis {seq_axis!r}; valid: {', '.join(SEQ_AXES)}")
