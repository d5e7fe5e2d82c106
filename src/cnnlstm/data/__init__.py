"""The data layer: where images come from and what is done to them before a model sees them.

- :mod:`~cnnlstm.data.idx`: IDX files, read and validated;
- :mod:`~cnnlstm.data.sources`: finding, verifying (SHA-256), caching and downloading a dataset;
- :mod:`~cnnlstm.data.splits`: the seeded stratified validation split, uint8 -> normalised tensor;
- :mod:`~cnnlstm.data.augment`: batched flips, shifts and erasing on the training device;
- :mod:`~cnnlstm.data.corruptions`: the 15 Fashion-MNIST-C corruptions;
- :mod:`~cnnlstm.data.dataset_stats`, :mod:`~cnnlstm.data.audit`: statistics and the duplicate audit.

The data layer imports nothing of the package but :mod:`cnnlstm.errors` and :mod:`cnnlstm.fileio`.
"""

from cnnlstm.data.sources import FASHION_CLASSES, Dataset, load_dataset
from cnnlstm.data.splits import PIXEL_MEAN, PIXEL_STD, stratified_split, to_tensor

__all__ = ["FASHION_CLASSES", "PIXEL_MEAN", "PIXEL_STD", "Dataset", "load_dataset", "stratified_split", "to_tensor"]
