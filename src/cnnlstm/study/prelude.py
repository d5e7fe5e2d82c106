"""Opening a finished run for evaluation: the one prelude every driver calls.

Evaluating, embedding, corrupting and explaining a run all start the same way: read its
``config.json``, check that the dataset in hand is the one it trained on, pick the device, apply
the run's test limit and load its weights. :func:`open_run` does those five steps, in that order,
so a driver cannot skip the dataset check or load weights onto the wrong device.

Locking is the caller's: each driver wraps its whole step (the prelude and the writes) in
:func:`cnnlstm.fileio.run_lock`, so no second process writes the folder between the two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlstm.config import TrainConfig
from cnnlstm.data import Dataset, Norm, to_tensor
from cnnlstm.data.sources import IDX_FAMILIES
from cnnlstm.device import resolve_device
from cnnlstm.errors import ConfigError, RunError
from cnnlstm.runs import DATASET_FILE, load_run_config, load_run_model, read_run_dataset


@dataclass(frozen=True)
class OpenRun:
    """A finished run, opened for evaluation on the dataset it trained on.

    Attributes
    ----------
    path : Path
        The run folder.
    config : TrainConfig
        Its ``config.json``.
    device : torch.device
        Where the model runs: the caller's choice, else the run's ``device`` setting.
    model : torch.nn.Module
        The chosen weights in eval mode on ``device``.
    test_images : np.ndarray
        uint8 (N, H, W) or (N, H, W, C): the run's test images (the first ``limit_test`` when the
        run set one).
    test_labels : np.ndarray
        int64 (N,).
    """

    path: Path
    config: TrainConfig
    device: torch.device
    model: torch.nn.Module
    test_images: np.ndarray
    test_labels: np.ndarray
    norm: Norm  # the training split's normalisation, the one the model reads

    @property
    def n_test(self) -> int:
        return len(self.test_labels)

    def test_tensor(self) -> torch.Tensor:
        """The test images as the model reads them: ``(N, C, H, W)`` normalised, on ``device``."""
        return to_tensor(self.test_images, self.device, norm=self.norm)


def check_dataset_matches(cfg: TrainConfig, ds: Dataset, run_dir: str | Path | None = None) -> None:
    """A run resumed or evaluated on a different dataset is refused rather than mixed.

    Three checks, each one line: the data spec the run recorded (``config.json``'s ``data``) is
    the one loaded; the arrays' checksum matches the one in ``dataset.json`` (so a changed image
    folder or ``.npz`` is caught); and a run trained on verified data gets verified data.
    """
    if cfg.data != ds.name:
        raise RunError(f"the run was trained on --data {cfg.data}, not {ds.name}; pass --data {cfg.data}")
    recorded = read_run_dataset(run_dir) if run_dir is not None else None
    if recorded and recorded.get("checksum") and recorded["checksum"] != ds.checksum:
        raise RunError(f"{ds.source} is not the data {run_dir} trained on: its arrays' checksum differs from "
                       f"{run_dir}/{DATASET_FILE} (the files changed since training)")
    if cfg.verify and not ds.verified and ds.name in IDX_FAMILIES:
        raise RunError(f"the run was trained on verified {ds.name} but {ds.source} is not")


def open_run(run_dir: str | Path, ds: Dataset, *, which: str = "best", device: str | None = None) -> OpenRun:
    """Config -> dataset check -> device -> test limit -> weights, for one finished run.

    Parameters
    ----------
    run_dir : path
        A run folder written by ``cnnlstm train``.
    ds : Dataset
        The dataset the run was trained on.
    which : {"best", "last"}
        ``best.pt`` or ``checkpoint.pt``.
    device : str, optional
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; default the run's own ``device`` setting.
    Raises
    ------
    RunError
        Not a run folder, weights missing or damaged, or a dataset the run did not train on.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    check_dataset_matches(cfg, ds, run_dir)
    dev = resolve_device(device or cfg.device)
    n_test = cfg.limit_test or len(ds.test_labels)
    model, _ = load_run_model(run_dir, which, dev, image_size=ds.image_size, in_channels=ds.channels)
    return OpenRun(path=run_dir, config=cfg, device=dev, model=model, test_images=ds.test_images[:n_test],
                   test_labels=ds.test_labels[:n_test].astype(np.int64), norm=ds.norm)


# --------------------------------------------------------------------------- a run's data


def is_spec(data) -> bool:
    """Whether ``data`` is a data spec (``"fashion-mnist"``, a folder, an ``.npz`` path) rather than a dataset."""
    return isinstance(data, (str, os.PathLike))


def check_image_size(image_size: int | None) -> None:
    """Refuse an ``image_size`` that is not a whole number of pixels >= 0 (0: the data's own size)."""
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 0):
        raise ConfigError(f"image_size must be a whole number of pixels >= 0, got {image_size!r}")


def run_data_settings(cfg: TrainConfig, data: str | os.PathLike | None = None, *, image_size: int | None = None,
                      data_dir: str | os.PathLike | None = None) -> dict:
    """The :func:`cnnlstm.data.load_data` arguments for a run's dataset: its saved data settings,
    overridden by ``data``, ``image_size`` and ``data_dir`` where given.

    The run's own ``image_size`` is kept only for an image folder (the one kind of data it
    applies to) and its ``data_dir`` only for its own IDX dataset, so evaluating a run trained on
    a folder with ``data="fashion-mnist"`` loads Fashion-MNIST as it is, and the run's check of
    the data then says what differs, instead of "image_size is for image folders".

    Parameters
    ----------
    cfg : TrainConfig
        The run's ``config.json``.
    data : str or path, optional
        A data spec (default: the run's ``data``).
    image_size : int, optional
        Image folders: the side every image is resized to (default: the run's, for a folder).
    data_dir : path, optional
        The IDX datasets: the folder of their four files (default: the run's, for its own dataset).

    Returns
    -------
    dict
        ``spec``, ``image_size``, ``data_dir``, ``download`` and ``verify``.
    """
    from cnnlstm.data.catalog import spec_kind

    check_image_size(image_size)
    spec = str(data) if data is not None else cfg.data
    if image_size is None:
        image_size = cfg.image_size if spec_kind(spec) == "folder" else 0
    if data_dir is None and spec == cfg.data:
        data_dir = cfg.data_dir
    return dict(spec=spec, image_size=image_size, data_dir=data_dir, download=cfg.download, verify=cfg.verify)


def run_dataset(cfg: TrainConfig, data, image_size: int | None = None) -> Dataset:
    """The dataset of a run: ``data(cfg)`` when it is a callable (the CLI's flags over the run's
    saved data settings), a loaded Dataset as given, else the data spec ``data`` (default: the
    run's own) loaded as :func:`run_data_settings` says."""
    if callable(data):
        return data(cfg)
    if data is not None and not is_spec(data):
        if image_size is not None:
                raise ConfigError("image_size goes with a data spec (data='DIR'), not with a loaded Dataset")
        return data
    from cnnlstm.data import load_data

    settings = run_data_settings(cfg, data, image_size=image_size)
    return load_data(settings.pop("spec"), **settings)


def spec_dataset(data, image_size: int | None = None) -> Dataset:
    """``data`` when it is a loaded Dataset, else the data spec it names (default Fashion-MNIST) loaded."""
    from cnnlstm.data import load_data

    check_image_size(image_size)
    if data is not None and not is_spec(data):
        if image_size is not None:
            raise ConfigError("image_size goes with a data spec (data='DIR'), not with a loaded Dataset")
        return data
    return load_data(str(data) if data is not None else "fashion-mnist", image_size=image_size or 0)
