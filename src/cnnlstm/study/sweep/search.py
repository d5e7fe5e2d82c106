"""Hyper-parameter sweeps: Optuna studies whose trials are ordinary run folders.

One worker (``cnnlstm sweep MODEL --trials N``) runs trials one after another until the study
holds N finished (complete or pruned) trials; the same command on several machines pointed at
one PostgreSQL database (``--storage postgresql://...``) joins the same study and shares the N.

- Sampler: TPE, seeded per trial (trial k's random draws depend only on the seed and k, so
  workers started with the same ``--seed`` do not propose the same points), with the constant
  liar so concurrent trials spread out.
- Pruner: the median rule on the validation accuracy reported after every epoch
  (``MedianPruner``); a pruned trial's run folder holds the epochs it finished (history,
  checkpoint, best weights), like any interrupted run. A trial whose loss becomes NaN/inf is
  recorded as pruned too, with ``user_attrs["stopped"] = "non-finite loss"``: it finished,
  badly, and TPE should learn from it.
- Objective: the best validation accuracy of the trial's epochs. Trials never touch the test
  set (``evaluate=False``): test accuracy is for final figures only.
- Exactly N: a worker counts the study's finished, running and waiting trials before and after
  asking for a new one; a trial asked for beyond N (two workers racing) is closed at once as
  FAIL with ``user_attrs["surplus"] = True`` and left out of ``sweep.json``.
- Dead workers: every running trial records a heartbeat; a worker finds trials whose heartbeat
  is older than the grace period, marks them FAIL and queues a retry with the same parameters
  (``RetryHeartbeatStaleTrialCallback``). The retry continues from the dead attempt's last
  checkpoint when its run folder is reachable (same machine or a shared file system).

The search space is a list of :class:`cnnlstm.study.sweep.space.Param` (:mod:`cnnlstm.study.sweep.space`);
storages and heartbeats are in :mod:`cnnlstm.study.sweep.storage`.

Why one module of this size: the worker loop, the trial lifecycle (run, prune, retry a dead
attempt) and the results are one state machine over one Optuna study; splitting it would put
the retry rules apart from the loop that applies them.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cnnlstm.config import TrainConfig, config_to_dict, deep_merge, resolve_train_config
from cnnlstm.errors import ConfigError, RunError
from cnnlstm.study.sweep.results import _count, _states, _trial_record
from cnnlstm.study.sweep.space import Param, nest
from cnnlstm.study.sweep.storage import fail_stale_trials, heartbeat, make_storage, masked, retry_callback

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

RUN_FILES = ("config.json", "checkpoint.pt", "best.pt", "checksums.json", "history.csv")  # what a retry carries over


# --------------------------------------------------------------------------- settings


@dataclass
class SweepSettings:
    """What one sweep worker does (the CLI builds it from its flags)."""

    model: str
    n_trials: int  # finished (complete + pruned) trials the STUDY should hold, over all workers
    out_dir: Path  # trial run folders (trial-<number>), sweep.json, figures/
    study_name: str
    storage_url: str  # e.g. sqlite:///runs/sweep/study.db or postgresql://user:pw@host/db
    space: list[Param] = field(default_factory=list)
    fixed: dict = field(default_factory=dict)  # --set values, nested; fixed for every trial
    preset: str | None = None
    seed: int = 0  # the sampler's seed (the training seed is the config's `seed`)
    heartbeat_interval: int = 60  # seconds between a running trial's heartbeats
    grace_period: int | None = None  # seconds without a heartbeat before a trial counts as dead (None: 2x)
    max_retry: int = 3  # retries of a trial whose worker died
    prune: bool = True
    pruner_startup_trials: int = 5  # the median rule starts once this many trials finished
    pruner_warmup_epochs: int = 1  # and never prunes at or before this epoch


# --------------------------------------------------------------------------- sampler


def _sampler_class():
    import optuna

    class TrialSeededTPE(optuna.samplers.BaseSampler):
        """TPE whose random draws for trial k come from seed (base, k).

        TPE keeps no state between trials besides its RNG (it re-reads the study's history for
        every suggestion), so a fresh TPE per trial changes nothing but where the randomness
        comes from: workers sharing a seed then propose different points, and trial k is the
        same whichever worker runs it.
        """

        def __init__(self, seed: int, **tpe_kwargs: Any):
            self._seed, self._kwargs = seed, tpe_kwargs
            self._tpe = self._make(0)

        def _make(self, number: int):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # constant_liar is experimental
                return optuna.samplers.TPESampler(seed=(self._seed * 1_000_003 + number) % 2**32, **self._kwargs)

        def before_trial(self, study, trial):
            self._tpe = self._make(trial.number)
            self._tpe.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._tpe.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._tpe.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._tpe.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self._tpe.after_trial(study, trial, state, values)

        def reseed_rng(self):
            self._tpe.reseed_rng()

    return TrialSeededTPE


def make_sampler(seed: int) -> "optuna.samplers.BaseSampler":
    """Per-trial-seeded TPE with the constant liar (see the module docstring)."""
    return _sampler_class()(seed, constant_liar=True)


def make_pruner(settings: SweepSettings) -> "optuna.pruners.BasePruner":
    import optuna

    if not settings.prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup_trials,
                                       n_warmup_steps=settings.pruner_warmup_epochs)


# --------------------------------------------------------------------------- study


def open_study(settings: SweepSettings, storage, *, pruner=None, sampler=None) -> "optuna.Study":
    """Create the study, or join it when it exists (``load_if_exists``); check it is this model's.

    Raises
    ------
    ConfigError
        The study exists but optimises another model.
    """
    import optuna

    study = optuna.create_study(study_name=settings.study_name, storage=storage, direction="maximize",
                                load_if_exists=True, sampler=sampler or make_sampler(settings.seed),
                                pruner=pruner or make_pruner(settings))
    attrs = study.user_attrs
    if attrs.get("model", settings.model) != settings.model:
        raise ConfigError(f"study '{settings.study_name}' in {masked(settings.storage_url)} optimises "
                          f"{attrs['model']}, not {settings.model}; choose another --study")
    if "model" not in attrs:
        study.set_user_attr("model", settings.model)
        study.set_user_attr("n_trials", settings.n_trials)
        study.set_user_attr("space", {p.name: p.to_dict() for p in settings.space})
        study.set_user_attr("fixed", settings.fixed)
        study.set_user_attr("preset", settings.preset)
    return study


def trial_config(settings: SweepSettings, params: dict) -> TrainConfig:
    """The config of a trial: defaults < preset < the trial's parameters < ``--set`` values."""
    overrides = deep_merge(nest(params), settings.fixed)
    return resolve_train_config(settings.model, preset=settings.preset, overrides=overrides)


def base_config(settings: SweepSettings) -> TrainConfig:
    """The config every trial starts from (no searched values); checks the sweep can work.

    Raises
    ------
    ConfigError
        Bad fixed values, or no validation split (the objective needs one).
    """
    cfg = trial_config(settings, {})
    if not cfg.val_size:
        raise ConfigError("a sweep needs a validation split: val_size must be > 0")
    return cfg


def next_action(study, n_trials: int, can_wait: bool) -> str:
    """``"run"`` a trial, ``"wait"`` for other workers' running trials, or ``"stop"``.

    Waiting (rather than stopping) while the last trials run elsewhere keeps a worker around
    to retry them if their worker dies; it needs heartbeats (``can_wait``) to notice that.
    """
    S = _states()
    trials = study.get_trials(deepcopy=False)
    done = _count(trials, S.COMPLETE, S.PRUNED)
    if done >= n_trials:
        return "stop"
    if _count(trials, S.WAITING) or done + _count(trials, S.RUNNING) < n_trials:
        return "run"
    return "wait" if can_wait else "stop"


def is_surplus(study, number: int, n_trials: int) -> bool:
    """True when trials numbered below ``number`` already finish, run or queue ``n_trials``."""
    S = _states()
    before = [t for t in study.get_trials(deepcopy=False) if t.number < number]
    return _count(before, S.COMPLETE, S.PRUNED, S.RUNNING, S.WAITING) >= n_trials


def run_sweep(settings: SweepSettings, ds, *, pruner=None, sampler=None,
              on_trial: Callable[[Any], None] | None = None, poll_seconds: float | None = None) -> "optuna.Study":
    """Run trials until the study holds ``settings.n_trials`` finished ones; return the study.

    Parameters
    ----------
    settings : SweepSettings
    ds : cnnlstm.data.Dataset
        Loaded once, shared by every trial of this worker.
    pruner, sampler : optional
        Replace the defaults (:func:`make_pruner`, :func:`make_sampler`).
    on_trial : callable, optional
        ``on_trial(frozen_trial)`` after each trial this worker finished.
    poll_seconds : float, optional
        How often a waiting worker looks again (default: the heartbeat interval, at most 5 s).
    """
    base_config(settings)
    storage = make_storage(settings.storage_url, settings.heartbeat_interval, settings.grace_period,
                           settings.max_retry)
    study = open_study(settings, storage, pruner=pruner, sampler=sampler)
    can_wait = bool(settings.heartbeat_interval)
    poll = poll_seconds or min(5.0, float(settings.heartbeat_interval or 5))
    while True:
        fail_stale_trials(study)
        action = next_action(study, settings.n_trials, can_wait)
        if action == "stop":
            return study
        if action == "wait":
            time.sleep(poll)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "heartbeat is meant for Study.optimize": we beat ourselves
            trial = study.ask()
        if is_surplus(study, trial.number, settings.n_trials):
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=_states().FAIL)
            log.info("trial %d not run: the study already has %d trials", trial.number, settings.n_trials)
            continue
        frozen = run_trial(study, trial, settings, ds)
        if on_trial:
            on_trial(frozen)


def run_trial(study, trial, settings: SweepSettings, ds):
    """Train one trial under a heartbeat and tell the study how it ended; return it frozen."""
    import optuna

    from cnnlstm.training.loop import NonFiniteLoss, TrainingInterrupted

    S = _states()
    value, state = None, S.COMPLETE
    with heartbeat(study._storage, trial._trial_id):
        try:
            value = objective(trial, settings, ds)
        except optuna.TrialPruned as exc:
            state = S.PRUNED
            trial.set_user_attr("stopped", str(exc) or "pruned")
        except NonFiniteLoss as exc:
            state = S.PRUNED
            trial.set_user_attr("stopped", f"non-finite loss: {exc}")
        except TrainingInterrupted:
            _close(study, trial, S.FAIL, None, settings)
            retry_callback(settings.max_retry)(study, study._storage.get_trial(trial._trial_id))
            raise
        except BaseException as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            _close(study, trial, S.FAIL, None, settings)
            raise
    return _close(study, trial, state, value, settings)


def _close(study, trial, state, value, settings: SweepSettings):
    """``study.tell`` (tolerating a trial another worker already failed as stale) + trial.json."""
    import optuna

    try:
        study.tell(trial, value if state == _states().COMPLETE else None, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was marked finished by another worker (its heartbeat lapsed)", trial.number)
    frozen = study._storage.get_trial(trial._trial_id)
    run_dir = settings.out_dir / f"trial-{trial.number}"
    if run_dir.is_dir():
        from cnnlstm.fileio import write_json

        write_json(run_dir / "trial.json", _trial_record(frozen, settings.out_dir))
    log.info("trial %d %s%s", frozen.number, frozen.state.name.lower(),
             f": best val_acc {frozen.value:.4f}" if frozen.value is not None else "")
    return frozen


def objective(trial, settings: SweepSettings, ds) -> float:
    """Train the trial's config into ``<out>/trial-<number>``; return its best validation accuracy.

    Reports the validation accuracy after every epoch and raises ``optuna.TrialPruned`` when the
    pruner says so (after the epoch's checkpoint and history are written).
    """
    import optuna

    from cnnlstm.study.experiment import train_run

    params = {p.name: p.suggest(trial) for p in settings.space}
    cfg = trial_config(settings, params)
    run_dir = (settings.out_dir / f"trial-{trial.number}").resolve()
    resume = adopt_previous_attempt(trial.user_attrs, run_dir, cfg)
    trial.set_user_attr("config", config_to_dict(cfg))
    trial.set_user_attr("run_dir", str(run_dir))  # absolute: a retry on this machine finds it
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())

    def on_epoch(row: dict) -> None:
        trial.report(row["val_acc"], row["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {row['epoch']} (val_acc {row['val_acc']:.4f})")

    if resume:
        from cnnlstm.fileio import read_history

        for row in read_history(run_dir / "history.csv"):  # the dead attempt's epochs
            on_epoch(row)
    result = train_run(cfg, run_dir, ds, resume=resume, evaluate=False, on_epoch=on_epoch)
    return best_val_acc(result["state"].history)


def best_val_acc(history: list[dict]) -> float:
    """The highest validation accuracy over the epochs (the objective)."""
    values = [r["val_acc"] for r in history if r.get("val_acc") is not None and not math.isnan(r["val_acc"])]
    if not values:
        raise RunError("the trial produced no validation accuracy")
    return max(values)


def adopt_previous_attempt(user_attrs: dict, run_dir: Path, cfg: TrainConfig) -> bool:
    """Copy a dead attempt's run folder into ``run_dir`` so the retry resumes it; True if copied.

    A retry inherits the dead trial's user attributes, among them ``run_dir``; its folder is
    used when it is reachable from here, holds a checkpoint and was trained with this same
    config (workers may differ in ``--set``).
    """
    previous = user_attrs.get("run_dir")
    if not previous or Path(previous) == run_dir or run_dir.exists():
        return False
    previous = Path(previous)
    if not (previous / "checkpoint.pt").is_file() or user_attrs.get("config") != config_to_dict(cfg):
        return False
    run_dir.mkdir(parents=True)
    for name in RUN_FILES:
        if (previous / name).is_file():
            shutil.copy2(previous / name, run_dir / name)
    log.info("resuming %s from the checkpoint of %s", run_dir, previous)
    return True
