"""Where a sweep's study lives: Optuna RDB storages (SQLite, PostgreSQL) and trial heartbeats.

Every running trial records a heartbeat (:func:`heartbeat`); a worker finds trials whose
heartbeat is older than the grace period, marks them FAIL and queues a retry with the same
parameters (:func:`fail_stale_trials`, ``RetryHeartbeatStaleTrialCallback``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from cnnlstm.errors import ConfigError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

SQLITE_TIMEOUT_S = 60  # how long an SQLite writer waits for another worker's lock


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


def retry_callback(max_retry: int):
    """Optuna's callback that queues a retry (same parameters) of a trial whose worker died."""
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
                  cb_arg: retry_callback(max_retry)}
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


def check_storage_url(url: str) -> str:
    """``url`` if it looks like a database URL, else a ConfigError with examples."""
    if "://" not in url:
        raise ConfigError(f"--storage {url!r} is not a database URL; e.g. sqlite:///{url} or "
                          "postgresql://user:password@host/database")
    return url


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
