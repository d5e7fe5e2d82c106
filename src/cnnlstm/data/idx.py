"""IDX files (the MNIST family's format): reading, decompressing and validating the header.

Every malformed file becomes one :class:`~cnnlstm.errors.DatasetError` naming it; the fuzz tests
feed this reader random bytes.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from cnnlstm.errors import DatasetError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_file_bytes(path: Path) -> bytes:
    """Read a raw or gzip-compressed file, mapping any failure to a :class:`DatasetError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path}: damaged gzip data ({exc})") from exc
    if path.suffix == ".gz":
        raise DatasetError(f"{path}: named .gz but is not gzip-compressed")
    return raw


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array, validating the header against the payload size.

    Parameters
    ----------
    data : bytes
        The decompressed IDX file.
    name : str
        Used in error messages.

    Returns
    -------
    np.ndarray
        Array of the declared shape and dtype (native byte order).

    Raises
    ------
    DatasetError
        Empty file, bad magic, unknown type code, payload shorter or longer than declared.
    """
    if len(data) < 4:
        raise DatasetError(f"{name}: file is empty or too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{name}: not an IDX file (bad magic number 0x{data[:4].hex()})")
    ndim = data[3]
    if ndim == 0:
        raise DatasetError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{name}: truncated IDX header ({len(data)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: no overflow on absurd headers
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetError(
            f"{name}: payload {kind}: header declares shape {shape} ({expected} bytes), file has {len(data)}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a ``.gz`` or raw IDX file into a numpy array.

    Examples
    --------
    >>> images = load_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape
    (10000, 28, 28)
    """
    path = Path(path)
    return parse_idx(read_file_bytes(path), name=str(path))


# --------------------------------------------------------------------------- sources


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """Return ``folder/stem.gz`` or ``folder/stem`` (also the ``stem.idx3-ubyte`` spelling)."""
    for candidate in (f"{stem}.gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        p = folder / candidate
        if p.is_file():
            return p
    return None
