"""Batched data augmentation on whatever device the batch lives on.

The training set stays one tensor on the training device and each mini-batch ``(B, C, H, W)`` is
augmented there, all samples at once (no Python loop over samples, no worker processes).

Randomness always comes from an explicit ``torch.Generator``, never from torch's global RNG, so
the same generator state gives the same augmented batch. The random numbers are drawn on the
generator's own device (a CPU generator can serve a CUDA batch: the few per-sample numbers are
drawn on the CPU and moved) -- torch requires a generator to live on the device it samples on.

No function modifies its input in place; one that has nothing to do (probability 0, shift 0)
returns the input tensor itself and draws no random numbers.

Pixel values are whatever the batch holds (normally normalised); ``fill`` / ``value`` arguments
are in those same units, e.g. ``(0 - mean) / std`` to pad with the images' black background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlstm.errors import ConfigError

__all__ = [
    "Augment",
    "augment_batch",
    "flip_tta_views",
    "random_erase",
    "random_flip",
    "random_shift",
    "translate",
]


# ---------------------------------------------------------------------------------------------
# random numbers: drawn on the generator's device, returned on the batch's device


def _rand(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` uniform numbers in ``[0, 1)`` from ``generator``, on ``device``."""
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def _randint(low: int, high: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` integers uniform in ``[low, high]`` (both inclusive) from ``generator``, on ``device``."""
    return torch.randint(low, high + 1, (n,), generator=generator, device=generator.device).to(device)


def _check_probability(key: str, p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ConfigError(f"invalid {key} {p!r}; valid: a probability in [0, 1]")
    return float(p)


def _check_shift(max_shift: int) -> int:
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ConfigError(f"invalid shift {max_shift!r}; valid: an integer number of pixels >= 0")
    return max_shift


# ---------------------------------------------------------------------------------------------
# the transforms


def random_flip(x: torch.Tensor, p_h: float, p_v: float, generator: torch.Generator) -> torch.Tensor:
    """Flip each sample left-right with probability ``p_h`` and up-down with ``p_v``, independently.

    Parameters
    ----------
    x : Tensor
        Batch ``(B, C, H, W)``.
    p_h, p_v : float
        Per-sample probabilities of a horizontal (last axis) and a vertical (second-last axis)
        flip. A probability of 0 draws no random numbers.
    generator : torch.Generator
        Source of randomness.

    Returns
    -------
    Tensor
        The flipped batch, same shape (``x`` itself when both probabilities are 0).
    """
    p_h, p_v = _check_probability("flip_h", p_h), _check_probability("flip_v", p_v)
    for p, dim in ((p_h, -1), (p_v, -2)):
        if p > 0:
            flip = (_rand(x.shape[0], generator, x.device) < p).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
            x = torch.where(flip, x.flip(dim), x)
    return x


def translate(
    x: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    fill: float = 0.0,
    max_offset: int | None = None,
) -> torch.Tensor:
    """Move sample ``b`` down by ``dy[b]`` and right by ``dx[b]`` pixels, filling with ``fill``.

    ``out[b, :, i, j] = x[b, :, i - dy[b], j - dx[b]]`` where that pixel exists, else ``fill``.
    Vectorised: pad once by the largest offset, then gather rows and columns per sample.

    Parameters
    ----------
    x : Tensor
        Batch ``(B, C, H, W)``.
    dy, dx : Tensor
        Integer offsets ``(B,)`` on ``x``'s device; negative moves up / left.
    fill : float
        Value of the pixels moved in from outside.
    max_offset : int, optional
        A bound on ``|dy|`` and ``|dx|``; given, it saves reading the offsets back from the device.
    """
    b, c, h, w = x.shape
    if max_offset is None:
        max_offset = int(max(dy.abs().max().item(), dx.abs().max().item())) if b else 0
    s = min(max_offset, max(h, w))  # larger offsets only ever read fill
    if s == 0:
        return x
    padded = F.pad(x, (s, s, s, s), value=fill)  # (B, C, H+2s, W+2s)
    # source row / column in the padded image for every output row / column; clamping sends
    # offsets beyond the image to the padding (all fill)
    rows = (torch.arange(h, device=x.device) + s - dy.view(-1, 1)).clamp(0, h + 2 * s - 1)  # (B, H)
    cols = (torch.arange(w, device=x.device) + s - dx.view(-1, 1)).clamp(0, w + 2 * s - 1)  # (B, W)
    out = padded.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2 * s))  # (B, C, H, W+2s)
    return out.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))  # (B, C, H, W)


def random_shift(
    x: torch.Tensor, max_shift: int, generator: torch.Generator, fill: float = 0.0
) -> torch.Tensor:
    """Translate each sample by up to ``max_shift`` pixels on each axis (uniform integers).

    Pixels moved in from outside the image take the value ``fill``; ``max_shift=0`` returns ``x``
    and draws nothing. See :func:`translate`.
    """
    if _check_shift(max_shift) == 0:
        return x
    dy = _randint(-max_shift, max_shift, x.shape[0], generator, x.device)
    dx = _randint(-max_shift, max_shift, x.shape[0], generator, x.device)
    return translate(x, dy, dx, fill, max_offset=max_shift)


def random_erase(
    x: torch.Tensor,
    p: float,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.02, 0.25),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float | str = 0.0,
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020): per sample, with probability ``p``, blank a rectangle.

    Parameters
    ----------
    x : Tensor
        Batch ``(B, C, H, W)``.
    p : float
        Per-sample probability of erasing; 0 returns ``x`` and draws nothing.
    generator : torch.Generator
        Source of randomness.
    scale : (float, float)
        Range of the rectangle's area as a fraction of the image (uniform).
    ratio : (float, float)
        Range of the rectangle's height / width (log-uniform).
    value : float or "mean"
        What the rectangle is set to: a number, or ``"mean"`` for each sample's own mean.
    """
    p = _check_probability("erase", p)
    if not (isinstance(value, (int, float)) or value == "mean"):
        raise ConfigError(f"invalid erase value {value!r}; valid: a number or 'mean'")
    if p == 0:
        return x
    b, _, h, w = x.shape
    u = torch.rand(5, b, generator=generator, device=generator.device).to(x.device)  # 5 draws per sample
    area = (scale[0] + (scale[1] - scale[0]) * u[0]) * h * w
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[1]
    eh = torch.sqrt(area * log_r.exp()).round().clamp(1, h)  # (B,) rectangle heights
    ew = torch.sqrt(area / log_r.exp()).round().clamp(1, w)
    top = (u[2] * (h - eh + 1)).floor().view(b, 1, 1, 1)
    left = (u[3] * (w - ew + 1)).floor().view(b, 1, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    inside = (
        (rows >= top) & (rows < top + eh.view(b, 1, 1, 1))
        & (cols >= left) & (cols < left + ew.view(b, 1, 1, 1))
    )  # (B, 1, H, W)
    mask = inside & (u[4] < p).view(b, 1, 1, 1)
    if value == "mean":
        fill = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1): each sample's own mean
    elif isinstance(value, tuple):
        fill = torch.tensor(value, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    else:
        fill = torch.tensor(float(value), dtype=x.dtype, device=x.device)
    return torch.where(mask, fill, x)


# ---------------------------------------------------------------------------------------------
# the configured pipeline


@dataclass(frozen=True)
class Augment:
    """The training-time augmentations, applied in order flips -> shift -> erase.

    Attributes
    ----------
    flip_h, flip_v : float
        Per-sample probabilities of a horizontal / vertical flip (the plan's "random flip").
    shift : int
        Largest translation in pixels per axis (0 = off).
    erase : float
        Per-sample probability of random erasing (0 = off).
    fill : float or tuple of float
        Value for pixels shifted in and for erased rectangles, in the batch's (normalised) units;
        a tuple gives one value per channel.
    """

    flip_h: float = 0.0
    flip_v: float = 0.0
    shift: int = 0
    erase: float = 0.0
    fill: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        for key in ("flip_h", "flip_v", "erase"):
            _check_probability(key, getattr(self, key))
        _check_shift(self.shift)

    @property
    def enabled(self) -> bool:
        """False when every augmentation is off (then calling returns the batch untouched)."""
        return bool(self.flip_h or self.flip_v or self.shift or self.erase)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment batch ``x`` ``(B, C, H, W)`` with randomness from ``generator``."""
        if not self.enabled:
            return x  # fast path: no copy, no random draws
        if self.flip_h or self.flip_v:
            x = random_flip(x, self.flip_h, self.flip_v, generator)
        if self.shift and isinstance(self.fill, tuple):
            # per-channel fill: shift the offset from black with fill 0, then add black back
            black = torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
            x = random_shift(x - black, self.shift, generator, fill=0.0) + black
        elif self.shift:
            x = random_shift(x, self.shift, generator, fill=self.fill)
        if self.erase:
            x = random_erase(x, self.erase, generator, value=self.fill)
        return x


def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    flip_h: float = 0.0,
    flip_v: float = 0.0,
    shift: int = 0,
    erase: float = 0.0,
    fill: float = 0.0,
) -> torch.Tensor:
    """Functional form of :class:`Augment`: ``Augment(flip_h, ...)(x, generator)``."""
    return Augment(flip_h, flip_v, shift, erase, fill)(x, generator)


def flip_tta_views(x: torch.Tensor, p_h: float, p_v: float) -> list[torch.Tensor]:
    """Views for flip test-time augmentation: identity, plus each flip trained with.

    Returns ``[x]``, then ``x`` flipped left-right if ``p_h > 0``, then ``x`` flipped up-down if
    ``p_v > 0``. A model that never saw a flip in training is not shown one at test time.
    Deterministic: no randomness.
    """
    views = [x]
    if _check_probability("flip_h", p_h) > 0:
        views.append(x.flip(-1))
    if _check_probability("flip_v", p_v) > 0:
        views.append(x.flip(-2))
    return views
