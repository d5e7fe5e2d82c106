"""An ``.npz`` file of arrays as a dataset.

Keys: ``x_train``, ``y_train``, ``x_test``, ``y_test`` (required) and ``classes`` (optional, one
string per class) and ``flip_preserves_labels`` (optional boolean scalar, true when absent).

- Images are ``(N, H, W)`` greyscale or ``(N, H, W, C)`` with C = 1 or 3, square; uint8, or
  float in ``[0, 1]`` (scaled by 255 and rounded to uint8; any value outside is refused).
- Labels are integers in ``0 .. K-1``; K is ``len(classes)`` when given, else ``max label + 1``.
- Loaded with ``allow_pickle=False``: an ``.npz`` holding Python objects is refused, never run.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cnnlstm.data.dataset import Dataset, validate_arrays
from cnnlstm.errors import DatasetError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def _images(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]  # (N, H, W, 1) -> (N, H, W)
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0):
            raise DatasetError(f"{what}: float images must lie in [0, 1]")
        return np.round(arr * 255.0).astype(np.uint8)
    raise DatasetError(f"{what}: images are {arr.dtype}; expected uint8 or float in [0, 1]")


def _labels(arr: np.ndarray, what: str) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(f"{what}: labels are {arr.dtype}; expected integers")
    return arr.astype(np.int64)


def load_npz(path: str | Path) -> Dataset:
    """Load a dataset from an ``.npz`` file (see the module docstring for its keys).

    Raises
    ------
    DatasetError
        Missing file or key, arrays of the wrong kind, or labels outside ``classes``.
    """
    path = Path(path).expanduser().resolve()
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED if k not in npz.files]
            if missing:
                raise DatasetError(f"{path}: missing array {missing[0]!r}; an .npz dataset needs "
                                   f"{', '.join(REQUIRED)} (and optionally classes)")
            raw = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from exc
    arrays = {"train_images": _images(raw["x_train"], f"{path} x_train"),
              "train_labels": _labels(raw["y_train"], f"{path} y_train"),
              "test_images": _images(raw["x_test"], f"{path} x_test"),
              "test_labels": _labels(raw["y_test"], f"{path} y_test")}
    if "classes" in raw:
        classes = tuple(str(c) for c in np.asarray(raw["classes"]).reshape(-1))
    else:
        top = int(max(arrays["train_labels"].max(initial=0), arrays["test_labels"].max(initial=0)))
        classes = tuple(f"class {i}" for i in range(top + 1))
    if len(classes) < 2:
        raise DatasetError(f"{path}: {len(classes)} class; a classifier needs at least 2")
    validate_arrays(arrays, str(path), len(classes))
    flip = raw.get("flip_preserves_labels")
    return Dataset(classes=classes, source=str(path), verified=False, name=str(path),
                   flip_preserves_labels=True if flip is None else bool(np.asarray(flip).item()), **arrays)
