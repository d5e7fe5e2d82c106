"""``--data SPEC``: one name for every dataset source, and the one function that loads it.

A spec is one of

- ``fashion-mnist`` (the default), ``mnist``, ``kmnist``: an IDX family
  (:mod:`cnnlstm.data.sources`), found, verified and cached as Fashion-MNIST always was;
- a path ending in ``.npz``: arrays (:mod:`cnnlstm.data.npz`);
- a path to a folder: image files in class folders (:mod:`cnnlstm.data.folders`).

A run folder records the spec (``config.json``'s ``data``) and the arrays' checksum
(``dataset.json``), so a run evaluated on other data fails in one line instead of mixing them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from cnnlstm.data.dataset import Dataset
from cnnlstm.data.sources import IDX_FAMILIES, load_dataset
from cnnlstm.errors import DatasetError

DEFAULT_SPEC = "fashion-mnist"


def spec_kind(spec: str) -> str:
    """``"idx"``, ``"npz"`` or ``"folder"`` for a data spec; anything else is a :class:`DatasetError`."""
    if spec in IDX_FAMILIES:
        return "idx"
    path = Path(spec).expanduser()
    if spec.endswith(".npz"):
        if not path.is_file():
            raise DatasetError(f"--data {spec}: no such .npz file")
        return "npz"
    if path.is_dir():
        return "folder"
    raise DatasetError(f"--data {spec}: not a dataset name ({', '.join(IDX_FAMILIES)}), "
                       "an .npz file or a folder of class folders")


def canonical_spec(spec: str) -> str:
    """The spec as recorded: names as given, paths resolved (so a run names its data exactly)."""
    return spec if spec_kind(spec) == "idx" else str(Path(spec).expanduser().resolve())


def load_data(spec: str = DEFAULT_SPEC, *, data_dir: str | os.PathLike | None = None, download: bool = True,
              verify: bool = True, image_size: int = 0, use_cache: bool = True,
              progress: Callable[[str, int, int], None] | None = None) -> Dataset:
    """Load the dataset a data spec names.

    Parameters
    ----------
    spec : str
        ``fashion-mnist``, ``mnist``, ``kmnist``, a ``.npz`` path or an image folder.
    data_dir, download, verify, progress
        For the IDX family: where its files are, whether to download them, whether to require the
        published checksums, and a download progress callback (see :func:`load_dataset`).
    image_size : int
        Image folders only: the square side every image is resized to (0 = their own size).
    use_cache : bool
        Read and write the decoded array cache (IDX families and image folders).

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        An unknown spec, missing data, or data that breaks its source's rules.

    Examples
    --------
    >>> ds = load_data("fashion-mnist", download=False)  # doctest: +SKIP
    >>> ds = load_data("~/photos/pets", image_size=32)  # doctest: +SKIP
    >>> ds.channels, ds.image_size, ds.classes  # doctest: +SKIP
    (3, 32, ('cat', 'dog'))
    """
    kind = spec_kind(spec)
    if kind != "folder" and image_size:
        raise DatasetError(f"image_size is for image folders; {spec} has its own size")
    if kind == "idx":
        return load_dataset(data_dir, download=download, verify=verify, use_cache=use_cache, progress=progress,
                            name=spec)
    if data_dir is not None:
        raise DatasetError(f"--data-dir is for the IDX datasets; {spec} is a path already")
    if kind == "npz":
        from cnnlstm.data.npz import load_npz

        return load_npz(spec)
    from cnnlstm.data.folders import load_image_folder

    return load_image_folder(spec, image_size=image_size, use_cache=use_cache)
