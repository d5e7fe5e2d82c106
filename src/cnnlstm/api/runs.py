"""The Python API's steps on one run folder: train, load, evaluate, embed, explore, robustness,
explain and report, each as its command does it (:mod:`cnnlstm.api` re-exports them)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

    from cnnlstm.config import TrainConfig
    from cnnlstm.data import Dataset

__all__ = ["Run", "default_report_path", "build_report", "embed", "evaluate", "explain", "explore", "load_run",
           "report", "robustness", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """A trained run, loaded: what :func:`load_run` returns.

    Attributes
    ----------
    path : Path
        The run folder.
    config : TrainConfig
        Its ``config.json``.
    model : torch.nn.Module
        Its model with the chosen weights, in eval mode, on the requested device.
    metrics : dict or None
        ``metrics.json`` (None before the run was evaluated).
    history : list of dict
        ``history.csv``: one row per epoch (``epoch``, ``train_loss``, ``train_acc``,
        ``val_loss``, ``val_acc``, ``lr``, ``seconds``).
    """

    path: Path
    config: TrainConfig
    model: torch.nn.Module
    metrics: dict | None
    history: list[dict]

    def figure(self, name: str) -> Path:
        """The path of ``figures/<name>`` (``.png`` added when missing), e.g. ``run.figure("history")``."""
        return self.path / "figures" / (name if name.endswith(".png") else f"{name}.png")


def _finished_run(run_dir: str | Path, which: str = "best", device: str | None = None) -> tuple[Path, TrainConfig]:
    """A run folder's config, after the checks that need no data: the device name, the weights."""
    from cnnlstm.device import check_device_name
    from cnnlstm.runs import load_run_config, weights_path

    if device is not None:
        check_device_name(device)
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    weights_path(run_dir, which)  # a missing checkpoint fails before the data is loaded
    return run_dir, cfg


def train(config: TrainConfig | str | None = None, *, out: str | Path | None = None, preset: str | None = None,
          data: Dataset | str | os.PathLike | None = None, evaluate: bool = True,
          on_epoch: Callable[[dict], None] | None = None, **overrides: Any) -> Path:
    """Train one model into a run folder, as ``cnnlstm train`` does; return the folder.

    Parameters
    ----------
    config : TrainConfig, str or None
        A full config, or a model name (see :func:`cnnlstm.list_models`), or None with
        ``model=...`` among the overrides.
    out : path, optional
        The run folder (default ``runs/<model>-<timestamp>``); it must not hold a run yet.
    preset : str, optional
        A shipped preset (``paper``, ``fast``, ``best``, ...), under the overrides.
    data : Dataset, str or path, optional
        A loaded dataset, or a data spec as ``--data`` takes it (``"fashion-mnist"``, ``"mnist"``,
        ``"kmnist"``, a folder of class folders, an ``.npz`` file), recorded as the config's ``data``;
        ``image_size=N`` among the overrides resizes a folder's images. Default: the dataset the
        config names, found as the CLI finds it.
    evaluate : bool, default True
        Evaluate the best weights on the test set at the end (``metrics.json``, figures).
    on_epoch : callable, optional
        Called with each epoch's history row (e.g. to print progress).
    **overrides
        Config keys, as ``--set`` takes them (``epochs=1``, ``model_args={"dropout": 0.2}``).

    Returns
    -------
    Path
        The run folder.

    Raises
    ------
    cnnlstm.errors.UserError
        A bad config key or value, a model argument the model does not take, an unusable folder.
    """
    from cnnlstm.config import TrainConfig, config_to_dict, deep_merge, resolve_train_config
    from cnnlstm.runs import default_run_dir
    from cnnlstm.study.experiment import train_run
    from cnnlstm.study.prelude import is_spec, run_dataset

    if is_spec(data):  # a spec is the config's `data` key, as `--data` is
        overrides = {**overrides, "data": str(data)}
        data = None
    if isinstance(config, TrainConfig):  # the config's values under the overrides, checked like a file
        cfg = resolve_train_config(overrides=deep_merge(config_to_dict(config), overrides))
    else:
        cfg = resolve_train_config(config, preset=preset, overrides=overrides)
    run_dir = Path(out) if out is not None else default_run_dir(cfg.model)
    train_run(cfg, run_dir, run_dataset(cfg, data), evaluate=evaluate, on_epoch=on_epoch)
    log.info("run folder: %s", run_dir)
    return run_dir


def load_run(run_dir: str | Path, *, which: str = "best", device: str = "cpu") -> Run:
    """A trained run's config, model (``best.pt`` or ``checkpoint.pt``), metrics and history.

    The model is built without touching torch's global random state
    (:func:`cnnlstm.runs.load_run_model`), so loading a run in a notebook does not change what
    later random calls draw.

    Parameters
    ----------
    run_dir : path
    which : {"best", "last"}
        ``best.pt`` (best validation epoch) or ``checkpoint.pt`` (last epoch).
    device : str, default "cpu"
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    from cnnlstm.device import check_device_name, resolve_device
    from cnnlstm.fileio import read_history, read_json
    from cnnlstm.runs import load_run_model

    run_dir = Path(run_dir)
    model, cfg = load_run_model(run_dir, which, resolve_device(check_device_name(device)))
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else None
    return Run(path=run_dir, config=cfg, model=model, metrics=metrics, history=read_history(run_dir / "history.csv"))


def evaluate(run_dir: str | Path, *, which: str = "best", tta: bool = False, device: str | None = None,
             data: Dataset | str | os.PathLike | Callable | None = None, image_size: int | None = None,
             figures: bool = True) -> dict:
    """Evaluate a run's weights on the test set into its folder, as ``cnnlstm evaluate`` does.

    Parameters
    ----------
    run_dir : path
    which : {"best", "last"}
    tta : bool
        Average the softmax over the flips the run trained with.
    device : str, optional
        Default: the run's own ``device`` setting.
    data : Dataset, str, path or callable, optional
        Default: the dataset the run was trained on, found as the CLI finds it. A data spec
        (``"fashion-mnist"``, a folder, an ``.npz`` file) as ``--data`` takes it; a loaded
        Dataset; or a callable that gets the run's config and returns the dataset.
    image_size : int, optional
        With an image folder: the side its images are resized to (default: the run's).
    figures : bool, default True
        Also (re)draw ``figures/`` (confusion matrices, ROC curves, curves, misclassified images).

    Returns
    -------
    dict
        The ``metrics.json`` content.
    """
    from cnnlstm.study.experiment import evaluate_run, tta_views_for
    from cnnlstm.study.prelude import run_dataset

    if which not in ("best", "last"):
        from cnnlstm.errors import ConfigError

        raise ConfigError(f"which must be 'best' or 'last', got {which!r}")
    run_dir, cfg = _finished_run(run_dir, which, device)
    if tta and tta_views_for(cfg) is None:
        log.warning("tta has no effect: %s trained without flips", run_dir)
    return evaluate_run(run_dir, run_dataset(cfg, data, image_size), which=which, tta=tta, device=device,
                        figures=figures)


def embed(run_dir: str | Path, *, samples: int | None = None, perplexity: float = 30.0, k0: int | None = None,
          seed: int = 0, device: str | None = None, n_jobs: int = -1,
          data: Dataset | str | os.PathLike | Callable | None = None, image_size: int | None = None) -> dict:
    """t-SNE of a run's learned features on the test set, as ``cnnlstm embed`` does.

    Writes ``embedding.npy``, ``embed.json`` and ``figures/tsne.png`` into the run folder; see
    :func:`cnnlstm.study.exploration.run_embed` for the t-SNE parameters (PCA initialisation, K0 =
    floor((ln n)^2) unless ``k0`` is given).

    Parameters
    ----------
    run_dir : path
    samples, perplexity, k0, seed, n_jobs
        As ``cnnlstm embed``'s flags.
    device : str, optional
        Default: the run's own ``device`` setting.
    data : Dataset, str, path or callable, optional
        Default: the dataset the run was trained on, found as the CLI finds it. A data spec
        (``"fashion-mnist"``, a folder, an ``.npz`` file) as ``--data`` takes it; a loaded
        Dataset; or a callable that gets the run's config and returns the dataset.
    image_size : int, optional
        With an image folder: the side its images are resized to (default: the run's).

    Returns
    -------
    dict
        The ``embed.json`` record (settings, seconds, embedding-quality metrics).

    Raises
    ------
    cnnlstm.errors.ConfigError
        Settings t-SNE cannot use (``samples`` < 5, ``perplexity`` <= 0, ``n_jobs`` 0), before
        any data is loaded: the same one-line errors as the command's.
    """
    from cnnlstm.study.exploration import check_tsne_settings, run_embed
    from cnnlstm.study.prelude import run_dataset

    check_tsne_settings(samples=samples, perplexity=perplexity, n_jobs=n_jobs, k0=k0)
    run_dir, cfg = _finished_run(run_dir, "best", device)
    return run_embed(run_dir, run_dataset(cfg, data, image_size), samples=samples, perplexity=perplexity, k0=k0,
                     seed=seed, device=device, n_jobs=n_jobs)


def explore(out: str | Path = "runs/explore", *, data: Dataset | str | os.PathLike | None = None,
            image_size: int | None = None, tsne_samples: int | None = None, seed: int = 0, n_jobs: int = -1,
            k0: int | None = None, perplexity: float = 30.0) -> dict:
    """The plan's data exploration into ``out``, as ``cnnlstm explore`` does.

    Parameters
    ----------
    out : path, default "runs/explore"
    data : Dataset, str or path, optional
        A loaded dataset or a data spec as ``--data`` takes it (default ``"fashion-mnist"``).
    image_size : int, optional
        With an image folder: the side its images are resized to (default: their own size).
    tsne_samples, seed, n_jobs, k0, perplexity
        As ``cnnlstm explore``'s flags (``tsne_samples=0`` skips the t-SNE).

    Returns
    -------
    dict
        The ``stats.json`` content (see :func:`cnnlstm.study.exploration.run_explore`):
        statistics, the duplicate audit and, unless ``tsne_samples=0``, the raw-pixel t-SNE record.
    """
    from cnnlstm.study.exploration import check_tsne_settings, run_explore
    from cnnlstm.study.prelude import spec_dataset

    check_tsne_settings(samples=tsne_samples, perplexity=perplexity, n_jobs=n_jobs, k0=k0, zero_skips=True,
                        what="tsne_samples")
    data = spec_dataset(data, image_size)
    return run_explore(data, Path(out), tsne_samples=tsne_samples, seed=seed, n_jobs=n_jobs, k0=k0,
                       perplexity=perplexity)


def robustness(run_dir: str | Path, *, baseline: str | Path | None = None, severities=None,
               corruptions=None, samples: int | None = None, seed: int = 0, device: str | None = None,
               data: Dataset | str | os.PathLike | Callable | None = None, image_size: int | None = None,
               progress=None, baseline_progress=None) -> dict:
    """A run on the Fashion-MNIST-C corruptions into ``robustness.json``, as ``cnnlstm robustness`` does.

    Parameters
    ----------
    run_dir : path
    baseline : path, optional
        Another finished run: its ``robustness.json`` is reused when it covers the same images
        and cells, else computed; the record then holds the CE and mCE against it.
    severities : sequence of int, optional
        Default 1..5.
    corruptions : sequence of str, optional
        Default all 15.
    samples : int, optional
        A seeded sample of the test images (default all).
    seed : int, default 0
    device : str, optional
    data : Dataset, str, path or callable, optional
        Default: the dataset the run was trained on, found as the CLI finds it. A data spec
        (``"fashion-mnist"``, a folder, an ``.npz`` file) as ``--data`` takes it; a loaded
        Dataset; or a callable that gets the run's config and returns the dataset.
    image_size : int, optional
        With an image folder: the side its images are resized to (default: the run's).
    progress, baseline_progress : callable, optional
        ``progress(done, total, label)`` for the run and for the baseline.

    Returns
    -------
    dict
        The ``robustness.json`` record (:func:`cnnlstm.study.robustness.run_robustness`).
    """
    from cnnlstm.data import corruptions as corr
    from cnnlstm.errors import ConfigError
    from cnnlstm.measure.robustness import covers
    from cnnlstm.study.prelude import run_dataset
    from cnnlstm.study.robustness import load_robustness, run_robustness

    severities = corr.check_severities(corr.SEVERITIES if severities is None else severities)
    names = corr.check_corruptions(corruptions or corr.list_corruptions())
    if samples is not None and samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    run_dir, cfg = _finished_run(run_dir, "best", device)
    base_dir = None
    if baseline is not None:
        base_dir, _ = _finished_run(baseline, "best", None)
    ds = run_dataset(cfg, data, image_size)
    settings = dict(severities=severities, corruptions=names, samples=samples, seed=seed)
    base_record = None
    if base_dir is not None:
        if (base_dir / "robustness.json").exists() and covers(load_robustness(base_dir), **settings):
            base_record = load_robustness(base_dir)
            log.info("baseline: %s/robustness.json covers these images and corruptions", base_dir)
        else:
            base_record = run_robustness(base_dir, ds, device=device, progress=baseline_progress, **settings)
    return run_robustness(run_dir, ds, baseline=base_record, device=device, progress=progress, **settings)


def explain(run_dir: str | Path, *, per_class: int = 3, mistakes: int = 8, seed: int = 0,
            device: str | None = None, data: Dataset | str | os.PathLike | Callable | None = None,
            image_size: int | None = None) -> dict:
    """Where a run's model looks, into ``explain.json`` and two figures, as ``cnnlstm explain`` does.

    Parameters
    ----------
    run_dir : path
    per_class, mistakes, seed
        As ``cnnlstm explain``'s flags.
    device : str, optional
        Default: the run's own ``device`` setting.
    data : Dataset, str, path or callable, optional
        Default: the dataset the run was trained on, found as the CLI finds it. A data spec
        (``"fashion-mnist"``, a folder, an ``.npz`` file) as ``--data`` takes it; a loaded
        Dataset; or a callable that gets the run's config and returns the dataset.
    image_size : int, optional
        With an image folder: the side its images are resized to (default: the run's).

    Returns
    -------
    dict
        The ``explain.json`` record (:func:`cnnlstm.study.explain.run_explain`).
    """
    from cnnlstm.errors import ConfigError
    from cnnlstm.fileio import read_json
    from cnnlstm.study.explain import run_explain
    from cnnlstm.study.prelude import run_dataset

    if per_class < 1:
        raise ConfigError(f"per_class must be >= 1, got {per_class}")
    if mistakes < 0:
        raise ConfigError(f"mistakes must be >= 0, got {mistakes}")
    run_dir, cfg = _finished_run(run_dir, "best", device)
    run_explain(run_dir, run_dataset(cfg, data, image_size), per_class=per_class, mistakes=mistakes, seed=seed,
                device=device)
    return read_json(run_dir / "explain.json")


def default_report_path(inputs: list[str | Path]) -> Path:
    """``report.html`` inside the one input folder, else ``runs/report.html``."""
    if len(inputs) == 1:
        return Path(inputs[0]) / "report.html"
    return Path("runs") / "report.html"


def build_report(folders, *, out: str | Path | None = None, title: str | None = None,
                 explore=()) -> dict:
    """:func:`report`'s work, returning what was written: ``html``, ``md``, ``runs``, ``experiments``, ``sections``."""
    from cnnlstm.reporting import build_report as build

    folders = list(folders)
    return build(folders, Path(out) if out is not None else default_report_path(folders), title=title,
                 explore_dirs=explore)


def report(*folders: str | Path, out: str | Path | None = None, title: str | None = None,
           explore: tuple[str | Path, ...] | list[str | Path] = ()) -> Path:
    """One self-contained HTML report (and its Markdown twin) of run, explore or sweep folders.

    As ``cnnlstm report``: ``out`` defaults to ``report.html`` in the one folder given, else
    ``runs/report.html``.

    Returns
    -------
    Path
        The HTML file (the ``.md`` twin is beside it).
    """
    return build_report(folders, out=out, title=title, explore=explore)["html"]
