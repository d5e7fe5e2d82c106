"""One experiment into one run folder: data -> model -> fit -> evaluate -> figures.

This glues the pure steps together for the commands that run training (``train``,
``reproduce``, ``sweep``); each step stays callable on its own.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from cnnlstm.config import TrainConfig, config_to_dict
from cnnlstm.data import Dataset, stratified_split, to_tensor
from cnnlstm.data import augment as aug
from cnnlstm.data.splits import nested_subset
from cnnlstm.device import keep_cpu_allocations_warm, resolve_device
from cnnlstm.errors import ConfigError, RunError
from cnnlstm.fileio import read_history, run_lock, write_json, write_npz
from cnnlstm.measure.calibration import calibration_metrics, reliability_bins
from cnnlstm.measure.inference import predict_probs
from cnnlstm.measure.metrics import compute_metrics
from cnnlstm.models import create_model
from cnnlstm.models.user import check_model_contract, load_model_source
from cnnlstm.runs import DATASET_FILE, load_checkpoint, load_run_config, load_run_weights, record_model_source
from cnnlstm.study.prelude import check_dataset_matches, open_run
from cnnlstm.training.loop import FitData, fit, unwrap

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """The three splits as tensors on the training device."""

    fit: FitData | None  # None when only the test split was built
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_images: np.ndarray  # uint8 (N, H, W), for figures of misclassified images


def make_splits(ds: Dataset, cfg: TrainConfig, device: torch.device) -> Splits:
    """Stratified train/validation split of the training set (seeded by ``cfg.seed``), test untouched.

    ``train_size`` keeps a stratified subset of N training images after the split
    (:func:`cnnlstm.data.splits.nested_subset`: seeded by ``cfg.seed``, so both models of a seed
    pair see the same images, and nested across sizes). ``limit_train`` keeps the first N training
    images and ``limit_test`` the first N test images: for smoke runs and tests.
    """
    tr_idx, va_idx = training_indices(ds, cfg)
    if cfg.val_size and len(va_idx) < cfg.val_size:
        log.warning("validation split: %d images, not the %d asked for (at most a fifth of the %d training "
                    "images); metrics.json records n_val", len(va_idx), cfg.val_size, len(ds.train_labels))
    splits = test_split(ds, cfg, device)
    splits.fit = FitData(to_tensor(ds.train_images[tr_idx], device, norm=ds.norm),
                         labels_tensor(ds.train_labels[tr_idx], device),
                         to_tensor(ds.train_images[va_idx], device, norm=ds.norm),
                         labels_tensor(ds.train_labels[va_idx], device), norm=ds.norm)
    return splits


def training_indices(ds: Dataset, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training images a run learns from and its validation images (indices into ``ds.train_*``):
    the split, then ``train_size``'s nested subset, then ``limit_train``'s first N."""
    tr_idx, va_idx = split_indices(ds, cfg)
    if cfg.train_size:  # the same images for every model of one seed; 1,000 inside 6,000
        tr_idx = tr_idx[nested_subset(ds.train_labels[tr_idx], cfg.train_size, cfg.seed)]
    if cfg.limit_train:
        tr_idx = tr_idx[:cfg.limit_train]
    return tr_idx, va_idx


def split_indices(ds: Dataset, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices into ``ds.train_*`` (stratified, seeded by ``cfg.seed``).

    The validation set is ``cfg.val_size`` images, at most a fifth of the training set.
    """
    val_size = min(cfg.val_size, len(ds.train_labels) // 5) if cfg.val_size else 0
    return stratified_split(ds.train_labels, val_size, cfg.seed)


def labels_tensor(labels: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(labels, dtype=torch.int64, device=device)


def test_split(ds: Dataset, cfg: TrainConfig, device: torch.device) -> Splits:
    """Only the test tensors (``fit`` is None): all that evaluation needs."""
    n_test = cfg.limit_test or len(ds.test_labels)
    return Splits(fit=None, test_x=to_tensor(ds.test_images[:n_test], device, norm=ds.norm),
                  test_y=labels_tensor(ds.test_labels[:n_test], device), test_images=ds.test_images[:n_test])


def build_model(cfg: TrainConfig, num_classes: int, image_size: int, device: torch.device,
                in_channels: int = 1) -> torch.nn.Module:
    """Create ``cfg.model`` for the dataset's classes, size and channels, with weights drawn from
    ``cfg.seed``, and move it to ``device``."""
    if cfg.model_file:  # a Dask worker or torchrun rank imports the user's file itself
        load_model_source(cfg.model_file)
        # a user's model on this dataset's images: one line now, not a traceback in the first step
        check_model_contract(cfg.model, image_size=image_size, in_channels=in_channels, num_classes=num_classes,
                             model_args=cfg.model_args)
    torch.manual_seed(cfg.seed)  # weight init and dropout draw from torch's global generator
    model = create_model(cfg.model, num_classes=num_classes, image_size=image_size, in_channels=in_channels,
                         **cfg.model_args)
    model = model.to(device)
    if cfg.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def configure_runtime(cfg: TrainConfig) -> torch.device:
    """Pick the device and CPU threads the config asks for (and keep CPU allocations warm)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        keep_cpu_allocations_warm()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def train_run(cfg: TrainConfig, run_dir: str | Path, ds: Dataset, *, resume: bool = False,
              evaluate: bool = True, rank: int = 0, world_size: int = 1, wrap_model=None,
              on_step: Callable | None = None, on_epoch: Callable | None = None, figures: bool = True) -> dict:
    """Train (or resume) one run into ``run_dir`` and evaluate its best weights on the test set.

    Parameters
    ----------
    cfg : TrainConfig
        Saved as ``config.json``; on resume the saved one is used and ``cfg`` is ignored.
    run_dir : path
    ds : Dataset
    resume : bool
        Continue from ``run_dir/checkpoint.pt`` exactly.
    evaluate : bool
        Write ``metrics.json``, ``predictions.npz`` and the figures at the end.
    figures : bool
        With ``evaluate``: also draw the evaluation figures (a study skips them for seeds whose
        figures its report does not show; ``cnnlstm evaluate RUN`` draws them later).
    rank, world_size : int
        Data-parallel position (only rank 0 writes files).
    wrap_model : callable, optional
        ``wrap_model(model) -> model`` (e.g. DistributedDataParallel).
    on_step, on_epoch : callable, optional
        Progress callbacks, see :func:`cnnlstm.training.loop.fit`.

    Returns
    -------
    dict
        ``{"state": TrainState, "metrics": dict or None, "train_seconds": float}``.
    """
    run_dir = Path(run_dir)
    with run_lock(run_dir) if rank == 0 else nullcontext():
        ckpt = None
        if resume:
            cfg = load_run_config(run_dir)
            if (run_dir / "checkpoint.pt").exists():
                ckpt = load_checkpoint(run_dir / "checkpoint.pt")
            else:
                log.info("%s has no checkpoint yet; starting it from the beginning", run_dir)
            if rank == 0 and not (run_dir / DATASET_FILE).exists():  # a crash between config.json and it
                write_json(run_dir / DATASET_FILE, ds.describe())
        else:
            cfg = fit_config_to_dataset(cfg, ds)
            if rank == 0:
                if (run_dir / "checkpoint.pt").exists():
                    raise RunError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
                write_json(run_dir / "config.json", config_to_dict(cfg))
                write_json(run_dir / DATASET_FILE, ds.describe())
                record_model_source(run_dir, cfg)
        check_dataset_matches(cfg, ds, run_dir)
        device = configure_runtime(cfg)
        splits = make_splits(ds, cfg, device)
        model = build_model(cfg, ds.num_classes, ds.image_size, device, ds.channels)
        trained = wrap_model(model) if wrap_model else model
        if cfg.compile:
            trained = torch.compile(trained)
        t0 = time.perf_counter()
        with tensorboard_writer(cfg, run_dir, rank) as log_epoch:
            def epoch_done(row: dict) -> None:
                log_epoch(row)
                if on_epoch:
                    on_epoch(row)

            state = fit(trained, splits.fit, cfg, run_dir, resume=ckpt, rank=rank, world_size=world_size,
                        on_step=on_step, on_epoch=epoch_done)
        train_seconds = sum(r["seconds"] for r in state.history)
        log.debug("fit took %.1f s wall", time.perf_counter() - t0)
        metrics = None
        if evaluate and rank == 0:
            metrics = evaluate_trained(run_dir, ds, unwrap(model), cfg, device, splits=splits,
                                       history=state.history, figures=figures)
    return {"state": state, "metrics": metrics, "train_seconds": train_seconds}


def fit_config_to_dataset(cfg: TrainConfig, ds: Dataset, *, warn: bool = True) -> TrainConfig:
    """The config as it will train on ``ds``: its data spec recorded, label-changing flips dropped.

    A horizontal flip turns a 2 into a mirrored glyph that is no digit at all; where the dataset
    says flips do not preserve its labels (``Dataset.flip_preserves_labels``), ``flip_h`` is set
    to 0 with a warning, so a preset written for clothes stays correct on digits and the saved
    config says what the run did. A study fitting many configs passes ``warn=False`` and says it once.
    """
    if cfg.flip_h and not ds.flip_preserves_labels:
        if warn:
                log.warning("%s: a horizontal flip does not preserve its labels; training without it (flip_h 0, "
                        "not %g)", ds.name, cfg.flip_h)
        cfg = dataclasses.replace(cfg, flip_h=0.0)
    return dataclasses.replace(cfg, data=ds.name) if cfg.data != ds.name else cfg


@contextmanager
def tensorboard_writer(cfg: TrainConfig, run_dir: Path, rank: int):
    """Yield ``log(row)`` writing each epoch's history row to ``run_dir/tensorboard`` when asked.

    With ``cfg.tensorboard`` off (or on ranks other than 0) the logger does nothing.
    """
    if not cfg.tensorboard or rank != 0:
        yield lambda row: None
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'cnnlstm[tensorboard]'") from exc
    writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log_row(row: dict) -> None:
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"):
            if row.get(key) is not None:
                writer.add_scalar(key, row[key], row["epoch"])
        writer.flush()

    try:
        yield log_row
    finally:
        writer.close()


def tta_views_for(cfg: TrainConfig):
    """Test-time views: identity plus each flip training used (None when training used none)."""
    if not (cfg.flip_h or cfg.flip_v):
        return None
    return lambda x: aug.flip_tta_views(x, cfg.flip_h, cfg.flip_v)


def evaluate_run(run_dir: str | Path, ds: Dataset, *, which: str = "best", tta: bool = False,
                 device: str | None = None, figures: bool = True) -> dict:
    """Evaluate a finished run's ``best.pt`` (or ``checkpoint.pt``) on the test set into its folder.

    Holds the run's lock, opens the run (:func:`cnnlstm.study.prelude.open_run`) and writes what
    :func:`evaluate_trained` writes.
    """
    with run_lock(run_dir):
        run = open_run(run_dir, ds, which=which, device=device)
        return evaluate_trained(run.path, ds, run.model, run.config, run.device, which=which, tta=tta,
                                figures=figures)


def evaluate_trained(run_dir: Path, ds: Dataset, model: torch.nn.Module, cfg: TrainConfig, dev: torch.device, *,
                     which: str = "best", tta: bool = False, splits: Splits | None = None,
                     history: list[dict] | None = None, figures: bool = True) -> dict:
    """Evaluate ``model`` with the run's ``which`` weights on the test set; the caller holds the lock.

    Writes ``metrics.json``, ``predictions.npz`` (labels, preds, probs) and, with ``figures``,
    the confusion matrices, ROC curves, training curves, misclassified images and the
    reliability diagram. Besides the plan's metrics, ``metrics.json`` holds the calibration of
    the test predictions (:func:`cnnlstm.measure.calibration.calibration_metrics`, the temperature fitted
    on the run's validation split) and the accuracy without the test images that duplicate
    training images (:func:`dedup_accuracy`). Training calls this with the model it trained (whose
    best weights it loads here); :func:`evaluate_run` with the model it opened.
    """
    ckpt = load_run_weights(model, run_dir, which, dev)
    if splits is None:
        splits = test_split(ds, cfg, dev)
    views = tta_views_for(cfg) if tta else None
    if tta and views is None:
        log.warning("--tta: the run trained without flips, so there are no test-time views; evaluating plainly")
    t0 = time.perf_counter()
    probs = predict_probs(model, splits.test_x, batch_size=cfg.eval_batch_size, tta_views=views)
    seconds = time.perf_counter() - t0
    labels = splits.test_y.cpu().numpy()
    metrics = compute_metrics(labels, probs, ds.classes)
    val_probs, val_labels = validation_predictions(model, ds, cfg, splits, dev, views)
    metrics.update(calibration_metrics(labels, probs, val_labels=val_labels, val_probs=val_probs))
    metrics.update(dedup_accuracy(ds, labels, probs.argmax(1)))
    history = history if history is not None else read_history(run_dir / "history.csv")
    n_train = len(splits.fit.train_y) if splits.fit is not None else len(training_indices(ds, cfg)[0])
    metrics.update(checkpoint=which, tta=views is not None, epochs_trained=len(history), n_train=n_train,
                   best_epoch=int(ckpt.get("epoch", 0)), train_seconds=sum(r["seconds"] or 0 for r in history),
                   eval_seconds=seconds, dataset=ds.source, verified=ds.verified)
    preds = probs.argmax(1)
    write_json(run_dir / "metrics.json", metrics)
    write_npz(run_dir / "predictions.npz", labels=labels, preds=preds, probs=probs.astype(np.float32))
    if figures:
        write_run_figures(run_dir, metrics, labels, probs, preds, splits.test_images, ds.classes, history)
    return metrics


def validation_predictions(model, ds: Dataset, cfg: TrainConfig, splits: Splits, device, views):
    """Probabilities and labels of the run's validation split (the same TTA views as the test set).

    Returns ``(None, None)`` when the run has no validation split (``val_size = 0``).
    """
    if splits.fit is not None:
        val_x, val_y = splits.fit.val_x, splits.fit.val_y.cpu().numpy()
    else:
        _, va_idx = split_indices(ds, cfg)
        val_x = to_tensor(ds.train_images[va_idx], device, norm=ds.norm)
        val_y = ds.train_labels[va_idx].astype(np.int64)
    if len(val_y) == 0:
        return None, None
    return predict_probs(model, val_x, batch_size=cfg.eval_batch_size, tta_views=views), val_y


def dedup_accuracy(ds: Dataset, labels: np.ndarray, preds: np.ndarray) -> dict:
    """Test accuracy without the test images that have an exact or near duplicate in the training set.

    The overlap is :func:`cnnlstm.data.audit.train_test_overlap` (L2 distance <= 1.0 on [0, 1]
    pixels), restricted to the evaluated test images (the first ``len(labels)``).

    Returns
    -------
    dict
        ``accuracy_dedup`` (None when nothing is left), ``n_test_dedup`` and ``n_test_overlap``.
    """
    from cnnlstm.data.audit import train_test_overlap

    overlap = train_test_overlap(ds.train_images, ds.test_images)
    overlap = overlap[overlap < len(labels)]
    keep = np.ones(len(labels), dtype=bool)
    keep[overlap] = False
    acc = float((np.asarray(preds)[keep] == np.asarray(labels)[keep]).mean()) if keep.any() else None
    return {"accuracy_dedup": acc, "n_test_dedup": int(keep.sum()), "n_test_overlap": int(len(overlap))}


def write_run_figures(run_dir: Path, metrics: dict, labels, probs, preds, images, classes, history) -> None:
    """The evaluation figures of one run into ``run_dir/figures``."""
    from cnnlstm.reporting import figures as plots  # matplotlib: imported only when figures are drawn

    fig = run_dir / "figures"
    fig.mkdir(exist_ok=True)
    cm = np.asarray(metrics["confusion_matrix"])
    plots.plot_confusion_matrix(cm, classes, fig / "confusion_matrix.png")
    plots.plot_confusion_matrix(cm, classes, fig / "confusion_matrix_normalized.png", normalize=True)
    plots.plot_roc(labels, probs, classes, fig / "roc_worst_class.png", classes=[metrics["worst_class"]])
    plots.plot_roc(labels, probs, classes, fig / "roc_all.png")
    if history:
        plots.plot_history(history, fig / "history.png")
    plots.plot_misclassified(images, labels, preds, classes, fig / "misclassified.png")
    scaled = None
    if metrics.get("temperature"):
        from cnnlstm.measure.calibration import apply_temperature

        scaled = reliability_bins(labels, apply_temperature(probs, metrics["temperature"]))
    plots.plot_reliability(reliability_bins(labels, probs), fig / "reliability.png", scaled=scaled,
                           temperature=metrics.get("temperature"), ece=metrics.get("ece"),
                           ece_scaled=metrics.get("ece_temperature"))
