"""Cheaper-stem variants of the flagship, for the fp32 speed benchmarks (`--model-file`).

Issue target 1 asks whether less work per image shortens the time to 92% in fp32. The flagship's
stem runs its first convolution and max-pool at full 28x28 resolution; these variants downsample
earlier. They are the flagship in every other respect (BiLSTM(64) over the rows of a (C, 7, 7)
map, batch norm, dropout 0.1). They live here, not in the model registry, because they did not
pay (benchmarks/RESULTS.md, "Levers for the time to 92% in fp32").

- ``cnn_lstm_s2``: Conv3x3 stride 2 -> BN -> ReLU (28 -> 14, no pool), then the flagship's
  second block, Conv3x3 -> MaxPool2 -> BN -> ReLU (14 -> 7).
- ``cnn_lstm_s4``: both blocks downsample with a stride-2 convolution, no pooling at all.

Use: ``cnnlstm train cnn_lstm_s2 --model-file benchmarks/lever_models.py --preset fast``, or
``python benchmarks/fast_flagship.py --model cnn_lstm_s2 --model-file benchmarks/lever_models.py``.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from cnnlstm.models import register_model
from cnnlstm.models.hybrid import STEMS, ConvLSTMClassifier


def strided_stem(channels, batch_norm, depth=1, in_channels=1, *, strided_blocks=1):
    """The flagship stem with its first ``strided_blocks`` blocks downsampling by a stride-2 conv.

    A strided block is Conv3x3 stride 2 -> [BN] -> ReLU; the others are the flagship's
    Conv3x3 -> MaxPool2 -> [BN] -> ReLU. 28x28 -> (C, 7, 7) for two blocks either way.
    """
    if depth != 1:
        raise ValueError("the lever stems have one convolution per block")
    layers: list[nn.Module] = []
    for i, out_channels in enumerate(channels):
        strided = i < strided_blocks
        layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2 if strided else 1, padding=1, bias=not batch_norm)]
        layers += [] if strided else [nn.MaxPool2d(2)]
        layers += [nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity(), nn.ReLU(inplace=True)]
        in_channels = out_channels
    return nn.Sequential(*layers)


# ConvLSTMClassifier looks its stem up by name, so the variants register theirs beside the shipped ones.
STEMS.setdefault("strided1", partial(strided_stem, strided_blocks=1))
STEMS.setdefault("strided2", partial(strided_stem, strided_blocks=2))

_FLAGSHIP = dict(channels=(24, 48), lstm_hidden=64, bidirectional=True, batch_norm=True, dropout=0.1)

register_model("cnn_lstm_s2", "flagship with a stride-2 first conv (benchmarks/lever_models.py)")(
    partial(ConvLSTMClassifier, stem="strided1", **_FLAGSHIP))
register_model("cnn_lstm_s4", "flagship with stride-2 convs, no pooling (benchmarks/lever_models.py)")(
    partial(ConvLSTMClassifier, stem="strided2", **_FLAGSHIP))
