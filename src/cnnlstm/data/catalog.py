"""``--data SPEC``: one name for every dataset source, and the one function that loads it.

A spec is one of

- ``fashion-mnist`` (the default), ``mnist``, ``kmnist``: an IDX family
  (:mod:`cnnlstm.data.sources`), found, verified and cached as Fashion-MNIST always was;
- ``debris``, ``debris:N``, ``pathfinder``, ``pathfinder:L``: a synthetic task, generated from
  fixed seeds and cached (:mod:`cnnlstm.data.synthetic`); recorded by its canonical name
  (``debris:50``, ``pathfinder:14``);
- a path ending in ``.npz``: arrays (:mod:`cnnlstm.data.npz`);
- a path to a folder: image files in class folders (:mod:`cnnlstm.data.folders`).

Names win over paths: a folder called ``debris`` is read as ``./debris``. A run folder records
the spec (``config.json``'s ``data``) and the arrays' checksum (``dataset.json``), so a run
evaluated on other data fails in one line instead of mixing them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from cnnlstm.data.dataset import Dataset
from cnnlstm.data.sources import IDX_FAMILIES, load_dataset
from cnnlstm.data.synthetic import is_synthetic, load_synthetic, parse_spec
from cnnlstm.errors import DatasetError

DEFAULT_SPEC = "fashion-mnist"


def spec_kind(spec: str) -> str:
    """``"idx"``, ``"synthetic"``, ``"npz"`` or ``"folder"`` for a data spec.

    Anything else is a :class:`DatasetError`; so is a synthetic spec with a bad parameter
    (``debris:-1``, ``pathfinder:0``), in one line.
    """
    if spec in IDX_FAMILIES:
        return "idx"
    if is_synthetic(spec):
        parse_spec(spec)
        return "synthetic"
    path = Path(spec).expanduser()
    if spec.endswith(".npz"):
        if not path.is_file():
            raise DatasetError(f"--data {spec}: no such .npz file")
        return "npz"
    if path.is_dir():
        return "folder"
    raise DatasetError(f"--data {spec}: not a dataset name ({', '.join(IDX_FAMILIES)}), a synthetic task "
                       "(debris[:N], pathfinder[:L]), an .npz file or a folder of class folders")


def canonical_spec(spec: str) -> str:
    """The spec as recorded: IDX names as given, synthetic names in full (``debris`` -> ``debris:50``),
    paths resolved (so a run names its data exactly)."""
    kind = spec_kind(spec)
    if kind == "idx":
        return spec
    if kind == "synthetic":
        return parse_spec(spec).name
    return str(Path(spec).expanduser().resolve())


def load_data(spec: str = DEFAULT_SPEC, *, data_dir: str | os.PathLike | None = None, download: bool = True,
              verify: bool = True, image_size: int = 0, use_cache: bool = True,
              progress: Callable[[str, int, int], None] | None = None) -> Dataset:
    """Load the dataset a data spec names.

    Parameters
    ----------
    spec : str
        ``fashion-mnist``, ``mnist``, ``kmnist``, ``debris[:N]``, ``pathfinder[:L]``, a ``.npz``
        path or an image folder.
    data_dir, download, verify
        For the IDX family: where its files are, whether to download them, whether to require the
        published checksums (see :func:`load_dataset`).
    image_size : int
        Image folders only: the square side every image is resized to (0 = their own size).
    use_cache : bool
        Read and write the decoded (or generated) array cache (IDX families, synthetic tasks and
        image folders).
    progress : callable, optional
        ``progress(label, done, total)``: download progress for the IDX family, generation
        progress (images) for a synthetic task.

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
    if kind == "synthetic":
        if data_dir is not None:
            raise DatasetError(f"--data-dir is for the IDX datasets; {spec} is generated")
        return load_synthetic(spec, use_cache=use_cache, progress=progress)
    if data_dir is not None:
        raise DatasetError(f"--data-dir is for the IDX datasets; {spec} is a path already")
    if kind == "npz":
        from cnnlstm.data.npz import load_npz

        return load_npz(spec)
    from cnnlstm.data.folders import load_image_folder

    return load_image_folder(spec, image_size=image_size, use_cache=use_cache)
