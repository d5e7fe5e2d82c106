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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

    from cnnlstm.config import TrainConfig
    from cnnlstm.data import Dataset

__all__ = ["Run", "default_report_path", "embed", "evaluate", "load_run", "report", "train"]

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


def _run_dataset(cfg: TrainConfig, data: Dataset | None) -> Dataset:
    """``data`` as given, else the dataset the config names (found or downloaded as the CLI does)."""
    if data is not None:
        return data
    from cnnlstm.data import load_dataset

    return load_dataset(cfg.data_dir, download=cfg.download, verify=cfg.verify)


def train(config: TrainConfig | str | None = None, *, out: str | Path | None = None, preset: str | None = None,
          data: Dataset | None = None, evaluate: bool = True,
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
    data : Dataset, optional
        Train on this dataset (default: the one the config names, as the CLI finds it).
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
    from cnnlstm.experiment import train_run
    from cnnlstm.runs import default_run_dir

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
             data: Dataset | None = None, figures: bool = True) -> dict:
    """Evaluate a run's weights on the test set into its folder, as ``cnnlstm evaluate`` does.

    Parameters
    ----------
    run_dir : path
    which : {"best", "last"}
    tta : bool
        Average the softmax over the flips the run trained with.
    device : str, optional
        Default: the run's own ``device`` setting.
    data : Dataset, optional
        Default: the dataset the run was trained on, found as the CLI finds it.
    figures : bool, default True
        Also (re)draw ``figures/`` (confusion matrices, ROC curves, curves, misclassified images).

    Returns
    -------
    dict
        The ``metrics.json`` content.
    """
    from cnnlstm.device import check_device_name
    from cnnlstm.experiment import evaluate_run
    from cnnlstm.runs import load_run_config, run_lock, weights_path

    run_dir = Path(run_dir)
    if device is not None:
        check_device_name(device)
    cfg = load_run_config(run_dir)
    weights_path(run_dir, which)  # a missing checkpoint fails before the data is loaded
    ds = _run_dataset(cfg, data)
    with run_lock(run_dir):
        return evaluate_run(run_dir, ds, which=which, tta=tta, device=device, figures=figures)


def embed(run_dir: str | Path, *, samples: int | None = None, perplexity: float = 30.0, k0: int | None = None,
          seed: int = 0, device: str | None = None, n_jobs: int = -1, data: Dataset | None = None) -> dict:
    """t-SNE of a run's learned features on the test set, as ``cnnlstm embed`` does.

    Writes ``embedding.npy``, ``embed.json`` and ``figures/tsne.png`` into the run folder; see
    :func:`cnnlstm.exploration.run_embed` for the parameters (PCA initialisation, K0 =
    floor((ln n)^2) unless ``k0`` is given).

    Returns
    -------
    dict
        The ``embed.json`` record (settings, seconds, embedding-quality metrics).
    """
    from cnnlstm.device import check_device_name
    from cnnlstm.exploration import run_embed
    from cnnlstm.runs import load_run_config, weights_path

    run_dir = Path(run_dir)
    if device is not None:
        check_device_name(device)
    cfg = load_run_config(run_dir)
    weights_path(run_dir, "best")
    return run_embed(run_dir, _run_dataset(cfg, data), samples=samples, perplexity=perplexity, k0=k0, seed=seed,
                     device=device, n_jobs=n_jobs)


def default_report_path(inputs: list[str | Path]) -> Path:
    """``report.html`` inside the one input folder, else ``runs/report.html``."""
    if len(inputs) == 1:
        return Path(inputs[0]) / "report.html"
    return Path("runs") / "report.html"


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
    from cnnlstm.report import build_report

    result = build_report(list(folders), Path(out) if out is not None else default_report_path(list(folders)),
                          title=title, explore_dirs=explore)
    return result["html"]
