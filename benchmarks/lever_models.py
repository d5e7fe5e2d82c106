"""Cheaper-stem variants of the flagship, for the fp32 speed benchmarks (`--model-file`).

Issue target 1 asked whether less work per image shortens the time to 92% in fp32. The flagship's
stem used to run its first convolution and max-pool at full 28x28 resolution; these variants
downsample earlier. They are the flagship in every other respect (BiLSTM(64) over the rows of a
(C, 7, 7) map, batch norm, dropout 0.1, the (24, 48) channels of the `fast` preset before
2026-12-02).

- ``cnn_lstm_s2``: Conv3x3 stride 2 -> BN -> ReLU (28 -> 14, no pool), then the flagship's
  second block, Conv3x3 -> MaxPool2 -> BN -> ReLU (14 -> 7). This is the flagship with
  ``first_stride=2``, which the `fast` preset now uses at (16, 32) channels
  (benchmarks/RESULTS.md, "Levers for the time to 92% in fp32").
- ``cnn_lstm_s4``: both blocks downsample with a stride-2 convolution, no pooling at all. It did
  not pay, so it lives here and not in the model registry.

Use: ``cnnlstm train cnn_lstm_s4 --model-file benchmarks/lever_models.py --preset fast``, or
``python benchmarks/fast_flagship.py --model cnn_lstm_s2 --model-file benchmarks/lever_models.py``.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from cnnlstm.models import register_model
from cnnlstm.models.hybrid import STEMS, cnn_lstm


def all_strided_stem(channels, batch_norm, depth=1, in_channels=1, first_stride=2):
    """Every block Conv3x3 stride 2 -> [BN] -> ReLU, no pooling: 28x28 -> (C, 7, 7) for two blocks."""
    if depth != 1 or first_stride != 2:
        raise ValueError("the all-strided stem has one stride-2 convolution per block")
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=not batch_norm),
                   nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity(), nn.ReLU(inplace=True)]
        in_channels = out_channels
    return nn.Sequential(*layers)


# ConvLSTMClassifier looks its stem up by name, so the variant registers its own beside the shipped ones.
STEMS.setdefault("all_strided", all_strided_stem)

# The registered flagship's builder with only the stem changed (and the old fast preset's channels).
register_model("cnn_lstm_s2", "flagship with a stride-2 first conv (benchmarks/lever_models.py)")(
    partial(cnn_lstm, channels=(24, 48), first_stride=2))
register_model("cnn_lstm_s4", "flagship with stride-2 convs, no pooling (benchmarks/lever_models.py)")(
    partial(cnn_lstm, stem="all_strided", channels=(24, 48), first_stride=2))
