"""Opening a finished run for evaluation: the one prelude every driver calls.

Evaluating, embedding, corrupting and explaining a run all start the same way: read its
``config.json``, check that the dataset in hand is the one it trained on, pick the device, apply
the run's test limit and load its weights. :func:`open_run` does those five steps, in that order,
so a driver cannot skip the dataset check or load weights onto the wrong device.

Locking is the caller's: each driver wraps its whole step (the prelude and the writes) in
:func:`cnnlstm.runs.run_lock`, so no second process writes the folder between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlstm.config import TrainConfig
from cnnlstm.data import Dataset, Norm, to_tensor
from cnnlstm.data.sources import IDX_FAMILIES
from cnnlstm.device import resolve_device
from cnnlstm.errors import RunError
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
