"""A GRU hybrid and its control for `--model-file examples/gru_hybrid.py` (docs/models.md)."""
from functools import partial

import torch
from torch import nn

from cnnlstm.models import ImageClassifier, register_model


class GRUHybrid(ImageClassifier):
    """Two conv blocks, then a GRU reading the feature map's rows (or, with gru=False, one linear layer)."""

    def __init__(self, num_classes=10, image_size=28, in_channels=1, channels=32, hidden=64, gru=True):
        side = image_size // 4  # two 2x2 max-pools
        super().__init__(num_classes, feature_dim=hidden)
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.gru = nn.GRU(channels * side, hidden, batch_first=True) if gru else None
        self.fc = None if gru else nn.Linear(channels * side * side, hidden)

    def forward_features(self, x):
        maps = self.trunk(x)                                   # (B, C, H', W')
        if self.gru is None:
            return torch.relu(self.fc(maps.flatten(1)))        # (B, hidden)
        rows = maps.permute(0, 2, 1, 3).flatten(2)             # (B, H', C*W'): one step per row
        return self.gru(rows)[1][-1]                           # last hidden state (B, hidden)


register_model("gru_hybrid", "conv trunk + GRU over rows (examples/gru_hybrid.py)")(GRUHybrid)
register_model("gru_control", "the same trunk, a linear layer instead of the GRU")(partial(GRUHybrid, gru=False))
