"""Predict the classes of image files with a run's trained weights, in batches.

Files are read and preprocessed (:mod:`cnnlstm.deploy.images`) by a small thread pool -- Pillow and
NumPy release the GIL while decoding and resizing -- then normalised like the training images
(:func:`cnnlstm.data.to_tensor`) and classified ``batch_size`` at a time with
:func:`cnnlstm.measure.inference.predict_probs`. A file that cannot be read becomes a
:class:`FilePrediction` with an ``error``; the other files are still predicted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlstm.config import TrainConfig
from cnnlstm.data import Norm, to_tensor
from cnnlstm.data.sources import IDX_FAMILIES
from cnnlstm.deploy.images import IMAGE_SIZE, load_image
from cnnlstm.errors import ImageError, RunError
from cnnlstm.measure.inference import predict_probs
from cnnlstm.runs import DATASET_FILE, load_run_dataset, load_run_model, weights_path

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 512  # images per forward pass (and per preprocessing chunk)


@dataclass(frozen=True)
class LoadedRun:
    """A run's model with its weights loaded, ready for inference.

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode, on the requested device.
    classes : tuple of str
        Class names, index = label (``dataset.json``'s).
    config : TrainConfig
        The run's ``config.json``.
    run_dir, weights : Path
        The run folder and the checkpoint file the weights came from.
    image_size : int
        Side of the square images the model reads.
    channels : int
        Its channels (1 grey, 3 RGB).
    norm : Norm
        The normalisation it trained with (the training split's, from ``dataset.json``).
    as_dataset : bool
        True for a run trained on an image folder or ``.npz``: files are then decoded exactly as
        the folder loader decodes them (mode, bilinear resize), not by Fashion-MNIST's
        object-on-black preprocessing (:mod:`cnnlstm.deploy.images`), which IDX-family runs get.
    """

    model: torch.nn.Module
    classes: tuple[str, ...]
    config: TrainConfig
    run_dir: Path
    weights: Path
    image_size: int
    channels: int
    norm: Norm
    as_dataset: bool


@dataclass(frozen=True)
class FilePrediction:
    """The top classes of one file, or why it could not be predicted.

    Attributes
    ----------
    file : str
        The path as given.
    top : list of dict or None
        ``[{"label": int, "name": str, "prob": float}, ...]``, most probable first.
    error : str or None
        A one-line message naming the file, when it could not be read.
    """

    file: str
    top: list[dict] | None = None
    error: str | None = None

    def to_json(self) -> dict:
        """``{"file", "top"}`` (or ``{"file", "error"}``) as plain JSON-ready values."""
        if self.error is not None:
            return {"file": self.file, "error": self.error}
        return {"file": self.file, "top": self.top}


def load_predictor(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """A run's model (:func:`cnnlstm.runs.load_run_model`), its class names and where it came from.

    Parameters
    ----------
    run_dir : path
        A run folder written by ``cnnlstm train``.
    which : {"best", "last"}
        ``best.pt`` (best validation epoch) or ``checkpoint.pt`` (last epoch).
    device : str or torch.device

    Returns
    -------
    LoadedRun

    Raises
    ------
    RunError
        Not a run folder, ``dataset.json`` missing or naming another number of classes than the
        model has, weights missing or damaged, or weights that do not fit the config.
    """
    run_dir = Path(run_dir)
    model, cfg = load_run_model(run_dir, which, device)
    desc = load_run_dataset(run_dir)
    path = weights_path(run_dir, which)
    classes = tuple(str(name) for name in desc["classes"])
    if len(classes) != model.num_classes:
        raise RunError(f"{run_dir}/{DATASET_FILE} names {len(classes)} classes but the model in {path.name} "
                       f"has {model.num_classes} outputs")
    log.debug("loaded %s (%s, %d classes) on %s", path, cfg.model, len(classes), device)
    return LoadedRun(model=model, classes=classes, config=cfg, run_dir=run_dir, weights=path,
                     image_size=int(desc["image_size"]), channels=int(desc["channels"]),
                     norm=Norm.from_dict(desc["norm"]), as_dataset=desc["name"] not in IDX_FAMILIES)


def _load_one(path: str, size: int, channels: int | None) -> np.ndarray | ImageError:
    if channels is not None:  # as the run's image folder was decoded
        from cnnlstm.data.folders import decode_image
        from cnnlstm.errors import DatasetError

        try:
            return decode_image(path, colour=channels == 3, image_size=size)
        except DatasetError as exc:
            return ImageError(str(exc))
    try:
        return load_image(path, size=size)
    except ImageError as exc:
        return exc


def preprocess_files(paths: Sequence[str], size: int = IMAGE_SIZE, workers: int | None = None, *,
                     channels: int | None = None) -> list[np.ndarray | ImageError]:
    """Load and preprocess ``paths`` (in order) on a thread pool; failures come back as errors.

    With ``channels`` (1 or 3) each file is decoded as an image-folder dataset's files are;
    without, by Fashion-MNIST's preprocessing (:func:`cnnlstm.deploy.images.load_image`).

    Returns
    -------
    list
        Per path a ``uint8 (size, size)`` (or ``(size, size, 3)``) array or the
        :class:`ImageError` it raised.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(paths) <= 1:
        return [_load_one(p, size, channels) for p in paths]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cnnlstm-images") as pool:
        return list(pool.map(lambda p: _load_one(p, size, channels), paths))


def top_classes(probs: np.ndarray, classes: Sequence[str], k: int) -> list[dict]:
    """The ``k`` most probable classes of one probability row, most probable first (ties: lower label)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": int(c), "name": str(classes[c]), "prob": round(float(probs[c]), 6)} for c in order]


def predict_files(run: LoadedRun, paths: Iterable[str | os.PathLike], *, topk: int = 3,
                  batch_size: int = DEFAULT_BATCH_SIZE, workers: int | None = None) -> Iterator[FilePrediction]:
    """Classify image files, yielding one :class:`FilePrediction` per path, in input order.

    Files are handled ``batch_size`` at a time (read + preprocess, then one forward pass), so
    memory stays bounded for any number of files and results stream out as batches finish.

    Parameters
    ----------
    run : LoadedRun
        From :func:`load_predictor`.
    paths : iterable of path
        Image or ``.npy`` files (see :mod:`cnnlstm.deploy.images`).
    topk : int
        Classes reported per file (at most the number of classes).
    batch_size : int
        Files per chunk and per forward pass.
    workers : int, optional
        Threads for reading and preprocessing (default: up to 8, one per CPU).

    Yields
    ------
    FilePrediction
    """
    if topk < 1 or batch_size < 1:
        raise ValueError(f"topk and batch_size must be >= 1, got {topk} and {batch_size}")
    k = min(topk, len(run.classes))
    device = next(run.model.parameters()).device
    chunk: list[str] = []
    for path in paths:
        chunk.append(os.fspath(path))
        if len(chunk) == batch_size:
            yield from _predict_chunk(run, chunk, k, device, workers)
            chunk = []
    if chunk:
        yield from _predict_chunk(run, chunk, k, device, workers)


def _predict_chunk(run: LoadedRun, paths: list[str], k: int, device: torch.device,
                   workers: int | None) -> Iterator[FilePrediction]:
    """Preprocess one chunk of files and classify the readable ones in a single batch."""
    loaded = preprocess_files(paths, run.image_size, workers, channels=run.channels if run.as_dataset else None)
    good = [img for img in loaded if not isinstance(img, ImageError)]
    probs = np.zeros((0, len(run.classes)), np.float32)
    if good:
        x = to_tensor(np.stack(good), device, norm=run.norm)  # (B, C, S, S), normalised like training
        probs = predict_probs(run.model, x, batch_size=len(good))
    rows = iter(probs)
    for path, img in zip(paths, loaded):
        if isinstance(img, ImageError):
            yield FilePrediction(file=path, error=str(img))
        else:
            yield FilePrediction(file=path, top=top_classes(next(rows), run.classes, k))
