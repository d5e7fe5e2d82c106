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

The search space is a list of :class:`Param`; :func:`default_space` gives the built-in one and
:func:`load_space` reads a TOML/YAML/JSON file (format in ``docs/scaling.md``)::

    lr = {type = "float", low = 1e-4, high = 1e-2, log = true}
    batch_size = {type = "categorical", choices = [64, 128, 256]}
    epochs = {type = "int", low = 2, high = 8, step = 2}
    [model_args]
    dropout = {type = "float", low = 0.0, high = 0.5}
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from cnnlstm.config import (TrainConfig, config_to_dict, deep_merge, load_config_file,
                            resolve_train_config)
from cnnlstm.errors import ConfigError, RunError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

PARAM_TYPES = ("float", "int", "categorical")
RUN_FILES = ("config.json", "checkpoint.pt", "best.pt", "history.csv")  # what a retry carries over
SQLITE_TIMEOUT_S = 60  # how long an SQLite writer waits for another worker's lock


# --------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class Param:
    """One searched config key.

    Attributes
    ----------
    name : str
        A TrainConfig key, or ``model_args.<arg>`` for a model argument.
    type : str
        ``float``, ``int`` or ``categorical``.
    low, high : float or int
        Inclusive range (float and int).
    log : bool
        Sample on a log scale (float and int; ``low`` must be > 0).
    step : float or int, optional
        Grid step (float and int; not with ``log``).
    choices : tuple
        The values of a categorical (numbers, strings, booleans).
    """

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def suggest(self, trial: "optuna.trial.Trial") -> Any:
        """Draw this parameter's value for ``trial``."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1),
                                     log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def to_dict(self) -> dict:
        """The space-file form of this parameter (inverse of :func:`parse_param`)."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        return out


def parse_param(name: str, spec: Any, where: str = "space") -> Param:
    """Check one space entry (``{type=..., ...}``) and return it as a :class:`Param`.

    Raises
    ------
    ConfigError
        Naming the entry: unknown type or key, empty choices, low >= high, log with low <= 0.
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where}: '{name}' must be a table with a type ({', '.join(PARAM_TYPES)})")
    kind = spec["type"]
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{where}: '{name}' has type {kind!r}; valid: {', '.join(PARAM_TYPES)}")
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ConfigError(f"{where}: '{name}' ({kind}) does not take {', '.join(extra)}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices or not all(
                isinstance(c, (bool, int, float, str)) for c in choices):
            raise ConfigError(f"{where}: '{name}' needs choices = "
                              "[a non-empty list of numbers, strings or booleans]")
        return Param(name, kind, choices=tuple(choices))
    return _numeric_param(name, kind, spec, where)


def _numeric_param(name: str, kind: str, spec: dict, where: str) -> Param:
    number = int if kind == "int" else (int, float)
    low, high, step, log_ = spec.get("low"), spec.get("high"), spec.get("step"), spec.get("log", False)
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, number):
            raise ConfigError(f"{where}: '{name}' needs {key} = a{'n integer' if kind == 'int' else ' number'}")
    if not low < high:
        raise ConfigError(f"{where}: '{name}' needs low < high, got {low} and {high}")
    if not isinstance(log_, bool):
        raise ConfigError(f"{where}: '{name}': log must be true or false")
    if log_ and low <= 0:
        raise ConfigError(f"{where}: '{name}': a log scale needs low > 0")
    if step is not None and (log_ or isinstance(step, bool) or not isinstance(step, number) or step <= 0):
        raise ConfigError(f"{where}: '{name}': step must be a positive number, and not with log")
    return Param(name, kind, low=low, high=high, log=log_, step=step)


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"model_args": {"dropout": x}}`` -> ``{"model_args.dropout": x}`` (tables of params excepted)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "type" not in value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def nest(flat: dict) -> dict:
    """Inverse of :func:`flatten`: dotted keys become nested tables."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def parse_space(data: dict, where: str = "space") -> list[Param]:
    """A whole space (a table of entries, ``model_args`` entries nested or dotted)."""
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{where}: expected a table of parameters")
    return [parse_param(name, spec, where) for name, spec in flatten(data).items()]


def load_space(path: str | Path) -> list[Param]:
    """Read a search-space file (``.toml``, ``.yaml``/``.yml`` or ``.json``)."""
    return parse_space(load_config_file(path), where=str(path))


def default_space(model: str) -> list[Param]:
    """The built-in space: optimiser, LR, weight decay, batch, flips, and the model's dropout and
    LSTM width where it has them (see :func:`cnnlstm.models.model_args`)."""
    from cnnlstm.models import model_args

    args = model_args(model)
    space = [
        Param("lr", "float", low=1e-4, high=1e-2, log=True),
        Param("weight_decay", "float", low=1e-6, high=1e-2, log=True),
        Param("batch_size", "categorical", choices=(64, 128, 256)),
        Param("optimizer", "categorical", choices=("adamw", "adam", "nadam", "sgd")),
        Param("flip_h", "categorical", choices=(0.0, 0.5)),
        Param("flip_v", "categorical", choices=(0.0, 0.5)),
    ]
    if "dropout" in args:
        space.append(Param("model_args.dropout", "float", low=0.0, high=0.5))
    if "lstm_hidden" in args:
        space.append(Param("model_args.lstm_hidden", "categorical", choices=(32, 64, 128, 256)))
    return space


def check_space(space: list[Param], model: str, fixed: dict) -> list[Param]:
    """Drop parameters ``fixed`` (``--set``) already pins; reject keys the config or model lacks."""
    from cnnlstm.models import model_args

    keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "model_args"}
    margs = set(model_args(model)) - {"num_classes", "image_size"}
    pinned = set(flatten(fixed))
    out = []
    for p in space:
        head, _, arg = p.name.partition(".")
        ok = (head == "model_args" and arg in margs) if arg else head in keys
        if not ok:
            valid = sorted(keys) if not arg else [f"model_args.{a}" for a in sorted(margs)]
            raise ConfigError(f"search space: '{p.name}' is not a config key of {model}; "
                              f"valid: {', '.join(valid)}")
        if p.name in pinned:
            log.info("%s is fixed by --set; not searched", p.name)
            continue
        out.append(p)
    return out


# --------------------------------------------------------------------------- settings and storage


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


def default_storage(out_dir: str | Path) -> str:
    """``sqlite:///<out_dir>/study.db`` (absolute path)."""
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


def masked(url: str) -> str:
    """The storage URL with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is reported by the caller
        return url.split("@")[-1]


def with_driver(url: str) -> str:
    """Name an installed PostgreSQL driver in a plain ``postgresql://`` (or ``postgres://``) URL.

    SQLAlchemy 2.1 maps a plain ``postgresql://`` to psycopg 3; where only psycopg2 (our
    ``postgres`` extra) is installed, the URL becomes ``postgresql+psycopg2://``.
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql://{rest}"


def _retry_callback(max_retry: int):
    from optuna import storages

    cls = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-API warnings
        return cls(max_retry=max_retry)


def make_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int = 3) -> "optuna.storages.RDBStorage":
    """An Optuna RDB storage; with ``heartbeat_interval``, dead workers' trials get retried.

    Raises
    ------
    ConfigError
        Not a database URL, a missing driver (PostgreSQL needs psycopg2), or no connection.
    """
    import optuna

    url = with_driver(check_storage_url(url))
    kwargs: dict[str, Any] = {}
    if heartbeat_interval:
        import inspect

        cb_arg = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback"
                  in inspect.signature(optuna.storages.RDBStorage).parameters else "failed_trial_callback")
        kwargs = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
                  cb_arg: _retry_callback(max_retry)}
    engine = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    for attempt in range(3):  # workers creating the tables at the same moment may collide once
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, **kwargs)
        except ImportError as exc:
            raise ConfigError(f"storage {masked(url)} needs a database driver ({exc}); for PostgreSQL: "
                              "pip install 'cnnlstm[postgres]'") from exc
        except Exception as exc:  # sqlalchemy errors: connection refused, bad URL, races
            if attempt == 2:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"cannot open storage {masked(url)}: {first}") from exc
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


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


def check_storage_url(url: str) -> str:
    """``url`` if it looks like a database URL, else a ConfigError with examples."""
    if "://" not in url:
        raise ConfigError(f"--storage {url!r} is not a database URL; e.g. sqlite:///{url} or "
                          "postgresql://user:password@host/database")
    return url


def _states():
    from optuna.trial import TrialState

    return TrialState


def _count(trials, *states) -> int:
    return sum(1 for t in trials if t.state in states)


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


@contextlib.contextmanager
def heartbeat(storage, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every interval while the block runs (no-op without heartbeats)."""
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception as exc:  # noqa: BLE001 - a flaky database must not kill the trial
                log.warning("heartbeat of trial id %d failed: %s", trial_id, exc)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale_trials(study) -> None:
    """Mark trials whose worker stopped beating as FAIL and queue their retries."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)


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

    from cnnlstm.train import NonFiniteLoss, TrainingInterrupted

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
            _retry_callback(settings.max_retry)(study, study._storage.get_trial(trial._trial_id))
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
        from cnnlstm.runs import write_json

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

    from cnnlstm.experiment import train_run

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
        from cnnlstm.runs import read_history

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


# --------------------------------------------------------------------------- results


def _trial_record(t, out_dir: Path | None = None) -> dict:
    """One trial as sweep.json lists it.

    ``value`` is the best validation accuracy of a complete trial and, Optuna's convention, the
    last reported one of a pruned trial. ``run_dir`` is relative to the sweep folder when inside
    it; ``host`` says which machine holds it.
    """
    return {"number": t.number, "value": t.value, "state": t.state.name, "params": dict(t.params),
            "epochs": len(t.intermediate_values), "run_dir": _relative(t.user_attrs.get("run_dir"), out_dir),
            "host": t.user_attrs.get("host"), "pid": t.user_attrs.get("pid"),
            "stopped": t.user_attrs.get("stopped"), "error": t.user_attrs.get("error"),
            "retry_of": t.system_attrs.get("failed_trial")}


def _relative(path: str | None, out_dir: Path | None) -> str | None:
    if path is None or out_dir is None:
        return path
    try:
        return str(Path(path).relative_to(Path(out_dir).resolve()))
    except ValueError:
        return path


def param_importances(study, seed: int = 0) -> dict[str, float]:
    """fANOVA importances of the parameters over the complete trials ({} below two of them)."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(_states().COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as exc:  # e.g. no parameter varies across the trials
        log.info("no parameter importances: %s", exc)
        return {}
    return {k: float(v) for k, v in imp.items() if not math.isnan(v)}


def summarize(study, seed: int = 0, out_dir: str | Path | None = None) -> dict:
    """The content of ``sweep.json`` (surplus trials left out; see :func:`_trial_record`)."""
    S = _states()
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    complete = [t for t in trials if t.state == S.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    return {
        "study": study.study_name,
        "direction": "maximize",
        "objective": "best validation accuracy over the epochs (the test set is never used)",
        "model": study.user_attrs.get("model"),
        "n_trials": study.user_attrs.get("n_trials"),
        "counts": {s.name: _count(trials, s) for s in (S.COMPLETE, S.PRUNED, S.FAIL, S.RUNNING, S.WAITING)},
        "best": ({"value": best.value, "params": dict(best.params), "number": best.number,
                  "run_dir": _relative(best.user_attrs.get("run_dir"), out_dir)} if best else None),
        "trials": [_trial_record(t, out_dir) for t in trials],
        "importances": param_importances(study, seed),
    }


def write_outputs(study, out_dir: str | Path, seed: int = 0) -> dict:
    """Write ``sweep.json`` and ``figures/sweep_{history,importances}.png``; return the summary."""
    from cnnlstm.runs import write_json

    out_dir = Path(out_dir)
    summary = summarize(study, seed, out_dir)
    write_json(out_dir / "sweep.json", summary)
    plot_history(summary["trials"], out_dir / "figures" / "sweep_history.png")
    plot_importances(summary["importances"], out_dir / "figures" / "sweep_importances.png")
    return summary


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_history(trials: list[dict], path: Path) -> Path:
    """Objective per trial (complete: dots, pruned: crosses at their last value) and best so far."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    pruned = [t for t in trials if t["state"] == "PRUNED" and t["value"] is not None]
    ax.scatter([t["number"] for t in done], [t["value"] for t in done], s=18, label="complete")
    if pruned:
        ax.scatter([t["number"] for t in pruned], [t["value"] for t in pruned], marker="x", s=18,
                   color="0.55", label="pruned (last epoch)")
    if done:
        xs, best, run = [], [], -math.inf
        for t in sorted(done, key=lambda t: t["number"]):
            run = max(run, t["value"])
            xs.append(t["number"])
            best.append(run)
        ax.step(xs, best, where="post", color="C3", label="best so far")
    else:
        ax.text(0.5, 0.5, "no complete trials yet", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="trial", ylabel="best validation accuracy", title="Sweep history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if done or pruned:
        ax.legend(loc="lower right", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_importances(importances: dict[str, float], path: Path) -> Path:
    """Horizontal bars of the parameter importances (a note when there are none)."""
    fig = _figure(6.4, max(2.4, 0.4 * len(importances) + 1.2))
    ax = fig.add_subplot()
    if importances:
        names = list(importances)[::-1]  # most important on top
        ax.barh(names, [importances[n] for n in names], color="C0")
        ax.set(xlabel="importance (fANOVA, sums to 1)")
    else:
        ax.text(0.5, 0.5, "needs at least 2 complete trials with varying parameters", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title("Parameter importances")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------- best config


def best_config(storage_url: str, study_name: str) -> tuple[dict, Any]:
    """The full training config of the study's best trial, and that trial (frozen).

    Raises
    ------
    ConfigError
        No such study in the storage (the message lists the ones there).
    RunError
        The study has no complete trial yet.
    """
    import optuna

    storage = make_storage(storage_url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if study_name not in names:
        raise ConfigError(f"no study '{study_name}' in {masked(storage_url)}; studies there: "
                          f"{', '.join(names) or 'none'}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    complete = study.get_trials(deepcopy=False, states=(_states().COMPLETE,))
    if not complete:
        raise RunError(f"study '{study_name}' has no complete trial yet")
    best = max(complete, key=lambda t: (t.value, -t.number))
    return dict(best.user_attrs["config"]), best


def dump_config(cfg: dict, fmt: str, header: str = "") -> str:
    """``cfg`` as a ``toml``, ``yaml`` or ``json`` text that ``cnnlstm train --config`` reads.

    TOML has no null: keys whose value is None (their default, e.g. ``data_dir``) are left out.
    """
    if fmt == "json":
        return json.dumps(cfg, indent=2) + "\n"
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    if fmt in ("yaml", "yml"):
        import yaml

        return comment + yaml.safe_dump(cfg, sort_keys=False)
    if fmt != "toml":
        raise ConfigError(f"unknown config format {fmt!r}; use toml, yaml or json")
    lines = [f"{k} = {_toml_value(v)}" for k, v in cfg.items() if v is not None and not isinstance(v, dict)]
    for key, table in cfg.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return comment + "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} as TOML")
