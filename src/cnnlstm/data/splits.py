"""Splits of the arrays and their tensors: the seeded stratified validation split, uint8 -> normalised tensor."""

from __future__ import annotations

import numpy as np

from cnnlstm.data.dataset import FASHION_NORM, Norm
from cnnlstm.errors import DatasetError

# Fashion-MNIST train-set pixel statistics after /255 (reference.md); other datasets carry their
# own (Dataset.norm), and a run folder records the ones it trained with.
PIXEL_MEAN, PIXEL_STD = FASHION_NORM.mean[0], FASHION_NORM.std[0]



def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, validation), keeping each class's share in the validation set.

    Parameters
    ----------
    labels : np.ndarray
        Training labels, shape (N,).
    val_size : int
        Number of validation images (0 gives an empty validation set).
    seed : int
        Seed of the split; the same seed always gives the same split.

    Returns
    -------
    (np.ndarray, np.ndarray)
        Sorted int64 index arrays, disjoint, together covering ``range(N)``.
    """
    n = len(labels)
    if not 0 <= val_size < n:
        raise DatasetError(f"validation size {val_size} must be in [0, {n})")
    if val_size == 0:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder allocation so the per-class quotas sum exactly to val_size.
    quota = counts * val_size / n
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: val_size - take.sum()]:
        take[i] += 1
    val = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    train_mask = np.ones(n, dtype=bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask).astype(np.int64), val_idx


def nested_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Positions of a stratified, seeded subset of ``size`` of ``labels``; subsets of one seed nest.

    Every image gets the key ``(rank within its class + u) / class count`` for a random rank and
    ``u ~ U(0, 1)``, both drawn from ``seed``; the subset is the ``size`` smallest keys. A class
    of share ``p`` then has ``size * p`` images to within one, and because the order does not
    depend on ``size``, the subset of 1,000 lies inside the one of 6,000 for the same seed (a
    largest-remainder quota per size would not nest: its quotas can shrink as the size grows).

    Parameters
    ----------
    labels : np.ndarray
        ``(N,)`` labels of the images to choose from.
    size : int
        Images to keep, ``1 <= size <= N``.
    seed : int

    Returns
    -------
    np.ndarray
        Sorted int64 positions into ``labels``.
    """
    n = len(labels)
    if not 1 <= size <= n:
        raise DatasetError(f"a training subset of {size} images needs 1 to {n} (the training split's size)")
    rng = np.random.default_rng(seed)
    keys = np.empty(n)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        ranks = rng.permutation(len(members))
        keys[members] = (ranks + rng.random(len(members))) / len(members)
    return np.sort(np.argsort(keys, kind="stable")[:size]).astype(np.int64)


def sample_indices(n: int, samples: int | None, seed: int) -> np.ndarray | None:
    """Sorted seeded random indices of ``samples`` of ``n`` points, or None for all of them.

    Parameters
    ----------
    n : int
        Number of points available.
    samples : int or None
        None (or >= n) keeps every point.
    seed : int

    Returns
    -------
    np.ndarray or None
        int64 indices, or None meaning ``range(n)``.
    """
    if samples is None or samples >= n:
        return None
    if samples < 1:
        raise DatasetError(f"samples must be >= 1, got {samples}")
    return np.sort(np.random.default_rng(seed).choice(n, size=samples, replace=False)).astype(np.int64)


def black_image(norm: Norm, device="cpu"):
    """``(1, C, 1, 1)`` float32: a black pixel (0) after ``norm``, broadcastable over a batch."""
    import torch

    return torch.tensor(norm.black, dtype=torch.float32, device=device).view(1, -1, 1, 1)


def to_tensor(images: np.ndarray, device="cpu", dtype=None, *, norm: Norm):
    """uint8 ``(N, H, W)`` or ``(N, H, W, C)`` -> normalised float tensor ``(N, C, H, W)`` on ``device``.

    ``norm`` is the training data's per-channel statistics (``Dataset.norm``, or the ones a run
    folder recorded), required so that no caller normalises with another dataset's numbers.
    Normalising once, on the training device, is what lets the training loop slice batches out of
    one tensor instead of running a per-sample Dataset with worker processes.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    if x.shape[1] != norm.channels:
        raise DatasetError(f"images have {x.shape[1]} channels but the normalisation has {norm.channels}")
    x = x.to(dtype or torch.float32).div_(255.0)
    if norm.channels == 1:  # Python scalars: bit-identical to the tensors of every earlier run
        return x.sub_(norm.mean[0]).div_(norm.std[0])
    shape = (1, norm.channels, 1, 1)
    mean = torch.tensor(norm.mean, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(norm.std, dtype=x.dtype, device=x.device).view(shape)
    return x.sub_(mean).div_(std)
