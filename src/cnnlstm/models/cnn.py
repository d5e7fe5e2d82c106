"""Plain CNNs: the plan's two baselines (Table II) and the two published CNN references.

- ``model1`` / ``model2``: the research plan's Model I and Model II, exactly as Table II lists them
  (PyTorch ``Conv2d(in, out, kernel)``, padding 0, stride 1; ReLU after every conv and hidden FC).
- ``tf_cnn``: the TensorFlow-tutorial CNN cited by the Fashion-MNIST README (91.6%).
- ``cnn_svm``: Agarap's CNN-SVM (arXiv 1712.03541): the same CNN with dropout 0.5 and a linear
  head trained with the multi-class L2-SVM loss (``losses.make_loss("svm")``).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from cnnlstm.models.base import (
    ImageClassifier,
    channels_last_,
    check_dropout,
    check_pair,
    check_positive,
    conv_block,
    conv_output_shape,
)
from cnnlstm.models.registry import register_model

__all__ = ["TwoConvCNN", "cnn_svm", "model1", "model2", "tf_cnn"]


class TwoConvCNN(ImageClassifier):
    """Conv -> ReLU -> MaxPool2 -> Conv -> ReLU -> MaxPool2 -> FC -> ReLU -> [Dropout] -> FC.

    The shape shared by Table II's baselines and the TF-tutorial / Agarap CNN. Features are the
    hidden FC layer's output after ReLU and dropout.

    Parameters
    ----------
    channels : tuple[int, int]
        Output channels of the two convolutions.
    kernel_size : int
        Square kernel of both convolutions.
    padding : int
        Zero padding of both convolutions (0 = "valid", ``kernel_size // 2`` = "same").
    fc_hidden : int
        Width of the hidden FC layer (= ``feature_dim``).
    num_classes, image_size, in_channels : int
        Output logits; side of the square input image; its channels (1 grey, 3 RGB).
    batch_norm : bool
        BatchNorm after each convolution (before ReLU).
    dropout : float
        Dropout probability on the hidden FC output.
    """

    def __init__(
        self,
        *,
        channels: tuple[int, int],
        kernel_size: int,
        padding: int,
        fc_hidden: int,
        num_classes: int = 10,
        image_size: int = 28,
        in_channels: int = 1,
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(num_classes, check_positive("fc_hidden", fc_hidden))
        c1, c2 = check_pair("channels", channels)
        self.conv = nn.Sequential(
            conv_block(check_positive("in_channels", in_channels), c1, kernel_size, padding=padding, batch_norm=batch_norm),
            conv_block(c1, c2, kernel_size, padding=padding, batch_norm=batch_norm),
        )
        flat = math.prod(conv_output_shape(self.conv, image_size))  # 32*4*4 = 512 for Model I
        self.fc = nn.Sequential(
            nn.Linear(flat, fc_hidden), nn.ReLU(inplace=True), nn.Dropout(check_dropout(dropout))
        )
        channels_last_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, in_channels, H, W)`` -> hidden FC features ``(B, fc_hidden)``."""
        return self.fc(self.conv(x).flatten(1))  # (B, C*H'*W') -> (B, fc_hidden)


# The variants: only what differs from TwoConvCNN's arguments (timm's style); every argument stays
# settable through model_args. Parameter counts at 28x28 without BatchNorm: Model I 40,122,
# Model II 29,994, tf_cnn and cnn_svm 3,274,634.

model1 = register_model(
    "model1", "Plan Table II Model I: Conv(1,8,5) Pool Conv(8,32,5) Pool FC(512,64) FC(64,10)"
)(partial(TwoConvCNN, channels=(8, 32), kernel_size=5, padding=0, fc_hidden=64))

model2 = register_model(
    "model2", "Plan Table II Model II: Conv(1,16,5) Pool Conv(16,32,5) Pool FC(512,32) FC(32,10)"
)(partial(TwoConvCNN, channels=(16, 32), kernel_size=5, padding=0, fc_hidden=32))

# The TensorFlow-tutorial CNN (Fashion-MNIST README, 91.6%): "same" 5x5 convs, FC(3136, 1024).
tf_cnn = register_model(
    "tf_cnn", "TF-tutorial CNN: conv5x5x32 same, pool, conv5x5x64 same, pool, FC1024, dropout 0.4"
)(partial(TwoConvCNN, channels=(32, 64), kernel_size=5, padding=2, fc_hidden=1024, dropout=0.4))

# Agarap's CNN-SVM (arXiv 1712.03541, 90.72%): the TF-tutorial CNN with dropout 0.5. What makes it
# an SVM is the training loss, which train_defaults sets: loss="svm" (squared hinge, one-vs-rest,
# plus mean(W**2) of this model's head_weight), and no label smoothing.
cnn_svm = register_model(
    "cnn_svm",
    "Agarap CNN-SVM: the TF-tutorial CNN, dropout 0.5, linear head trained with the L2-SVM loss",
    train_defaults={"loss": "svm", "label_smoothing": 0.0},
)(partial(TwoConvCNN, channels=(32, 64), kernel_size=5, padding=2, fc_hidden=1024, dropout=0.5))
