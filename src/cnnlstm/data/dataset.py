"""The in-memory dataset every source produces, and its normalisation.

Whatever the source (an IDX family such as Fashion-MNIST, a folder of image files, an ``.npz``
file), loading ends in one :class:`Dataset`: four uint8/int64 arrays plus what the rest of the
package needs to know about them (class names, channels, size, whether a horizontal flip keeps
a label, a checksum that identifies the arrays, and the per-channel mean and std of the training
images).

Image layout: ``(N, H, W)`` for greyscale, ``(N, H, W, C)`` for colour, the layout Pillow and
numpy use; :func:`cnnlstm.data.splits.to_tensor` turns either into ``(N, C, H, W)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cnnlstm.errors import DatasetError

#: Rounding of the normalisation statistics: 4 decimals reproduce Fashion-MNIST's customary
#: (0.2860, 0.3530), computed over its 60,000 training images.
STATS_DECIMALS = 4
_STATS_CHUNK = 4096  # images per chunk when summing (bounded memory for large colour sets)


@dataclass(frozen=True)
class Norm:
    """Per-channel normalisation ``(pixel / 255 - mean) / std``.

    Attributes
    ----------
    mean, std : tuple of float
        One value per channel, on the ``[0, 1]`` pixel scale.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return len(self.mean)

    @property
    def black(self) -> tuple[float, ...]:
        """A black pixel (0) after this normalisation, per channel."""
        return tuple((0.0 - m) / s for m, s in zip(self.mean, self.std))

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Norm":
        return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))


#: Fashion-MNIST's statistics (training split, per channel).
FASHION_NORM = Norm((0.2860,), (0.3530,))


def channel_stats(images: np.ndarray) -> Norm:
    """Mean and std of each channel of uint8 images ``(N, H, W)`` or ``(N, H, W, C)``.

    Summed in float64 over chunks, then rounded to :data:`STATS_DECIMALS` decimals, so that the
    same images always give the same numbers and Fashion-MNIST gives its customary ones.
    """
    flat = images.reshape(len(images), -1, 1) if images.ndim == 3 else images.reshape(len(images), -1,
                                                                                     images.shape[-1])
    total = np.zeros(flat.shape[-1])
    total_sq = np.zeros(flat.shape[-1])
    for start in range(0, len(flat), _STATS_CHUNK):
        chunk = flat[start:start + _STATS_CHUNK].astype(np.float64) / 255.0  # (n, pixels, C)
        total += chunk.sum(axis=(0, 1))
        total_sq += np.square(chunk).sum(axis=(0, 1))
    count = flat.shape[0] * flat.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)  # a constant channel: normalise by 1, never divide by 0
    return Norm(tuple(round(float(m), STATS_DECIMALS) for m in mean),
                tuple(round(float(s), STATS_DECIMALS) for s in std))


def arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the four arrays' keys, dtypes, shapes and bytes: the identity of a dataset."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{arr.dtype.str}:{arr.shape}\n".encode())
        digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """The four arrays of an image-classification dataset and where they came from.

    Attributes
    ----------
    train_images, test_images : np.ndarray
        uint8 arrays of shape ``(N, H, W)`` (greyscale) or ``(N, H, W, C)`` (colour), square.
    train_labels, test_labels : np.ndarray
        int64 arrays of shape (N,), values in ``range(len(classes))``.
    classes : tuple of str
        Class names, index = label.
    source : str
        Where the arrays were read from (``"<folder> (cache)"`` when from the array cache).
    verified : bool
        True when every file matched the published checksums of the named dataset.
    name : str
        The data spec the dataset was loaded by: ``fashion-mnist``, ``mnist``, ``kmnist``, an
        image folder's path or an ``.npz`` path.
    flip_preserves_labels : bool
        Whether a horizontal flip keeps every label (True for clothes, False for digits and
        characters). Training drops horizontal flips where it is False.
    split : str
        How the train/test split was made when the source did not give one ("" when it did).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    source: str
    verified: bool
    name: str = "fashion-mnist"
    flip_preserves_labels: bool = True
    split: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        """1 for greyscale ``(N, H, W)`` images, else the last axis of ``(N, H, W, C)``."""
        return 1 if self.train_images.ndim == 3 else int(self.train_images.shape[-1])

    @property
    def image_size(self) -> int:
        """Side of the square images."""
        return int(self.train_images.shape[1])

    @cached_property
    def checksum(self) -> str:
        """:func:`arrays_checksum` of the four arrays (about 0.1 s for Fashion-MNIST)."""
        return arrays_checksum(self.arrays())

    @cached_property
    def norm(self) -> Norm:
        """Per-channel statistics of the training images (:func:`channel_stats`)."""
        return channel_stats(self.train_images)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"train_images": self.train_images, "train_labels": self.train_labels,
                "test_images": self.test_images, "test_labels": self.test_labels}

    def describe(self) -> dict:
        """What a run folder records of its dataset (``dataset.json``)."""
        return {"name": self.name, "source": self.source, "verified": self.verified, "checksum": self.checksum,
                "classes": list(self.classes), "channels": self.channels, "image_size": self.image_size,
                "n_train": int(len(self.train_labels)), "n_test": int(len(self.test_labels)),
                "flip_preserves_labels": self.flip_preserves_labels, "split": self.split,
                "norm": self.norm.to_dict()}


def validate_arrays(arrays: dict[str, np.ndarray], source: str, n_classes: int) -> None:
    """Check shapes, dtypes, image/label counts, square images and labels in ``[0, n_classes)``."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim not in (3, 4):
            raise DatasetError(f"{source}: {split} images have {images.ndim} dimensions, "
                               "expected 3 (N, H, W) or 4 (N, H, W, C)")
        if images.ndim == 4 and images.shape[-1] not in (1, 3):
            raise DatasetError(f"{source}: {split} images have {images.shape[-1]} channels, expected 1 or 3")
        if labels.ndim != 1:
            raise DatasetError(f"{source}: {split} labels have {labels.ndim} dimensions, expected 1")
        if images.dtype != np.uint8:
            raise DatasetError(f"{source}: {split} images are {images.dtype}, expected uint8")
        if len(images) != len(labels):
            raise DatasetError(f"{source}: {split} has {len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise DatasetError(f"{source}: {split} split is empty")
        if images.shape[1] != images.shape[2]:
            raise DatasetError(f"{source}: {split} images are {images.shape[1]}x{images.shape[2]}; "
                               "the models read square images (an image folder is resized with --image-size)")
        bad = (labels < 0) | (labels >= n_classes)
        if bad.any():
            raise DatasetError(
                f"{source}: {split} label {int(labels[bad][0])} out of range 0..{n_classes - 1} "
                "(a dataset with more classes needs its class names: a classes.txt beside IDX files)"
            )
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DatasetError(f"{source}: train and test images differ in size or channels")
