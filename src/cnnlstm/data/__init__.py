"""The data layer: where images come from and what is done to them before a model sees them.

- :mod:`~cnnlstm.data.dataset`: the :class:`Dataset` every source returns, its normalisation;
- :mod:`~cnnlstm.data.catalog`: ``--data SPEC`` -> :func:`load_data`, whatever the source;
- :mod:`~cnnlstm.data.idx`: IDX files, read and validated;
- :mod:`~cnnlstm.data.sources`: the IDX family (Fashion-MNIST, MNIST, KMNIST): finding,
  verifying, caching and downloading;
- :mod:`~cnnlstm.data.folders`, :mod:`~cnnlstm.data.npz`: image folders (Pillow) and ``.npz`` arrays;
- :mod:`~cnnlstm.data.splits`: the seeded stratified validation split, uint8 -> normalised tensor;
- :mod:`~cnnlstm.data.augment`: batched flips, shifts and erasing on the training device;
- :mod:`~cnnlstm.data.corruptions`: the 15 Fashion-MNIST-C corruptions;
- :mod:`~cnnlstm.data.dataset_stats`, :mod:`~cnnlstm.data.audit`: statistics and the duplicate audit.

The data layer imports nothing of the package but :mod:`cnnlstm.errors` and :mod:`cnnlstm.fileio`.
"""

from cnnlstm.data.catalog import DEFAULT_SPEC, canonical_spec, load_data
from cnnlstm.data.dataset import FASHION_NORM, Dataset, Norm
from cnnlstm.data.sources import FASHION_CLASSES, load_dataset
from cnnlstm.data.splits import PIXEL_MEAN, PIXEL_STD, stratified_split, to_tensor

__all__ = ["DEFAULT_SPEC", "FASHION_CLASSES", "FASHION_NORM", "PIXEL_MEAN", "PIXEL_STD", "Dataset", "Norm",
           "canonical_spec", "load_data", "load_dataset", "stratified_split", "to_tensor"]
