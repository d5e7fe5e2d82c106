"""Tests for cnnlstm.data.splits: the seeded stratified split and the normalised tensor."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlstm.data import splits as data
from cnnlstm.errors import DatasetError


@pytest.mark.parametrize("seed", [0, 1])
def test_stratified_split(seed):
    labels = np.repeat(np.arange(10), 100)
    tr, va = data.stratified_split(labels, 150, seed)
    assert len(va) == 150 and len(tr) == 850 and not set(tr) & set(va)
    counts = np.bincount(labels[va], minlength=10)
    assert counts.max() - counts.min() <= 1
    tr2, va2 = data.stratified_split(labels, 150, seed)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, data.stratified_split(labels, 150, seed + 7)[1])


def test_split_rejects_bad_size():
    with pytest.raises(DatasetError):
        data.stratified_split(np.zeros(10, int), 10, 0)


def test_to_tensor_normalises():
    import torch

    x = data.to_tensor(np.full((2, 28, 28), 255, np.uint8), norm=data.FASHION_NORM)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, (1 - data.PIXEL_MEAN) / data.PIXEL_STD))
