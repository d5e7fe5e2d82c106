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
from cnnlstm.data import Dataset
from cnnlstm.device import resolve_device
from cnnlstm.errors import RunError
from cnnlstm.runs import load_run_config, load_run_model


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
        uint8 (N, H, W): the run's test images (the first ``limit_test`` when the run set one).
    test_labels : np.ndarray
        int64 (N,).
    """

    path: Path
    config: TrainConfig
    device: torch.device
    model: torch.nn.Module
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def n_test(self) -> int:
        return len(self.test_labels)


def check_dataset_matches(cfg: TrainConfig, ds: Dataset) -> None:
    """A run resumed or evaluated on a different dataset is refused rather than mixed."""
    if cfg.verify and not ds.verified:
        raise RunError(f"the run was trained on verified Fashion-MNIST but {ds.source} is not")


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
    check_dataset_matches(cfg, ds)
    dev = resolve_device(device or cfg.device)
    n_test = cfg.limit_test or len(ds.test_labels)
    model, _ = load_run_model(run_dir, which, dev, image_size=ds.train_images.shape[1])
    return OpenRun(path=run_dir, config=cfg, device=dev, model=model, test_images=ds.test_images[:n_test],
                   test_labels=ds.test_labels[:n_test].astype(np.int64))
