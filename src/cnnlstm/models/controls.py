"""No-LSTM controls: the flagship's stem and recipe with the LSTM taken out.

The research plan asks whether LSTM layers make a CNN better. A hybrid compared with a different
CNN (other layers, other recipe) mixes the LSTM with every other difference, so each hybrid gets a
control that differs from it only where the LSTM sits:

- ``cnn_twin``: :func:`~cnnlstm.models.hybrid.flagship_stem` -> flatten -> FC(hidden) -> ReLU ->
  dropout -> FC. Its hidden width defaults to the one that gives the same number of parameters as
  ``cnn_lstm`` on the same stem with its default BiLSTM(64): the twin is the flagship with its
  recurrent reader swapped for a dense one of the same size.
- ``cnn_gap``: the same stem -> global average pooling -> dropout -> FC, a second, much smaller
  control (no learned spatial reader at all).

The plan's own hybrids need no new model: ``model1_lstm`` is ``model1`` with its FC(512, 64)
replaced by an LSTM(64), and ``parallel_cnn_lstm``'s CNN branch alone *is* ``model1``, so
``model1`` is the control of both (``model2`` of ``model2_lstm``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlstm.models.base import (
    ImageClassifier,
    channels_last_,
    check_dropout,
    check_positive,
    conv_output_shape,
    sequence_shape,
)
from cnnlstm.models.hybrid import LSTMReader, flagship_stem
from cnnlstm.models.registry import register_model

__all__ = ["GAPClassifier", "TwinClassifier", "cnn_gap", "cnn_twin", "matched_hidden"]

#: The flagship's reader that ``cnn_twin``'s default width is matched to (see ``hybrid.cnn_lstm``).
FLAGSHIP_READER = {"hidden": 64, "layers": 1, "bidirectional": True, "seq_axis": "rows"}


def matched_hidden(fmap: tuple[int, int, int], num_classes: int = 10) -> int:
    """Hidden width of a flatten -> FC(h) -> FC head with the flagship reader's parameter count.

    The flagship spends ``P = lstm + (2 * 64 + 1) * num_classes`` parameters after its stem;
    the twin's head spends ``(flat + 1) * h + (h + 1) * num_classes``. Solving for ``h`` and
    rounding gives a twin within one hidden unit (``flat + 11`` parameters) of the flagship.

    Parameters
    ----------
    fmap : tuple of int
        ``(C, H, W)`` of the stem's output.
    num_classes : int
        Logits of both heads.
    """
    _, step_features = sequence_shape(fmap, FLAGSHIP_READER["seq_axis"])
    reader = LSTMReader(step_features, FLAGSHIP_READER["hidden"], FLAGSHIP_READER["layers"],
                        bidirectional=FLAGSHIP_READER["bidirectional"])
    flagship = sum(p.numel() for p in reader.parameters()) + (reader.out_dim + 1) * num_classes
    flat = math.prod(fmap)
    return max(1, round((flagship - num_classes) / (flat + 1 + num_classes)))


class TwinClassifier(ImageClassifier):
    """``flagship_stem -> flatten -> FC(hidden) -> ReLU -> dropout -> FC``: a CNN-LSTM without its LSTM.

    Registered as ``cnn_twin`` with these defaults: the flagship ``cnn_lstm`` with its BiLSTM
    replaced by a dense layer of the same size. ``hidden = 0`` (the default) picks the width
    whose parameter count matches ``cnn_lstm`` with the same ``channels`` and its default
    BiLSTM(64) (:func:`matched_hidden`): 84 units for (32, 64), 88 for (24, 48). The twin then
    has the flagship's parameters to within 0.2% but fewer FLOPs, because a dense layer reads
    each weight once per image where the LSTM reads its recurrent weights once per step
    (``cnnlstm models`` prints both). Features are the hidden FC layer's output after ReLU and
    dropout, ``feature_dim = hidden``. ``channels``, ``stem_depth`` and ``first_stride`` build the
    stem as :func:`~cnnlstm.models.hybrid.flagship_stem` does, so a preset gives the twin the
    flagship's stem by giving both the same values.
    """

    def __init__(self, *, num_classes: int = 10, image_size: int = 28, in_channels: int = 1,
                 channels: tuple[int, ...] = (32, 64),
                 stem_depth: int = 1, first_stride: int = 1, hidden: int = 0, batch_norm: bool = True,
                 dropout: float = 0.1) -> None:
        stem = flagship_stem(channels, batch_norm, stem_depth, in_channels, first_stride)
        fmap = conv_output_shape(stem, image_size)
        if hidden == 0:
            hidden = matched_hidden(fmap, num_classes)
        super().__init__(num_classes, check_positive("hidden", hidden))
        self.stem = stem
        self.fc = nn.Sequential(nn.Linear(math.prod(fmap), hidden), nn.ReLU(inplace=True),
                                nn.Dropout(check_dropout(dropout)))
        channels_last_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> hidden features ``(B, hidden)``."""
        return self.fc(self.stem(x).flatten(1))  # (B, C*H'*W') -> (B, hidden)


class GAPClassifier(ImageClassifier):
    """``flagship_stem -> global average pool -> dropout -> FC``; features are the pooled channels.

    Registered as ``cnn_gap`` with these defaults: the flagship's stem read by global average
    pooling instead of an LSTM (no spatial reader).
    """

    def __init__(self, *, num_classes: int = 10, image_size: int = 28, in_channels: int = 1,
                 channels: tuple[int, ...] = (32, 64),
                 stem_depth: int = 1, first_stride: int = 1, batch_norm: bool = True, dropout: float = 0.1) -> None:
        stem = flagship_stem(channels, batch_norm, stem_depth, in_channels, first_stride)
        n_channels, _, _ = conv_output_shape(stem, image_size)
        super().__init__(num_classes, n_channels)
        self.stem = stem
        self.dropout = nn.Dropout(check_dropout(dropout))
        channels_last_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> channel means ``(B, C)``."""
        return self.dropout(self.stem(x).mean(dim=(2, 3)))


# The controls are the classes themselves, with their defaults (the flagship's stem and recipe).
cnn_twin = register_model(
    "cnn_twin",
    "Flagship's no-LSTM twin: the same BN stem -> flatten -> FC(hidden, sized to match) -> FC",
)(TwinClassifier)

cnn_gap = register_model(
    "cnn_gap",
    "Flagship's small no-LSTM control: the same BN stem -> global average pool -> FC",
)(GAPClassifier)
