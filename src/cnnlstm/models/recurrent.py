"""Recurrence inside the convolutional stack, each recurrent model beside a feed-forward control of its size.

The flagship hybrids put an LSTM *on top* of a CNN, reading its feature map as a sequence. The
models here put the recurrence *inside* the conv stack, where the literature reports it helps at
matched parameters (docs/positive-control.md):

- **Spoerer, McClure & Kriegeskorte (2017).** :class:`SpoererNet`: recurrent convolutional layers
  ``x[t] = ReLU(BN_t(W_b * bottom[t] + W_l * x[t-1]))`` unrolled over ``steps`` time steps of the
  same image, read out at the last step. ``spoerer_b`` is bottom-up only (``W_l`` absent, one
  step); ``spoerer_bl`` adds lateral recurrence; ``spoerer_bk`` (larger kernels) and ``spoerer_bf``
  (more feature maps) are bottom-up controls sized to ``spoerer_bl``'s parameter count.
- **Shi et al. (2015).** :class:`ConvLSTMNet`: a conv stem, then a ConvLSTM cell (the LSTM's gates
  as convolutions of the input and the hidden state) unrolled over ``steps`` steps of the same
  feature map; ``conv_lstm_ff`` is the cell run once (``h = o * tanh(i * g)``, which is what the
  first step computes from a zero state), widened to ``conv_lstm``'s parameter count.

Every convolution runs once per step it is used in, so ``cnnlstm models`` counts the unrolled
FLOPs (``FlopCounterMode`` sees each call); the bottom-up convolution of the first layer, whose
input (the image, or the stem's map) is the same at every step, runs once, as in Spoerer et al.'s
released code.

Where the models depart from the papers, at a size a CPU trains in minutes: two layers of 32 maps
with 3x3 kernels; BatchNorm per layer and time step, as in Spoerer et al.'s released code
(``cjspoerer/rcnn-sat``); a global-average-pool readout at the last step only (the released code
reads out at every step; the harness trains one output per image); ConvLSTM without peephole
connections; no top-down connections (BT, BLT).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch import nn

from cnnlstm.errors import ConfigError
from cnnlstm.models.base import ImageClassifier, channels_last_, check_dropout, check_positive
from cnnlstm.models.registry import register_model

__all__ = [
    "BL_DEFAULTS",
    "ConvLSTMCell",
    "ConvLSTMNet",
    "LateralConv",
    "SpoererNet",
    "conv_lstm",
    "conv_lstm_ff",
    "conv_lstm_params",
    "matched_gated_width",
    "matched_kernels",
    "matched_widths",
    "spoerer_b",
    "spoerer_bf",
    "spoerer_bk",
    "spoerer_bl",
    "spoerer_params",
]

#: The ``spoerer_bl`` that ``spoerer_bk`` and ``spoerer_bf`` are sized to (with their own data and batch_norm).
BL_DEFAULTS = {"channels": (32, 32), "kernels": (3, 3), "steps": 4}
#: The ``conv_lstm`` that ``conv_lstm_ff`` is sized to.
CONV_LSTM_DEFAULTS = {"channels": 32, "hidden": 32, "kernel_size": 3}
_KERNEL_CHOICES = (1, 3, 5, 7, 9, 11)  # odd: "same" padding keeps maps aligned
_MAX_WIDTH = 256  # widest layer spoerer_bf may get
_WIDTH_SPREAD = 6  # most maps by which spoerer_bf's two layers may differ


def _check_kernels(kernels: tuple[int, ...]) -> tuple[int, ...]:
    for k in kernels:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ConfigError(f"invalid kernels {list(kernels)!r}; valid: odd sizes, e.g. [3, 3]")
    return tuple(kernels)


def _check_steps(steps: int) -> int:
    return check_positive("steps", steps)


def _check_image_size(image_size: int, pools: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 2 ** pools:
        raise ConfigError(f"invalid image_size {image_size}: too small for this model")


# ---------------------------------------------------------------------------------------------
# Spoerer et al. (2017): B, BL and the feed-forward controls B-K, B-F


def spoerer_params(in_channels: int, channels: tuple[int, ...], kernels: tuple[int, ...], *, lateral: bool,
                   steps: int, batch_norm: bool, num_classes: int) -> int:
    """Trainable parameters of a :class:`SpoererNet`, counted without building it.

    Per layer: the bottom-up kernel ``c_in * c * k^2``; the lateral one ``c * c * k^2``; BatchNorm's
    scale and shift per time step (``2 * c * steps``), or one bias ``c`` without BatchNorm. Then the
    linear readout ``(c_last + 1) * num_classes``.
    """
    total, c_in = 0, in_channels
    for c, k in zip(channels, kernels):
        total += c_in * c * k * k + (c * c * k * k if lateral else 0)
        total += 2 * c * (steps if lateral else 1) if batch_norm else c
        c_in = c
    return total + (c_in + 1) * num_classes


def _bl_target(in_channels: int, batch_norm: bool, num_classes: int) -> int:
    return spoerer_params(in_channels, BL_DEFAULTS["channels"], BL_DEFAULTS["kernels"], lateral=True,
                          steps=BL_DEFAULTS["steps"], batch_norm=batch_norm, num_classes=num_classes)


def matched_kernels(in_channels: int = 1, batch_norm: bool = True, num_classes: int = 10) -> tuple[int, int]:
    """``spoerer_bk``'s kernel sizes: the odd pair whose bottom-up net is nearest ``spoerer_bl`` in size.

    Two layers of 32 maps; grey input gives (9, 5), 0.4% under BL's 28,778 parameters (10
    classes, BatchNorm). Odd sizes change the count in coarse steps, so with RGB input the nearest
    pair, (5, 5), is 3% off: ``spoerer_bf`` is the control matched within 1% for every input.
    """
    target = _bl_target(in_channels, batch_norm, num_classes)
    pairs = [(k1, k2) for k1 in _KERNEL_CHOICES for k2 in _KERNEL_CHOICES]
    return min(pairs, key=lambda p: (abs(spoerer_params(in_channels, BL_DEFAULTS["channels"], p, lateral=False,
                                                        steps=1, batch_norm=batch_norm,
                                                        num_classes=num_classes) - target), p))


def matched_widths(in_channels: int = 1, batch_norm: bool = True, num_classes: int = 10) -> tuple[int, int]:
    """``spoerer_bf``'s feature maps: the two widths whose 3x3 bottom-up net is nearest ``spoerer_bl`` in size.

    Equal widths change the count in steps of about 1.5%, so the two layers may differ by up to
    :data:`_WIDTH_SPREAD` maps: (58, 53) for grey input, 10 classes and BatchNorm, 0.6% over BL.
    """
    target = _bl_target(in_channels, batch_norm, num_classes)
    c1, c2 = np.meshgrid(np.arange(1, _MAX_WIDTH + 1), np.arange(1, _MAX_WIDTH + 1), indexing="ij")
    # spoerer_params for every pair at once: 3x3 kernels, no lateral, one step
    size = in_channels * c1 * 9 + c1 * c2 * 9 + (2 * (c1 + c2) if batch_norm else c1 + c2) + (c2 + 1) * num_classes
    gap = np.where(np.abs(c1 - c2) <= _WIDTH_SPREAD, np.abs(size - target), np.iinfo(np.int64).max)
    i, j = np.unravel_index(np.argmin(gap), gap.shape)  # ties: the narrower first layer, then second
    return int(c1[i, j]), int(c2[i, j])


class LateralConv(nn.Module):
    """One recurrent convolutional layer: ``x[t] = ReLU(BN_t(drive[t] + W_l * x[t-1]))``.

    ``drive[t] = W_b * bottom[t]`` is the bottom-up convolution (:attr:`bottom_up`), computed by
    the caller so that a drive that does not change over steps is computed once.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
        The bottom-up convolution; the lateral one maps ``out_channels`` to itself, same kernel.
    lateral : bool
        Whether the layer has lateral (within-layer) recurrent connections.
    steps : int
        Time steps; with ``batch_norm`` each has its own BatchNorm (statistics differ by step).
    batch_norm : bool
        BatchNorm per step; without it the bottom-up convolution has a bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, lateral: bool, steps: int,
                 batch_norm: bool) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.bottom_up = nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad, bias=not batch_norm)
        self.lateral = (nn.Conv2d(out_channels, out_channels, kernel_size, padding=pad, bias=False)
                        if lateral else None)
        self.norms = nn.ModuleList(nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
                                   for _ in range(steps if lateral else 1))

    def forward(self, drive: torch.Tensor, previous: torch.Tensor | None, step: int) -> torch.Tensor:
        """The layer's map at ``step`` from its bottom-up ``drive`` and its own map one step earlier."""
        if self.lateral is not None and previous is not None:
            drive = drive + self.lateral(previous)
        # not in place: the first layer's drive is reused at every step
        return torch.relu(self.norms[min(step, len(self.norms) - 1)](drive))


class SpoererNet(ImageClassifier):
    """Spoerer et al. (2017)'s B / BL networks and their B-K / B-F controls.

    ``images -> [LateralConv -> MaxPool2]* -> LateralConv -> global average pool -> dropout -> FC``,
    unrolled over ``steps`` time steps of the same image (the pooling feeds the next layer's
    bottom-up input). The logits are the readout of the last step; features are the pooled maps
    of the last layer at the last step, ``feature_dim = channels[-1]``.

    Parameters
    ----------
    num_classes, image_size, in_channels : int
        Output logits; side of the square input (at least ``2 ** (layers - 1)``); its channels.
    channels : tuple of int
        Feature maps per layer. ``()`` picks :func:`matched_widths` (``spoerer_bf``).
    kernels : tuple of int
        Odd kernel size per layer, bottom-up and lateral alike. ``()`` picks
        :func:`matched_kernels` (``spoerer_bk``).
    lateral : bool
        Lateral recurrence (BL) or bottom-up only (B).
    steps : int
        Time steps the network is unrolled over; 1 for a bottom-up model. The attribute may be
        lowered after building (``model.steps = 1`` runs the first step only with the same weights).
    batch_norm : bool
        BatchNorm per layer and step (else conv biases).
    dropout : float
        Dropout on the pooled features.
    """

    def __init__(self, *, num_classes: int = 10, image_size: int = 28, in_channels: int = 1,
                 channels: tuple[int, ...] = (32, 32), kernels: tuple[int, ...] = (3, 3), lateral: bool = True,
                 steps: int = 4, batch_norm: bool = True, dropout: float = 0.0) -> None:
        check_positive("in_channels", in_channels)
        check_positive("num_classes", num_classes)
        if not channels and not kernels:
            raise ConfigError("channels and kernels cannot both be [] (each [] means 'matched to spoerer_bl')")
        if not channels:
            channels = matched_widths(in_channels, batch_norm, num_classes)
        if not kernels:
            kernels = matched_kernels(in_channels, batch_norm, num_classes)
        channels = tuple(check_positive("channels", c) for c in channels)
        kernels = _check_kernels(kernels)
        if len(channels) != len(kernels):
            raise ConfigError(f"invalid kernels {list(kernels)!r}: one per layer of channels {list(channels)!r}")
        _check_steps(steps)
        if not lateral and steps != 1:
            raise ConfigError(f"invalid steps {steps}: a bottom-up model (lateral false) runs one step")
        _check_image_size(image_size, len(channels) - 1)
        super().__init__(num_classes, channels[-1])
        ins = (in_channels, *channels[:-1])
        self.layers = nn.ModuleList(LateralConv(i, o, k, lateral=lateral, steps=steps, batch_norm=batch_norm)
                                    for i, o, k in zip(ins, channels, kernels))
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.steps = steps
        channels_last_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> the last layer's pooled maps at the last step ``(B, channels[-1])``."""
        image_drive = self.layers[0].bottom_up(x)  # (B, c1, H, W): the image is the same at every step
        state: list[torch.Tensor | None] = [None] * len(self.layers)
        for t in range(self.steps):
            for n, layer in enumerate(self.layers):
                drive = image_drive if n == 0 else layer.bottom_up(self.pool(state[n - 1]))
                state[n] = layer(drive, state[n], t)  # (B, c_n, H / 2^n, W / 2^n)
        return self.dropout(state[-1].mean(dim=(2, 3)))  # global average pool: (B, c_last)


# The paper's four models, each a partial that sets only what differs (timm's style).
spoerer_b = register_model(
    "spoerer_b",
    "Spoerer 2017 B: 2 bottom-up conv layers (32 maps, 3x3) -> global avg pool -> FC",
)(partial(SpoererNet, lateral=False, steps=1))

spoerer_bl = register_model(
    "spoerer_bl",
    "Spoerer 2017 BL: B + lateral recurrence in each conv layer, unrolled over steps=4",
)(partial(SpoererNet, lateral=True, steps=4))

spoerer_bk = register_model(
    "spoerer_bk",
    "Spoerer 2017 B-K: bottom-up, kernels enlarged to BL's parameter count ((9, 5) on grey)",
)(partial(SpoererNet, lateral=False, steps=1, kernels=()))

spoerer_bf = register_model(
    "spoerer_bf",
    "Spoerer 2017 B-F: bottom-up 3x3, feature maps widened to BL's parameter count ((58, 53) on grey)",
)(partial(SpoererNet, lateral=False, steps=1, channels=()))


# ---------------------------------------------------------------------------------------------
# Shi et al. (2015): a ConvLSTM in the stem, and its feed-forward twin


def conv_lstm_params(in_channels: int, channels: int, hidden: int, kernel_size: int, *, recurrent: bool,
                     batch_norm: bool, num_classes: int) -> int:
    """Trainable parameters of a :class:`ConvLSTMNet`, counted without building it.

    Stem: ``in * channels * 9`` plus BatchNorm's ``2 * channels`` (or a bias). Recurrent cell: the
    input convolution to four gates with biases, ``(channels * k^2 + 1) * 4 * hidden``, and the
    hidden one, ``hidden * k^2 * 4 * hidden``; the feed-forward cell has three gates and no hidden
    convolution. Readout: ``(hidden + 1) * num_classes``.
    """
    stem = in_channels * channels * 9 + (2 * channels if batch_norm else channels)
    gates = 4 if recurrent else 3
    cell = (channels * kernel_size ** 2 + 1) * gates * hidden
    if recurrent:
        cell += hidden * kernel_size ** 2 * 4 * hidden
    return stem + cell + (hidden + 1) * num_classes


def matched_gated_width(in_channels: int = 1, batch_norm: bool = True, num_classes: int = 10) -> int:
    """``conv_lstm_ff``'s width: the one whose gated conv gives ``conv_lstm``'s parameter count (85 on grey).

    One more map adds ``3 * (32 * 9 + 1) + num_classes`` parameters, so the rounded width is
    within half of that, about 0.6% of ``conv_lstm``'s 74,538.
    """
    d = CONV_LSTM_DEFAULTS
    target = conv_lstm_params(in_channels, d["channels"], d["hidden"], d["kernel_size"], recurrent=True,
                              batch_norm=batch_norm, num_classes=num_classes)
    fixed = conv_lstm_params(in_channels, d["channels"], 0, d["kernel_size"], recurrent=False,
                             batch_norm=batch_norm, num_classes=num_classes)  # stem + readout bias
    per_map = 3 * (d["channels"] * d["kernel_size"] ** 2 + 1) + num_classes
    return max(1, round((target - fixed) / per_map))


class ConvLSTMCell(nn.Module):
    """Shi et al. (2015)'s ConvLSTM cell, without peepholes, for an input that does not change over steps.

    ``gates = W_x * x + W_h * h[t-1] + b`` (four gates, each ``hidden`` maps); ``c[t] = f * c[t-1] +
    i * g``; ``h[t] = o * tanh(c[t])``, with ``i, f, o`` sigmoids and ``g`` a tanh. With
    ``recurrent = False`` the cell is its own first step from a zero state, ``h = o * tanh(i * g)``
    (no forget gate, no ``W_h``): a gated convolution.

    Parameters
    ----------
    in_channels, hidden, kernel_size : int
        Input maps, hidden maps, odd kernel of both convolutions.
    recurrent : bool
        The full cell, or the feed-forward gated convolution.
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int, *, recurrent: bool = True) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.hidden = hidden
        self.input_conv = nn.Conv2d(in_channels, (4 if recurrent else 3) * hidden, kernel_size, padding=pad)
        self.hidden_conv = (nn.Conv2d(hidden, 4 * hidden, kernel_size, padding=pad, bias=False)
                            if recurrent else None)

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """The hidden state ``(B, hidden, H, W)`` after ``steps`` steps reading ``x (B, C, H, W)``."""
        drive = self.input_conv(x)  # (B, gates * hidden, H, W): the input is the same at every step
        if self.hidden_conv is None:
            i, g, o = drive.chunk(3, dim=1)
            return torch.sigmoid(o) * torch.tanh(torch.sigmoid(i) * torch.tanh(g))
        h = c = None
        for _ in range(steps):
            gates = drive if h is None else drive + self.hidden_conv(h)
            i, f, g, o = gates.chunk(4, dim=1)
            ig = torch.sigmoid(i) * torch.tanh(g)
            c = ig if c is None else torch.sigmoid(f) * c + ig  # c[0] = 0: the forget gate acts from step 2
            h = torch.sigmoid(o) * torch.tanh(c)
        return h


class ConvLSTMNet(ImageClassifier):
    """A conv stem, then a ConvLSTM cell unrolled over the stem's map: recurrence inside the stem.

    ``images -> Conv3x3(channels) -> [BN] -> ReLU -> MaxPool2 -> ConvLSTMCell(hidden, k) x steps
    -> global average pool -> dropout -> FC``. Features are the pooled hidden state at the last
    step, ``feature_dim = hidden``. Registered as ``conv_lstm``; ``conv_lstm_ff`` (``recurrent =
    False``) replaces the cell by its one-step, gated-convolution form, ``hidden = 0`` picking the
    width matched to ``conv_lstm``'s parameters (:func:`matched_gated_width`).

    Parameters
    ----------
    num_classes, image_size, in_channels : int
        Output logits; side of the square input (at least 2); its channels.
    channels : int
        Stem feature maps.
    hidden : int
        Hidden maps of the cell (``0``: matched, for the feed-forward cell only).
    kernel_size : int
        Odd kernel of the cell's convolutions.
    steps : int
        Steps the cell is unrolled over (1 for the feed-forward cell; with 1 the recurrent cell's
        hidden convolution is unused). The attribute may be lowered after building.
    recurrent : bool
        ConvLSTM cell, or the feed-forward gated convolution.
    batch_norm : bool
        BatchNorm in the stem (else a conv bias).
    dropout : float
        Dropout on the pooled features.
    """

    def __init__(self, *, num_classes: int = 10, image_size: int = 28, in_channels: int = 1, channels: int = 32,
                 hidden: int = 32, kernel_size: int = 3, steps: int = 4, recurrent: bool = True,
                 batch_norm: bool = True, dropout: float = 0.0) -> None:
        check_positive("in_channels", in_channels)
        check_positive("num_classes", num_classes)
        _check_kernels((kernel_size,))
        _check_steps(steps)
        _check_image_size(image_size, 1)
        if hidden == 0 and not recurrent:
            hidden = matched_gated_width(in_channels, batch_norm, num_classes)
        if not recurrent and steps != 1:
            raise ConfigError(f"invalid steps {steps}: the feed-forward cell (recurrent false) runs one step")
        super().__init__(num_classes, check_positive("hidden", hidden))
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, check_positive("channels", channels), 3, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(channels) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.cell = ConvLSTMCell(channels, hidden, kernel_size, recurrent=recurrent)
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.steps = steps
        channels_last_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> the pooled hidden state at the last step ``(B, hidden)``."""
        h = self.cell(self.stem(x), self.steps)  # (B, hidden, H/2, W/2)
        return self.dropout(h.mean(dim=(2, 3)))


conv_lstm = register_model(
    "conv_lstm",
    "Shi 2015 ConvLSTM in the stem: Conv 32 -> pool -> ConvLSTM(32, 3x3) x 4 steps -> avg pool -> FC",
)(partial(ConvLSTMNet, recurrent=True, steps=4))

conv_lstm_ff = register_model(
    "conv_lstm_ff",
    "conv_lstm's feed-forward twin: the cell's one-step gated conv, widened to its parameters (85 maps)",
)(partial(ConvLSTMNet, recurrent=False, steps=1, hidden=0))
