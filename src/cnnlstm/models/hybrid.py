"""CNN-LSTM hybrids: a convolutional stem whose feature map an LSTM reads as a sequence.

Sequential hybrids (plan, Section II-A: CNN extracts features, LSTM classifies) share
:class:`ConvLSTMClassifier`: ``stem -> to_sequence(seq_axis) -> LSTM -> pool -> dropout -> FC``.
They differ only in the stem and defaults:

- ``model1_lstm`` / ``model2_lstm``: the plan's next step, "adding LSTM layers into the baseline":
  Table II's conv layers, with the LSTM taking the place of the hidden FC layer (same width).
- ``ji_cnn_lstm``: Ji (2022), 91.36% in the plan's Table I.
- ``cnn_lstm``: the project's flagship, tuned for accuracy per second of CPU training.

``parallel_cnn_lstm`` is the parallel kind (plan, ref. [10]): a CNN branch and an LSTM branch
read the image side by side and their features are concatenated.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from cnnlstm.errors import ConfigError
from cnnlstm.models.base import (
    SEQ_AXES,
    ImageClassifier,
    channels_last_,
    check_choice,
    check_dropout,
    check_pair,
    check_positive,
    conv_block,
    conv_output_shape,
    sequence_shape,
    to_sequence,
)
from cnnlstm.models.registry import register_model

__all__ = [
    "POOLS",
    "STEMS",
    "ConvLSTMClassifier",
    "LSTMReader",
    "ParallelCNNLSTM",
    "baseline_stem",
    "cnn_lstm",
    "flagship_stem",
    "ji_cnn_lstm",
    "ji_stem",
    "model1_lstm",
    "model2_lstm",
    "parallel_cnn_lstm",
]

#: How the LSTM's per-step outputs become one vector (see :class:`LSTMReader`).
POOLS = ("last", "mean", "attention")


class LSTMReader(nn.Module):
    """A batch-first (Bi)LSTM over a sequence ``(B, T, F)``, pooled to ``(B, out_dim)``.

    Parameters
    ----------
    input_size, hidden, layers : int
        LSTM step width, hidden size, stacked layers.
    bidirectional : bool
        Read the sequence both ways; ``out_dim = 2 * hidden``.
    pool : {"last", "mean", "attention"}
        ``last``: final hidden state of the top layer (for a BiLSTM the forward direction's last
        step and the backward direction's first step, i.e. each direction's full summary);
        ``mean``: mean of the top layer's outputs over steps; ``attention``: softmax-weighted sum
        of the outputs with a learned scoring vector.
    dropout : float
        Dropout between stacked LSTM layers (only used when ``layers > 1``).
    """

    def __init__(
        self,
        input_size: int,
        hidden: int,
        layers: int = 1,
        *,
        bidirectional: bool = False,
        pool: str = "last",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.pool = check_choice("pool", pool, POOLS)
        self.directions = 2 if bidirectional else 1
        self.lstm = nn.LSTM(
            input_size,
            check_positive("lstm_hidden", hidden),
            num_layers=check_positive("lstm_layers", layers),
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out_dim = hidden * self.directions
        self.score = nn.Linear(self.out_dim, 1) if pool == "attention" else None

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Sequence ``(B, T, F)`` -> pooled outputs ``(B, out_dim)``."""
        out, (h_n, _) = self.lstm(seq)  # out: (B, T, dirs*h); h_n: (layers*dirs, B, h)
        if self.pool == "last":
            return h_n[-self.directions :].transpose(0, 1).flatten(1)  # (B, dirs*h)
        if self.pool == "mean":
            return out.mean(dim=1)
        weights = torch.softmax(self.score(out), dim=1)  # (B, T, 1): attention over steps
        return (weights * out).sum(dim=1)


class ConvLSTMClassifier(ImageClassifier):
    """``stem -> sequence -> LSTM -> pool -> dropout -> FC``: the sequential CNN-LSTM.

    Features are the pooled LSTM outputs after dropout, ``feature_dim = lstm_hidden * dirs``.
    The defaults are ``model1_lstm``'s; each registered hybrid sets only what differs.

    Parameters
    ----------
    stem : {"baseline", "ji", "flagship"}
        The convolutional stem (see :data:`STEMS`), mapping images ``(B, in_channels, H, W)`` to a
        feature map ``(B, C, H', W')``.
    channels : tuple of int
        Output channels of the stem's convolutions (two for ``baseline`` and ``ji``).
    stem_depth : int
        Convolutions per block of the ``flagship`` stem (see :func:`flagship_stem`); 1 for the
        others.
    first_stride : {1, 2}
        2: the ``flagship`` stem's first block downsamples with a stride-2 convolution instead of
        a max-pool (see :func:`flagship_stem`); 1 for the others.
    num_classes, image_size, in_channels : int
        Output logits; side of the square input image; its channels (1 grey, 3 RGB).
    seq_axis : {"rows", "cols", "spatial"}
        How the feature map becomes a sequence (see :func:`~cnnlstm.models.base.to_sequence`).
    lstm_hidden, lstm_layers, bidirectional, pool :
        See :class:`LSTMReader`.
    batch_norm : bool
        BatchNorm in the stem.
    dropout : float
        Dropout on the features (and between stacked LSTM layers).
    """

    def __init__(
        self,
        *,
        stem: str = "baseline",
        channels: tuple[int, ...] = (8, 32),
        stem_depth: int = 1,
        first_stride: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        in_channels: int = 1,
        seq_axis: str = "rows",
        lstm_hidden: int = 64,
        lstm_layers: int = 1,
        bidirectional: bool = False,
        pool: str = "last",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        build_stem = STEMS[check_choice("stem", stem, tuple(STEMS))]
        conv = build_stem(channels, batch_norm, stem_depth, in_channels, first_stride)
        check_choice("seq_axis", seq_axis, SEQ_AXES)
        dropout = check_dropout(dropout)
        steps, step_features = sequence_shape(conv_output_shape(conv, image_size), seq_axis)
        reader = LSTMReader(
            step_features, lstm_hidden, lstm_layers,
            bidirectional=bidirectional, pool=pool, dropout=dropout,
        )
        super().__init__(num_classes, reader.out_dim)
        self.seq_axis = seq_axis
        self.stem = conv
        self.steps = steps  # sequence length the LSTM reads
        self.reader = reader
        self.dropout = nn.Dropout(dropout)
        channels_last_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> pooled LSTM features ``(B, feature_dim)``."""
        seq = to_sequence(self.stem(x), self.seq_axis)  # (B, steps, step_features)
        return self.dropout(self.reader(seq))


class ParallelCNNLSTM(ImageClassifier):
    """A CNN branch and an LSTM branch on the raw image, features concatenated, then FC.

    The plan's parallel kind of CNN-LSTM (its ref. [10]), sized like Model I by default, and
    registered as ``parallel_cnn_lstm`` with these defaults:

    CNN branch: :func:`baseline_stem` (Conv(C,8,5) ReLU Pool2 Conv(8,32,5) ReLU Pool2) -> FC(512,
    64) -> ReLU. LSTM branch: the raw normalised image read as a sequence (``rows``: H steps of
    C*W values, 28 steps of 28 pixels on 28x28 grey) -> LSTM(64) -> last hidden state. Features:
    the two concatenated (128) -> dropout -> FC(128, 10); ``feature_dim = cnn_features +
    lstm_hidden * dirs``. FC(512, 64) is at 28x28; the width follows ``image_size``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        image_size: int = 28,
        in_channels: int = 1,
        cnn_channels: tuple[int, ...] = (8, 32),
        cnn_features: int = 64,
        seq_axis: str = "rows",
        lstm_hidden: int = 64,
        lstm_layers: int = 1,
        bidirectional: bool = False,
        pool: str = "last",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        check_choice("seq_axis", seq_axis, SEQ_AXES)
        dropout = check_dropout(dropout)
        conv = baseline_stem(check_pair("cnn_channels", cnn_channels), batch_norm, 1, in_channels)
        flat = math.prod(conv_output_shape(conv, image_size))  # 32*4*4 = 512 at 28x28
        _, step_features = sequence_shape((in_channels, image_size, image_size), seq_axis)
        reader = LSTMReader(
            step_features, lstm_hidden, lstm_layers,
            bidirectional=bidirectional, pool=pool, dropout=dropout,
        )
        super().__init__(num_classes, check_positive("cnn_features", cnn_features) + reader.out_dim)
        self.seq_axis = seq_axis
        self.conv = conv
        self.cnn_fc = nn.Sequential(nn.Linear(flat, cnn_features), nn.ReLU(inplace=True))
        self.reader = reader
        self.dropout = nn.Dropout(dropout)
        channels_last_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> ``[cnn features, lstm features]`` ``(B, feature_dim)``."""
        cnn = self.cnn_fc(self.conv(x).flatten(1))  # (B, cnn_features)
        # rows: (B, H, C*W) -> (B, dirs*h). Under autocast the raw fp32 image must be cast like the
        # conv branch's output: oneDNN's CPU LSTM rejects fp32 input once autocast is on.
        rnn = self.reader(to_sequence(x, self.seq_axis).to(cnn.dtype))
        return self.dropout(torch.cat([cnn, rnn], dim=1))


def baseline_stem(channels: tuple[int, ...], batch_norm: bool, depth: int = 1, in_channels: int = 1,
                  first_stride: int = 1) -> nn.Sequential:
    """Table II's conv layers: Conv(in_channels,c1,5) ReLU Pool2 Conv(c1,c2,5) ReLU Pool2 (28 -> 4x4)."""
    check_paper_stem("baseline", depth, first_stride)
    c1, c2 = check_pair("channels", channels)
    return nn.Sequential(
        conv_block(check_positive("in_channels", in_channels), c1, 5, batch_norm=batch_norm),
        conv_block(c1, c2, 5, batch_norm=batch_norm),
    )


def ji_stem(channels: tuple[int, ...], batch_norm: bool, depth: int = 1, in_channels: int = 1,
            first_stride: int = 1) -> nn.Sequential:
    """Ji (2022)'s convolutions, as we wire them: Conv(in_channels,c1,3) ReLU Pool2 Conv(c1,c2,5) ReLU.

    The paper lists the layers (Conv 3x3x20, MaxPool 2x2, Conv 5x5x20, LSTM + FC + softmax,
    maximum-likelihood training) but publishes no wiring; ours, an assumption: 28 -> 26 -> 13
    -> 9, no pooling after the second convolution, padding 0, stride 1.
    """
    check_paper_stem("ji", depth, first_stride)
    c1, c2 = check_pair("channels", channels)
    return nn.Sequential(
        conv_block(check_positive("in_channels", in_channels), c1, 3, batch_norm=batch_norm, pool=True),
        conv_block(c1, c2, 5, batch_norm=batch_norm, pool=False),
    )


def check_paper_stem(stem: str, depth: int, first_stride: int) -> None:
    """The paper's stems are fixed: ``stem_depth`` and ``first_stride`` are the flagship's alone."""
    if depth != 1:
        raise ConfigError(f"invalid stem_depth {depth} for the {stem} stem; valid: 1 "
                          "(only the flagship stem stacks convolutions)")
    if first_stride != 1:
        raise ConfigError(f"invalid first_stride {first_stride} for the {stem} stem; valid: 1 "
                          "(only the flagship stem downsamples by a strided convolution)")


def flagship_stem(channels: tuple[int, ...], batch_norm: bool, depth: int = 1, in_channels: int = 1,
                  first_stride: int = 1) -> nn.Sequential:
    """One block per entry of ``channels``: ``depth`` Conv3x3 (same), the last one downsampling by 2.

    A block is ``(depth - 1) x [Conv3x3 -> [BatchNorm] -> ReLU]`` at full resolution, then
    Conv3x3 -> MaxPool2 -> [BatchNorm] -> ReLU. Pooling before BatchNorm and ReLU gives the same
    function class as the usual order (ReLU and max commute; BN is per-channel affine) but runs BN
    and ReLU on a quarter of the pixels, which measured about 20% faster per CPU training step.
    Two blocks take 28x28 to (C, 7, 7) at any depth. ``depth = 1`` keeps the layer indices, hence
    the checkpoints, of the stem before the option existed; ``depth = 2`` is a VGG-style stem for
    a GPU's spare compute.

    ``first_stride = 2`` makes the first block's last convolution stride 2, with no max-pool after
    it: the first block never computes a full-resolution map, which made the fp32 training step
    of the (16, 32) flagship 1.3x faster than with the pool (2.0x faster than the (24, 48) pooled
    stem; benchmarks/RESULTS.md). It learns less per epoch; the ``fast`` preset gives it more.
    """
    if not channels:
        raise ConfigError("invalid channels []; valid: one or more channel counts, e.g. [32, 64]")
    check_positive("stem_depth", depth)
    if first_stride not in (1, 2):
        raise ConfigError(f"invalid first_stride {first_stride!r}; valid: 1, 2")
    layers: list[nn.Module] = []
    check_positive("in_channels", in_channels)
    for block, out_channels in enumerate(channels):
        check_positive("channels", out_channels)
        for _ in range(depth - 1):
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm),
                nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity(),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        strided = block == 0 and first_stride == 2
        layers += [
            nn.Conv2d(in_channels, out_channels, 3, stride=2 if strided else 1, padding=1, bias=not batch_norm),
            *([] if strided else [nn.MaxPool2d(2)]),
            nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


#: The stems a sequential hybrid can read: name -> ``stem(channels, batch_norm, depth, in_channels, first_stride)``.
STEMS = {"baseline": baseline_stem, "ji": ji_stem, "flagship": flagship_stem}


# The sequential hybrids: only what differs from ConvLSTMClassifier's defaults (timm's style);
# every argument stays settable through model_args.

# The plan's next step, "adding LSTM layers into the baseline": Model I / Model II with the hidden
# FC layer replaced by an LSTM of the same width. Conv(1,8,5) ReLU Pool2 Conv(8,32,5) ReLU Pool2
# -> (B, 32, 4, 4) -> rows: 4 steps of 128 -> LSTM(64) -> last state -> FC(64, 10).
model1_lstm = register_model(
    "model1_lstm",
    "Model I's conv layers -> LSTM(64) over the 32x4x4 map (4 rows of 128) -> FC(64,10)",
)(partial(ConvLSTMClassifier, stem="baseline", channels=(8, 32), lstm_hidden=64))

model2_lstm = register_model(
    "model2_lstm",
    "Model II's conv layers -> LSTM(32) over the 32x4x4 map (4 rows of 128) -> FC(32,10)",
)(partial(ConvLSTMClassifier, stem="baseline", channels=(16, 32), lstm_hidden=32))

# Ji (2022), "A novel CNN+LSTM classification model based on fashion-MNIST" (91.36%); see ji_stem
# for the wiring we assume: (B, 20, 9, 9) -> rows: 9 steps of 180 -> LSTM(128) -> last -> FC.
ji_cnn_lstm = register_model(
    "ji_cnn_lstm",
    "Ji 2022 CNN+LSTM: Conv3x3x20 Pool Conv5x5x20 -> 9 rows of 180 -> LSTM(128) -> FC",
)(partial(ConvLSTMClassifier, stem="ji", channels=(20, 20), lstm_hidden=128))

# The plan's parallel kind: the class itself, with its defaults (registered here to keep the listing order).
parallel_cnn_lstm = register_model(
    "parallel_cnn_lstm",
    "Parallel CNN-LSTM: Model I-style CNN branch + LSTM(64) over raw image rows, concatenated",
)(ParallelCNNLSTM)

# The flagship, chosen for accuracy per second of CPU training: flagship_stem (32, 64): 28x28 ->
# (B, 64, 7, 7) -> rows: 7 steps of 448 -> BiLSTM(64) -> both directions' final states (128) ->
# dropout -> FC(128, 10).
# Design measurements (2 shared cores, 2 threads, batch 128, forward + backward + AdamW step,
# best-of-runs / median ms): conv stem + linear head only 31/35; + BiLSTM(64) 41/50 (chosen);
# + LSTM(128) mean 41/47; + BiLSTM(128) 59/69 (the LSTM alone costs more than twice the
# BiLSTM(64)); channels (24, 48) 37/42, (16, 32) 26/31; three blocks (32, 64, 128) 66/76.
# In a short equal-time race (45 s, 1 thread) 16/32, 24/48 and 32/64 tied within noise
# (90.4-90.6% validation), so the wider stem, which gains more from longer runs, is the default.
cnn_lstm = register_model(
    "cnn_lstm",
    "Flagship: BN CNN 32/64 (28 -> 7x7) -> BiLSTM(64) over 7 rows of 448 -> FC; fast on CPU",
)(partial(ConvLSTMClassifier, stem="flagship", channels=(32, 64), lstm_hidden=64, bidirectional=True,
          batch_norm=True, dropout=0.1))
