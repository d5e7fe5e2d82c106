"""The Python API's studies: the plan's study, ``compare`` and the regime map, each checked here and
run by its study's one ``run`` (:mod:`cnnlstm.api` re-exports them)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from cnnlstm.data import Dataset

__all__ = ["compare", "regimes", "reproduce"]


def _where(root: Path, settings: dict | None, data, image_size, workers, dask, dask_tls, gpu_per_job):
    """The cluster a study opens and the settings of its runs (``workers="auto"`` settled for this
    machine and the folder: :func:`cnnlstm.study.engine.session.settle_cluster`)."""
    from cnnlstm.study.engine.session import Cluster, run_settings, settle_cluster

    cluster = Cluster(workers, dask, dask_tls, gpu_per_job).check()
    return settle_cluster(cluster, root, run_settings(settings, cluster, data, image_size))


def _seeds(seeds, max_seeds: int):
    """A number of seeds as given, or ``"auto"`` as the engine's :class:`SeedRule`."""
    from cnnlstm.errors import ConfigError
    from cnnlstm.study.engine.seeds import SeedRule

    if seeds == "auto":
        return SeedRule(max_seeds=max_seeds).check()
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f"seeds must be a whole number >= 1 or 'auto', got {seeds!r}")
    return seeds


def reproduce(preset: str = "quick", *, out: str | Path | None = None, seeds: int | str | None = None,
              max_seeds: int = 10,
              models: Sequence[str] | None = None, ablations: Sequence[str] | None = None,
              tsne_samples: int | None = None, data: Dataset | str | os.PathLike | None = None,
              image_size: int | None = None, settings: dict | None = None, workers: int | str | None = None,
              dask: str | None = None, dask_tls: str | Path | None = None, gpu_per_job: float | None = None,
              model_file: str | None = None, positive_control: str | Path | None = None, events=None) -> dict:
    """The plan's whole study into one folder, resumably, and its report, as ``cnnlstm reproduce`` does.

    Parameters
    ----------
    preset : {"quick", "paper", "best"}
        The study preset (:data:`cnnlstm.study.paper.plan.STUDY_PRESETS`: seeds, and the training
        preset of each model family).
    out : path, optional
        The study folder (default ``runs/reproduce-<preset>``); the same folder again resumes it.
    seeds : int or "auto", optional
        Seeds of every model the preset trains (default: the preset's); never adds a model.
        ``"auto"`` grows them (from 3, 2 at a time, at most ``max_seeds``) until every
        hybrid-vs-control interval is at most the margin wide.
    max_seeds : int, default 10
        The cap of ``seeds="auto"``.
    models, ablations : sequence of str, optional
        Only these models / flagship ablations (``()`` for no ablations).
    tsne_samples : int, optional
        Images in the raw-pixel t-SNE (0 skips it).
    data : Dataset, str or path, optional
        A loaded dataset, or a data spec as ``--data`` takes it; default: the one ``settings`` names.
    image_size : int, optional
        With an image folder: the side its images are resized to.
    settings : dict, optional
        Config keys every run gets, where it trains rather than what it learns (``device``,
        ``threads``, ``data_dir`` ...) plus ``limit_train`` for smoke studies.
    workers, dask, dask_tls, gpu_per_job
        Where the jobs run (:class:`cnnlstm.study.engine.session.Cluster`): ``"auto"`` (one job per
        core, one thread each, as the command does by default), a local Dask cluster of ``workers``
        processes on 127.0.0.1 (1: this process, one job after another), or the scheduler at ``dask``
        (``tls://`` with the certificates in ``dask_tls``); ``gpu_per_job`` packs jobs onto one card.
        Default None: this process.
    model_file : str, optional
        A file (or module) of your own ``@register_model`` builders: each of its models (those named
        in ``models``, when given) trains with the flagship's preset and seeds, beside the flagship.
    positive_control : path, optional
        The folder of an earlier :func:`compare` (the positive control of docs/positive-control.md)
        whose result the report prints in "Could this study have seen a benefit?"; without it that
        section gives the command that measures one.
    events : cnnlstm.study.engine.executor.JobEvents, optional
        Progress callbacks.

    Returns
    -------
    dict
        :func:`cnnlstm.study.paper.run_study`'s summary plus ``report`` and ``out``.
    """
    from cnnlstm.models import get_model_entry
    from cnnlstm.study import paper

    study = paper.study_preset(preset)
    user_models: tuple[tuple[str, str], ...] = ()
    if model_file:
        from cnnlstm.models.user import load_model_source

        source = load_model_source(model_file)
        user_models = tuple((m, source.spec) for m in source.models if models is None or m in models)
    for m in models or ():
        get_model_entry(m)  # an unknown name is a one-line error now, not after an hour
    root = Path(out) if out is not None else Path(f"runs/reproduce-{study.name}")
    cluster, per_run = _where(root, settings, data, image_size, workers, dask, dask_tls, gpu_per_job)
    return paper.run(study, out=root, data=data, settings=per_run, cluster=cluster, seeds=_seeds(seeds, max_seeds),
                     models=tuple(models) if models is not None else None,
                     ablations=tuple(ablations) if ablations is not None else None, tsne_samples=tsne_samples,
                     user_models=user_models, positive_control=positive_control, events=events)


def compare(models: Sequence[str], *, out: str | Path | None = None, seeds: int | str = 3, max_seeds: int = 10,
            preset: str | None = "fast",
            data: Dataset | str | os.PathLike | None = None, image_size: int | None = None,
            settings: dict | None = None, workers: int | str | None = None, dask: str | None = None,
            dask_tls: str | Path | None = None, gpu_per_job: float | None = None, events=None) -> dict:
    """Train ``models`` under one recipe and the same seeds, then compare every pair; as ``cnnlstm compare``.

    Parameters
    ----------
    models : sequence of str
        Two or more registered model names.
    out : path, optional
        The folder (default ``runs/compare-<A>-<B>...``); the same folder again resumes it.
    seeds : int or "auto", default 3
        Seeds 0 .. seeds-1 for every model: seed k of one model is paired with seed k of another.
        ``"auto"`` adds seeds (from 3, 2 at a time, at most ``max_seeds``) until every pair's 95%
        interval is at most the margin wide (:mod:`cnnlstm.study.engine.seeds`).
    max_seeds : int, default 10
        The cap of ``seeds="auto"``.
    preset : str, optional
        The training preset every model trains with (default ``fast``; None for the config defaults).
    data, image_size, settings, workers, dask, dask_tls, gpu_per_job, events
        As for :func:`reproduce` (``settings`` may also set training keys such as ``epochs``).

    Returns
    -------
    dict
        ``ran``, ``skipped``, ``failed`` (``{run: error}``), ``report`` (its path), ``pairs``
        (:class:`cnnlstm.reporting.compare.MatchedPair`, each with ``claim()``), ``out``.
    """
    from cnnlstm.study import compare as study

    root = Path(out) if out is not None else Path("runs") / ("compare-" + "-".join(models))
    cluster, per_run = _where(root, settings, data, image_size, workers, dask, dask_tls, gpu_per_job)
    return study.run(models, out=root, seeds=_seeds(seeds, max_seeds), preset=preset, data=data,
                     settings=per_run, cluster=cluster, events=events)


def regimes(*, out: str | Path | None = None, seeds: int | str = 3, max_seeds: int = 10, sizes: Sequence[int] | None = None,
            widths: Sequence[Sequence[int]] | None = None, steps: int | None = None, size_pairs: bool = True,
            pairs: Sequence[Sequence[str]] | None = None, preset: str = "fast", data: Dataset | str | os.PathLike | None = None, image_size: int | None = None,
            settings: dict | None = None, workers: int | str | None = None, dask: str | None = None,
            dask_tls: str | Path | None = None, gpu_per_job: float | None = None, dry_run: bool = False,
            on_plan: Callable[[dict], None] | None = None, events=None) -> dict:
    """The regime study, as ``cnnlstm regimes``: each hybrid beside its control over a grid of
    training-set sizes and stem widths, plus test-time occlusion; resumable, into one folder.

    Parameters
    ----------
    out : path, optional
        The folder (default ``runs/regimes``); the same folder again resumes it.
    seeds : int or "auto", default 3
        Seeds of every model in every cell; ``"auto"`` grows them (from 3, 2 at a time, at most
        ``max_seeds``) until every primary endpoint's 95% interval is at most the margin wide.
    max_seeds : int, default 10
        The cap of ``seeds="auto"``.
    sizes : sequence of int, optional
        Training-set sizes (0 = the whole training split); default 1,000, 6,000 and all.
    widths : sequence of (int, int), optional
        Stem channels of the flagship and its twin; default (8, 16), (16, 32), (24, 48).
    steps : int, optional
        Optimizer steps of a run on the whole training split (default 1,000); smaller sizes take
        ``steps * sqrt(n / n_full)`` (:func:`cnnlstm.study.regimes.regime_epochs`).
    size_pairs : bool, default True
        Also map ``model1_lstm`` vs ``model1`` (or ``pairs``) over the sizes.
    pairs : sequence of (str, str), optional
        (hybrid, control) pairs mapped over the sizes at their own widths, with the same occlusion
        and translation curves, in place of ``model1_lstm`` vs ``model1``: e.g.
        ``[("spoerer_bl", "spoerer_bk"), ("conv_lstm", "conv_lstm_ff")]``. With ``widths=[]`` the
        flagship's width axis is left out.
    preset : str, default "fast"
        The training preset of every run.
    data, image_size, settings, workers, dask, dask_tls, gpu_per_job, events
        As for :func:`reproduce`.
    dry_run : bool
        Plan and cost only: nothing is trained.
    on_plan : callable, optional
        Called with the cost (see Returns) once the plan is made, before anything trains.

    Returns
    -------
    dict
        ``cost`` (``train_runs``, ``occlusion_runs``, ``tflop``, ``left``, ``gflops``: an fp32 training
        step timed on this CPU, ``seconds`` and ``minutes``: the estimate from it), and unless
        ``dry_run``: ``ran``, ``skipped``, ``failed``, ``seconds``, ``report``, ``cells``, ``out``.
    """
    from cnnlstm.study import regimes as study

    rule = _seeds(seeds, max_seeds)
    grid = study.make_grid(seeds=rule.start if not isinstance(rule, int) else rule, sizes=sizes, widths=widths,
                           steps=steps, size_pairs=size_pairs, pairs=pairs, preset=preset)
    root = Path(out) if out is not None else Path("runs/regimes")
    cluster, per_run = _where(root, settings, data, image_size, workers, dask, dask_tls, gpu_per_job)
    return study.run(grid, out=root, data=data, settings=per_run, cluster=cluster, events=events,
                     dry_run=dry_run, on_plan=on_plan, seed_rule=None if isinstance(rule, int) else rule)
