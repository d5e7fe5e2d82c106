"""The Python API for notebooks and scripts: the commands' steps as functions on paths and values.

Each function calls the same library functions as its command (``cnnlstm train``, ``evaluate``,
``embed``, ``report``), so a run made here is the run the command line would make, in the same
run folder layout (see ``docs/architecture.md``). They are re-exported lazily by :mod:`cnnlstm`::

    import cnnlstm

    run_dir = cnnlstm.train("cnn_lstm", epochs=1, limit_train=5000)
    run = cnnlstm.load_run(run_dir)            # config, model, metrics, history
    cnnlstm.embed(run_dir, samples=2000)       # figures/tsne.png
    cnnlstm.report(run_dir)                    # report.html
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

    from cnnlstm.config import TrainConfig
    from cnnlstm.data import Dataset

__all__ = ["Run", "compare", "default_report_path", "embed", "evaluate", "explain", "explore", "load_run",
           "regimes", "report", "reproduce", "robustness", "train"]

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


def _is_spec(data) -> bool:
    """Whether ``data`` is a data spec (``"fashion-mnist"``, a folder, an ``.npz`` path) rather than a dataset."""
    return isinstance(data, (str, os.PathLike))


def _check_image_size(image_size: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 0):
        from cnnlstm.errors import ConfigError

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

    _check_image_size(image_size)
    spec = str(data) if data is not None else cfg.data
    if image_size is None:
        image_size = cfg.image_size if spec_kind(spec) == "folder" else 0
    if data_dir is None and spec == cfg.data:
        data_dir = cfg.data_dir
    return dict(spec=spec, image_size=image_size, data_dir=data_dir, download=cfg.download, verify=cfg.verify)


def _run_dataset(cfg: TrainConfig, data, image_size: int | None = None) -> Dataset:
    """The dataset of a run: ``data(cfg)`` when it is a callable (the CLI's flags over the run's
    saved data settings), a loaded Dataset as given, else the data spec ``data`` (default: the
    run's own) loaded as :func:`run_data_settings` says."""
    if callable(data):
        return data(cfg)
    if data is not None and not _is_spec(data):
        if image_size is not None:
            from cnnlstm.errors import ConfigError

            raise ConfigError("image_size goes with a data spec (data='DIR'), not with a loaded Dataset")
        return data
    from cnnlstm.data import load_data

    settings = run_data_settings(cfg, data, image_size=image_size)
    return load_data(settings.pop("spec"), **settings)


MODEL_UNKNOWN = re.compile(r"unknown model '(?P<name>[^']+)'")


def add_model_hint(error: Exception) -> Exception:
    """An unknown-model error with "(did you mean 'X'?)" after the name.

    The model registry names an unknown model without a guess; the CLI and this API add the
    closest registered name (:func:`difflib.get_close_matches`), as a mistyped ``--set`` key gets.

    Parameters
    ----------
    error : Exception
        Any error; only ``unknown model 'NAME'`` ones without a guess yet are changed.

    Returns
    -------
    Exception
        A new error of the same type with the guess, or ``error`` itself when it is another
        error, already has a guess, or no registered name is close.
    """
    import difflib

    text = str(error)
    found = MODEL_UNKNOWN.search(text)
    if not found or "did you mean" in text:
        return error
    from cnnlstm.models import list_models

    close = difflib.get_close_matches(found["name"], list_models(), n=1)
    if not close:
        return error
    hinted = type(error)(f"{text[:found.end()]} (did you mean {close[0]!r}?){text[found.end():]}")
    hinted.__cause__ = error.__cause__
    return hinted


@contextmanager
def model_hints():
    """Re-raise an unknown-model :class:`cnnlstm.errors.ConfigError` with a "did you mean" added
    (:func:`add_model_hint`); every other error passes unchanged."""
    from cnnlstm.errors import ConfigError

    try:
        yield
    except ConfigError as exc:
        hinted = add_model_hint(exc)
        if hinted is exc:
            raise
        raise hinted from exc.__cause__


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

    if _is_spec(data):  # a spec is the config's `data` key, as `--data` is
        overrides = {**overrides, "data": str(data)}
        data = None
    with model_hints():
        if isinstance(config, TrainConfig):  # the config's values under the overrides, checked like a file
            cfg = resolve_train_config(overrides=deep_merge(config_to_dict(config), overrides))
        else:
            cfg = resolve_train_config(config, preset=preset, overrides=overrides)
    run_dir = Path(out) if out is not None else default_run_dir(cfg.model)
    train_run(cfg, run_dir, _run_dataset(cfg, data), evaluate=evaluate, on_epoch=on_epoch)
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
    from cnnlstm.runs import load_run_model, read_history, read_json

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

    if which not in ("best", "last"):
        from cnnlstm.errors import ConfigError

        raise ConfigError(f"which must be 'best' or 'last', got {which!r}")
    run_dir, cfg = _finished_run(run_dir, which, device)
    if tta and tta_views_for(cfg) is None:
        log.warning("tta has no effect: %s trained without flips", run_dir)
    return evaluate_run(run_dir, _run_dataset(cfg, data, image_size), which=which, tta=tta, device=device,
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

    check_tsne_settings(samples=samples, perplexity=perplexity, n_jobs=n_jobs, k0=k0)
    run_dir, cfg = _finished_run(run_dir, "best", device)
    return run_embed(run_dir, _run_dataset(cfg, data, image_size), samples=samples, perplexity=perplexity, k0=k0,
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

    check_tsne_settings(samples=tsne_samples, perplexity=perplexity, n_jobs=n_jobs, k0=k0, zero_skips=True,
                        what="tsne_samples")
    data = _spec_dataset(data, image_size)
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
    from cnnlstm.study.robustness import load_robustness, run_robustness

    severities = corr.check_severities(corr.SEVERITIES if severities is None else severities)
    names = corr.check_corruptions(corruptions or corr.list_corruptions())
    if samples is not None and samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    run_dir, cfg = _finished_run(run_dir, "best", device)
    base_dir = None
    if baseline is not None:
        base_dir, _ = _finished_run(baseline, "best", None)
    ds = _run_dataset(cfg, data, image_size)
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
    from cnnlstm.runs import read_json
    from cnnlstm.study.explain import run_explain

    if per_class < 1:
        raise ConfigError(f"per_class must be >= 1, got {per_class}")
    if mistakes < 0:
        raise ConfigError(f"mistakes must be >= 0, got {mistakes}")
    run_dir, cfg = _finished_run(run_dir, "best", device)
    run_explain(run_dir, _run_dataset(cfg, data, image_size), per_class=per_class, mistakes=mistakes, seed=seed,
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


def reproduce(preset: str = "quick", *, out: str | Path | None = None, seeds: int | None = None,
              models: tuple[str, ...] | list[str] | None = None, ablations: tuple[str, ...] | list[str] | None = None,
              tsne_samples: int | None = None, data: Dataset | str | os.PathLike | None = None,
              image_size: int | None = None, settings: dict | None = None, workers: int | None = None,
              dask: str | None = None, dask_tls: str | Path | None = None, gpu_per_job: float | None = None, model_file: str | None = None, events=None) -> dict:
    """The whole study into one folder, resumably, and its report, as ``cnnlstm reproduce`` does.

    Parameters
    ----------
    preset : {"quick", "paper", "best"}
    out : path, optional
        The study folder (default ``runs/reproduce-<preset>``); the same folder again resumes it.
    seeds : int, optional
        Seeds of every model trained (default: the preset's).
    models, ablations : sequence of str, optional
        Only these models / flagship ablations (``()`` for no ablations).
    tsne_samples : int, optional
        Images in the raw-pixel t-SNE (0 skips it).
    data : Dataset, str or path, optional
        A loaded dataset, or a data spec as ``--data`` takes it (``"mnist"``, a folder, an ``.npz``
        file). Default: the one ``settings`` names (``data``, ``image_size``, ``data_dir`` ...),
        found as the CLI finds it.
    image_size : int, optional
        With an image folder: the side its images are resized to (as ``settings``' ``image_size``).
    settings : dict, optional
        Config keys for every run, where it trains rather than what it learns (``device``,
        ``threads``, ``data_dir`` ...) plus ``limit_train`` for smoke studies.
    workers : int, optional
        Run the jobs on a Dask ``LocalCluster`` of this many worker processes on 127.0.0.1.
    dask : str, optional
        Run them on the Dask scheduler at this address (``tcp://host:8786``, ``tls://...``).
    dask_tls : path, optional
        A folder with ``ca.pem``, ``cert.pem`` and ``key.pem`` for a ``tls://`` scheduler.
    gpu_per_job : float, optional
        The share of a worker's ``GPU`` resource each job asks for (packs jobs onto one card).
    model_file : str, optional
        A Python file (or module name) of your own ``@register_model`` builders: each of its models
        (those of them named in ``models``, when given) trains with the flagship's preset and seeds
        and is compared with the flagship and its twin in the report's "Your models".
    events : cnnlstm.study.executor.JobEvents, optional
        Progress callbacks.

    Returns
    -------
    dict
        :func:`cnnlstm.study.reproduce.run_study`'s summary plus ``report`` (the HTML path) and
        ``out``; ``failed`` names every job that failed, with its error.
    """
    from dataclasses import replace

    from cnnlstm.errors import ConfigError
    from cnnlstm.models import get_model_entry
    from cnnlstm.study.reproduce import ABLATIONS, plan_jobs, run_study, study_preset
    from cnnlstm.study.study_report import write_study_report

    study = study_preset(preset)
    if tsne_samples is not None:
        if tsne_samples < 0:
            raise ConfigError(f"tsne_samples must be >= 0, got {tsne_samples}")
        study = replace(study, tsne_samples=tsne_samples)
    if seeds is not None and seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    user_models: tuple[tuple[str, str], ...] = ()
    if model_file:
        from cnnlstm.models.user import load_model_source

        source = load_model_source(model_file)
        user_models = tuple((m, source.spec) for m in source.models if models is None or m in models)
    with model_hints():
        for m in models or ():
            get_model_entry(m)  # an unknown name is a one-line error now, not after an hour
    unknown = set(ablations or ()) - set(ABLATIONS)
    if unknown:
        raise ConfigError(f"unknown ablation {sorted(unknown)[0]!r}; choose from {', '.join(ABLATIONS)}")
    common = _study_common(settings, workers, dask, gpu_per_job, data, image_size)
    data = None if _is_spec(data) else data
    root = Path(out) if out is not None else Path(f"runs/reproduce-{study.name}")
    jobs = plan_jobs(study, seeds=seeds, common=common, models=tuple(models) if models is not None else None,
                     ablations=tuple(ablations) if ablations is not None else None, user_models=user_models)
    if data is None:
        data = _common_dataset(common)
    jobs = _fit_jobs_to_dataset(jobs, data)
    executor = _study_executor(workers, dask, dask_tls, gpu_per_job)
    try:
        summary = run_study(root, data, study, jobs=jobs, events=events, executor=executor)
    finally:
        executor.close()
    summary.update(report=write_study_report(root, summary["jobs"], study, data, failed=summary["failed"]),
                   out=root)
    return summary


def _study_common(settings: dict | None, workers, dask, gpu_per_job, data=None,
                  image_size: int | None = None) -> dict:
    """The config keys every run of a study gets, checked, with a local worker's share of the cores;
    a data spec ``data`` and ``image_size`` become its ``data`` and ``image_size`` keys."""
    from cnnlstm.errors import ConfigError

    _check_image_size(image_size)
    if image_size is not None and data is not None and not _is_spec(data):
        raise ConfigError("image_size goes with a data spec (data='DIR'), not with a loaded Dataset")

    if workers is not None and dask is not None:
        raise ConfigError("choose one of workers (a local Dask cluster) and dask (an existing one)")
    if gpu_per_job is not None and not 0 < gpu_per_job <= 1:
        raise ConfigError(f"gpu_per_job must be in (0, 1], got {gpu_per_job}")
    common = dict(settings or {})
    if _is_spec(data):
        common["data"] = str(data)
    if image_size is not None:
        common["image_size"] = image_size
    if common.get("device") is not None:
        from cnnlstm.device import check_device_name

        check_device_name(common["device"])
    if workers is not None and not common.get("threads"):
        import os

        # Each local worker process gets an equal share of the cores (a runtime key: resuming the
        # study serially, or on another machine, may change it).
        common["threads"] = max(1, (os.cpu_count() or 1) // max(1, workers))
    return common


def _spec_dataset(data, image_size: int | None = None) -> Dataset:
    """``data`` when it is a loaded Dataset, else the data spec it names (default Fashion-MNIST) loaded."""
    _check_image_size(image_size)
    if data is not None and not _is_spec(data):
        if image_size is not None:
            from cnnlstm.errors import ConfigError

            raise ConfigError("image_size goes with a data spec (data='DIR'), not with a loaded Dataset")
        return data
    return _common_dataset({"data": str(data) if data is not None else "fashion-mnist",
                            "image_size": image_size or 0})


def _common_dataset(common: dict) -> Dataset:
    """The dataset a study's common settings name (``data``, ``image_size``, ``data_dir`` ...)."""
    from cnnlstm.data import load_data

    return load_data(common.get("data", "fashion-mnist"), image_size=common.get("image_size", 0),
                     data_dir=common.get("data_dir"), download=common.get("download", True),
                     verify=common.get("verify", True))


def compare(models: Sequence[str], *, out: str | Path | None = None, seeds: int = 3, preset: str | None = "fast",
            data: Dataset | str | os.PathLike | None = None, image_size: int | None = None,
            settings: dict | None = None, workers: int | None = None,
            dask: str | None = None, dask_tls: str | Path | None = None, gpu_per_job: float | None = None,
            events=None) -> dict:
    """Train ``models`` under one recipe and the same seeds, then compare every pair; as ``cnnlstm compare``.

    Parameters
    ----------
    models : sequence of str
        Two or more registered model names.
    out : path, optional
        The folder (default ``runs/compare-<A>-<B>...``); the same folder again resumes it.
    seeds : int, default 3
        Seeds 0 .. seeds-1 for every model: seed k of one model is paired with seed k of another.
    preset : str, optional
        The training preset every model trains with (default ``fast``; None for the config defaults).
    data : Dataset, str or path, optional
        A loaded dataset, or a data spec as ``--data`` takes it (``"mnist"``, a folder, an ``.npz``
        file). Default: the one ``settings`` names (``data``, ``image_size``, ``data_dir`` ...),
        found as the CLI finds it.
    image_size : int, optional
        With an image folder: the side its images are resized to (as ``settings``' ``image_size``).
    settings : dict, optional
        Config keys for every run (``epochs``, ``device``, ``threads``, ``data`` ...).
    workers, dask, dask_tls, gpu_per_job
        Where the runs train, as for :func:`reproduce`.

    Returns
    -------
    dict
        ``ran``, ``skipped``, ``failed`` (``{run: error}``), ``report`` (its path), ``pairs``
        (:class:`cnnlstm.reporting.compare.MatchedPair`, each with ``claim()``), ``out``.
    """
    from cnnlstm.study.compare import plan_compare, run_compare

    common = _study_common(settings, workers, dask, gpu_per_job, data, image_size)
    with model_hints():
        plan = plan_compare(models, seeds=seeds, preset=preset, common=common)
    if data is None or _is_spec(data):
        data = _common_dataset(common)
    jobs = _fit_jobs_to_dataset(plan, data)
    root = Path(out) if out is not None else Path("runs") / ("compare-" + "-".join(models))
    executor = _study_executor(workers, dask, dask_tls, gpu_per_job)
    try:
        summary = run_compare(root, data, jobs, executor=executor, events=events)
    finally:
        executor.close()
    return {**summary, "out": root}


def _fit_jobs_to_dataset(jobs: list, ds: Dataset) -> list:
    """Each training job's config as it will train on ``ds`` (its data spec; no label-changing flips),
    so the plan a resumed study checks its folders against is what the folders hold."""
    import dataclasses

    from cnnlstm.study.experiment import fit_config_to_dataset

    if not ds.flip_preserves_labels and any(j.cfg is not None and j.cfg.flip_h for j in jobs):
        log.warning("%s: a horizontal flip does not preserve its labels; every run trains without it (flip_h 0)",
                    ds.name)
    return [dataclasses.replace(j, cfg=fit_config_to_dataset(j.cfg, ds, warn=False)) if j.cfg is not None else j
            for j in jobs]


def _study_executor(workers, dask, dask_tls, gpu_per_job):
    """The executor the arguments ask for: serial by default, else a local or remote Dask cluster."""
    from cnnlstm.study.executor import DaskExecutor, SerialExecutor

    if dask_tls is not None and dask is None:
        from cnnlstm.errors import ConfigError

        raise ConfigError("dask_tls goes with dask (a tls:// scheduler address)")
    if workers is not None:
        return DaskExecutor.local(workers, gpu_per_job=gpu_per_job)
    if dask is not None:
        return DaskExecutor.connect(dask, tls=dask_tls, gpu_per_job=gpu_per_job)
    return SerialExecutor()


def regimes(*, out: str | Path | None = None, seeds: int = 3, sizes: Sequence[int] | None = None,
            widths: Sequence[Sequence[int]] | None = None, steps: int | None = None, size_pairs: bool = True,
            preset: str = "fast", data: Dataset | str | os.PathLike | None = None, image_size: int | None = None,
            settings: dict | None = None, workers: int | None = None, dask: str | None = None,
            dask_tls: str | Path | None = None, gpu_per_job: float | None = None, dry_run: bool = False, on_plan: Callable[[dict], None] | None = None,
            events=None) -> dict:
    """The regime study, as ``cnnlstm regimes``: each hybrid beside its control over a grid of
    training-set sizes and stem widths, plus test-time occlusion; resumable, into one folder.

    Parameters
    ----------
    out : path, optional
        The folder (default ``runs/regimes``); the same folder again resumes it.
    seeds : int, default 3
        Seeds of every model in every cell.
    sizes : sequence of int, optional
        Training-set sizes (0 = the whole training split); default 1,000, 6,000 and all.
    widths : sequence of (int, int), optional
        Stem channels of the flagship and its twin; default (8, 16), (16, 32), (24, 48).
    steps : int, optional
        Optimizer steps of a run on the whole training split (default 1,000); smaller sizes take
        ``steps * sqrt(n / n_full)`` (:func:`cnnlstm.study.regimes.regime_epochs`).
    size_pairs : bool, default True
        Also map ``model1_lstm`` vs ``model1`` over the sizes.
    preset : str, default "fast"
        The training preset of every run.
    data, image_size, settings, workers, dask, dask_tls, gpu_per_job, events
        As for :func:`compare`.
    dry_run : bool
        Plan and cost only: nothing is trained.
    on_plan : callable, optional
        Called with the cost (see Returns) once the plan is made, before anything trains.

    Returns
    -------
    dict
        ``cost`` (``train_runs``, ``occlusion_runs``, ``tflop``, ``gflops``: an fp32 training step
        timed on this machine's CPU, ``minutes``: the estimate from it), and unless ``dry_run``: ``ran``, ``skipped``, ``failed``,
        ``seconds``, ``report``, ``cells``, ``out``.
    """
    from dataclasses import replace

    from cnnlstm.study import regimes as R

    grid = R.RegimeGrid(seeds=seeds)
    if sizes is not None:
        grid = replace(grid, sizes=tuple(int(s) for s in sizes))
    if widths is not None:
        grid = replace(grid, widths=tuple(tuple(int(c) for c in w) for w in widths))
    if steps is not None:
        grid = replace(grid, steps_full=int(steps))
    grid = replace(grid, preset=preset, size_pairs=grid.size_pairs if size_pairs else ()).check()
    common = _study_common(settings, workers, dask, gpu_per_job, data, image_size)
    if data is None or _is_spec(data):
        data = _common_dataset(common)
    jobs = _fit_jobs_to_dataset(R.plan_regimes(grid, data, common=common), data)
    root = Path(out) if out is not None else Path("runs/regimes")
    # A resumed grid is costed by what is left of it; with nothing left there is nothing to time.
    left = [j for j in jobs if not R.job_done(j, root)]
    cost = R.plan_cost(jobs, data, grid)
    cost["left"] = R.plan_cost(left, data, grid)
    gflops = R.measure_rate(data, threads=common.get("threads", 0)) if left else None
    parallel = workers or 1
    cost.update(gflops=gflops, minutes=cost["left"]["tflop"] * 1e3 / (gflops * parallel) / 60 if left else 0.0)
    log.info("regime grid: %d training runs and %d occlusion evaluations, %.0f TFLOP, of which %.0f TFLOP are "
             "left; about %.0f min on %d process(es) at the measured fp32 rate of this CPU (smaller models run "
             "below it, so read it as a lower bound)", cost["train_runs"], cost["occlusion_runs"], cost["tflop"],
             cost["left"]["tflop"], cost["minutes"], parallel)
    if on_plan:
        on_plan(cost)
    if dry_run:
        return {"cost": cost}
    executor = _study_executor(workers, dask, dask_tls, gpu_per_job)
    try:
        summary = R.run_regimes(root, data, grid, jobs, executor=executor, events=events)
    finally:
        executor.close()
    return {**summary, "cost": cost, "out": root}
