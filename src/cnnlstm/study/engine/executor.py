"""Where a study's jobs run: in this process one after another, or as tasks on a Dask cluster.

Both executors take the same jobs (:class:`cnnlstm.study.engine.jobs.Job`) and give the same
answer: with the same seeds and the same threads per job, every run's ``metrics.json`` is
bit-identical whichever one ran it (a test checks it).

- :class:`SerialExecutor` runs each job in the study folder itself, as ``cnnlstm reproduce``
  always did: a run interrupted mid-epoch resumes from its checkpoint.
- :class:`DaskExecutor` submits each job as a Dask task. It needs no shared filesystem: the
  dataset is scattered to the workers once (``client.scatter``), a job travels with the files
  its folder already holds (a partial run's checkpoint, the finished run an embedding reads),
  the worker runs it in local scratch and returns the folder's files, and this process writes
  them into the study folder, each atomically and the job's final file (``metrics.json``,
  ``embed.json`` ...) last, so a half-written run never counts as done.

Faults: a worker that dies mid-task has its task rerun elsewhere by Dask (at most
``allowed_failures`` times on a cluster this process starts); a job that raises is recorded by
name with its error and the rest of the study goes on; a lost scheduler ends the study with one
line, and the same command resumes it, skipping finished jobs.

Safety: a Dask scheduler runs whatever code its clients send. :meth:`DaskExecutor.local` binds
its scheduler and workers to 127.0.0.1 only, with no dashboard; an address given to
:meth:`DaskExecutor.connect` should be loopback or a private network, with TLS
(``tls://`` and a folder of certificates) whenever the network is shared. cnnlstm never starts a
scheduler on any other address by itself.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cnnlstm._version import __version__
from cnnlstm.errors import ConfigError, RunError
from cnnlstm.fileio import atomic_write
from cnnlstm.study.engine.joblog import JobEvents
from cnnlstm.study.engine.jobs import FINAL_FILE, AnalysisArgs, Job, job_key, job_priority, run_job

if TYPE_CHECKING:
    from cnnlstm.data import Dataset

log = logging.getLogger(__name__)

SKIPPED_FILES = (".lock",)  # a folder's lock belongs to the process that holds it, never shipped
INSTALL_HINT = "pip install 'cnnlstm[cluster]' (Dask distributed)"
RESUBMITS = 3  # times a job whose inputs died with a worker is submitted again


# --------------------------------------------------------------------------- a job's files


def pack_folder(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` as ``{relative path: bytes}``, without locks and temp files."""
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in SKIPPED_FILES and not path.name.endswith(".tmp"):
            out[path.relative_to(folder).as_posix()] = path.read_bytes()
    return out


def unpack_folder(folder: Path, files: dict[str, bytes], final: str | None = None) -> None:
    """Write ``files`` under ``folder``, each atomically, ``final`` last (when among them).

    A process killed part-way leaves some new files and the job's old final file (or none), so
    the job is not taken for done and is run again.
    """
    order = sorted(files, key=lambda rel: (rel == final, rel))
    for rel in order:
        target = (folder / rel).resolve()
        if folder.resolve() not in target.parents:  # a crafted name must not escape the folder
            raise RunError(f"refusing to write {rel!r} outside {folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, files[rel])


def run_remote_job(job: Job, files: dict[str, bytes], ds: Dataset, settings: AnalysisArgs,
                   baseline: dict | None, version: str) -> dict:
    """What a Dask worker runs: one job in local scratch; the files it wrote or changed are returned.

    Parameters
    ----------
    job : Job
    files : dict
        The files the job's folder holds in the study folder already (empty for a new run).
    ds : Dataset
        The scattered dataset.
    settings : AnalysisArgs
    baseline : dict or None
        Model I's ``robustness.json`` record, for a robustness job of another model.
    version : str
        The driver's cnnlstm version; a worker with another one refuses the job, since the two
        would train different code under one study.

    Returns
    -------
    dict
        ``files`` (``{relative path: bytes}``), ``seconds`` (the job's run time on the worker,
        without its time in the queue) and ``where`` (the worker's host and process).
    """
    if version != __version__:
        raise RunError(f"this worker has cnnlstm {__version__}, the study's driver {version}: install the same "
                       "version on every worker")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnnlstm-job-") as scratch:
        folder = job.folder(Path(scratch))
        unpack_folder(folder, files)
        run_job(job, folder, ds, settings, baseline=baseline)
        # Only what the job wrote or changed travels back (an embedding returns its few files, not
        # the run's checkpoints it was sent); the job's final file is always among them.
        changed = {rel: data for rel, data in pack_folder(folder).items() if files.get(rel) != data}
    return {"files": changed, "seconds": time.perf_counter() - t0, "where": _this_process()}


def _this_process() -> str:
    import socket

    return f"{socket.gethostname()} pid {os.getpid()}"


# --------------------------------------------------------------------------- executors


class SerialExecutor:
    """Every job in this process, one at a time, directly in the study folder (the default)."""

    name = "serial"

    def run(self, jobs: list[Job], root: Path, ds: Dataset, settings: AnalysisArgs, events: JobEvents,
            baselines: Callable[[Job], dict | None]) -> dict[str, str]:
        """Run ``jobs`` in order; return ``{job name: error}`` of those that failed."""
        from cnnlstm.training.loop import TrainingInterrupted

        failures = {}
        where = f"this process ({_this_process()})"
        for job in jobs:
            events.on_start(job, where)
            t0 = time.perf_counter()
            error = None
            try:
                run_job(job, job.folder(root), ds, settings, baseline=baselines(job),
                        on_step=events.on_step, on_epoch=events.on_epoch)
            except (TrainingInterrupted, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - one failed job must not stop the study
                error = failures[job_key(job)] = one_line(exc)
                log.error("%s failed: %s", job_key(job), error)
            events.on_end(job, time.perf_counter() - t0, error, where)
        return failures

    def close(self) -> None:
        pass


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, (RunError, ConfigError)) else text


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"--workers and --dask need Dask: {INSTALL_HINT}") from None
    return distributed


def security_from_folder(folder: str | Path):
    """A :class:`distributed.security.Security` from ``ca.pem``, ``cert.pem`` and ``key.pem`` in ``folder``."""
    distributed = _import_distributed()
    folder = Path(folder)
    paths = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise ConfigError(f"--dask-tls {folder}: missing {', '.join(missing)} (ca.pem, cert.pem and key.pem)")
    return distributed.security.Security(tls_ca_file=str(paths["ca"]), tls_client_cert=str(paths["cert"]),
                                         tls_client_key=str(paths["key"]), require_encryption=True)


def is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class DaskExecutor:
    """Jobs as Dask tasks on a cluster: a :meth:`local` one on this machine, or one to :meth:`connect` to.

    Parameters
    ----------
    client : distributed.Client
    cluster : distributed.LocalCluster, optional
        The cluster this executor started (closed with it).
    gpu_per_job : float, optional
        Each task asks for this much of the workers' ``GPU`` resource (workers started with
        ``--resources GPU=k`` then run up to ``k / gpu_per_job`` jobs at once: packing small jobs
        onto one card).
    """

    name = "dask"

    def __init__(self, client, cluster=None, *, gpu_per_job: float | None = None, where: str = ""):
        self.client = client
        self.cluster = cluster
        self.gpu_per_job = gpu_per_job
        self.where = where
        self._ds_future = None
        self._ds_id = None

    @classmethod
    def local(cls, n_workers: int, *, allowed_failures: int = 3, gpu_per_job: float | None = None) -> DaskExecutor:
        """A ``LocalCluster`` of ``n_workers`` processes on 127.0.0.1, no dashboard.

        Each worker runs one job at a time (one Dask thread): torch's thread count is a setting of
        the whole process, so two jobs in one process would fight over it. The runs' own
        ``threads`` setting gives each job its share of the cores.
        """
        distributed = _import_distributed()
        import dask

        if n_workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {n_workers}")
        with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
            # The scheduler serves a small HTTP endpoint (health, metrics) even without the dashboard:
            # it too is pinned to loopback, on a free port.
            cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                               processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                               worker_dashboard_address="127.0.0.1:0",
                                               resources={"GPU": 1.0} if gpu_per_job else None)
            client = distributed.Client(cluster)
        log.info("Dask: %d local worker process(es) on 127.0.0.1", n_workers)
        return cls(client, cluster, gpu_per_job=gpu_per_job, where=f"{n_workers} local workers")

    @classmethod
    def connect(cls, address: str, *, tls: str | Path | None = None, gpu_per_job: float | None = None,
                timeout: float = 30.0) -> DaskExecutor:
        """A client of the scheduler at ``address`` (``tcp://host:8786`` or ``tls://host:8786``)."""
        distributed = _import_distributed()
        security = security_from_folder(tls) if tls else None
        if tls and not address.startswith("tls://"):
            raise ConfigError(f"--dask-tls needs a tls:// scheduler address, got {address}")
        if not tls and not is_loopback(address):
            log.warning("Dask scheduler %s without TLS: anyone who can reach it can run code on every worker, "
                        "and the data travels in clear; use a private network, or tls:// with --dask-tls", address)
        try:
            client = distributed.Client(address, security=security, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise RunError(f"cannot reach the Dask scheduler at {address}: {one_line(exc)}") from exc
        n = len(client.scheduler_info().get("workers", {}))
        log.info("Dask: scheduler %s with %d worker(s)", address, n)
        return cls(client, gpu_per_job=gpu_per_job, where=address)

    def _dataset(self, ds: Dataset):
        if self._ds_id != id(ds):
            self._ds_future = self.client.scatter(ds, broadcast=True, hash=False)
            self._ds_id = id(ds)
        return self._ds_future

    def run(self, jobs: list[Job], root: Path, ds: Dataset, settings: AnalysisArgs, events: JobEvents,
            baselines: Callable[[Job], dict | None]) -> dict[str, str]:
        """Submit ``jobs`` at once, write each result as it arrives; return ``{job name: error}``.

        A job whose input vanished with a dead worker (the scattered dataset lives on the workers
        only) is submitted again after the dataset is scattered anew, at most ``RESUBMITS`` times.
        """
        from distributed import as_completed

        if not jobs:
            return {}
        failures: dict[str, str] = {}
        resubmits: dict[str, int] = {}
        try:
            pending = as_completed()
            futures = {}
            for job in jobs:
                fut = self._submit(job, root, ds, settings, baselines)
                futures[fut] = (job, time.perf_counter())
                pending.add(fut)
                events.on_start(job, f"the queue of {self.where}")
            events.on_running(self.running())
            for fut in pending:
                job, t0 = futures.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:  # noqa: BLE001 - one failed job must not stop the study
                    if self.client.status != "running" or _scheduler_lost(exc):
                        raise
                    key = job_key(job)
                    if fut.status == "cancelled" and resubmits.get(key, 0) < RESUBMITS:
                        resubmits[key] = resubmits.get(key, 0) + 1
                        log.warning("%s lost its inputs with a worker; submitting it again", key)
                        self._ds_id = None  # scatter the dataset again
                        again = self._submit(job, root, ds, settings, baselines)
                        futures[again] = (job, t0)
                        pending.add(again)
                        continue
                    error = failures[key] = one_line(exc)
                    log.error("%s failed on the cluster: %s", key, error)
                    events.on_end(job, time.perf_counter() - t0, error, self.where)
                else:
                    unpack_folder(job.folder(root), result["files"], FINAL_FILE[job.kind])
                    events.on_end(job, result["seconds"], None, result["where"])
                events.on_running(self.running())
        except RunError:
            raise
        except Exception as exc:
            if self.client.status != "running" or _scheduler_lost(exc):
                raise RunError(f"lost the Dask scheduler ({self.where}): {one_line(exc)}; finished jobs are kept, "
                               "rerun the same command to resume") from exc
            raise
        return failures

    def _submit(self, job: Job, root: Path, ds: Dataset, settings: AnalysisArgs, baselines):
        resources = {"GPU": self.gpu_per_job} if self.gpu_per_job else None
        # The costliest jobs first (Dask runs higher priorities first): a 36-epoch reference that
        # started last would hold the whole study up while the other workers sat idle.
        return self.client.submit(run_remote_job, job, pack_folder(job.folder(root)), self._dataset(ds), settings,
                                  baselines(job), __version__, key=f"{job_key(job)}-{os.urandom(4).hex()}",
                                  resources=resources, pure=False, retries=0, priority=job_priority(job))

    def running(self) -> dict[str, list[str]]:
        """Which worker executes which task now (``{worker address: [task keys]}``).

        Asked of the workers themselves: the scheduler's ``processing`` also lists the tasks it has
        already assigned to a worker that will run them later, which read as if all ran at once.
        """
        try:
            executing = self.client.run(_executing_keys)
            return {w: sorted(keys) for w, keys in executing.items() if keys}
        except Exception:  # noqa: BLE001 - a progress nicety must never end the study
            return {}

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _scheduler_lost(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    try:
        from distributed.comm.core import CommClosedError
    except ImportError:  # pragma: no cover
        CommClosedError = OSError  # noqa: N806
    names = {type(exc).__name__ for exc in _chain(exc)}
    # A job's own errors (a NaN loss, a damaged checkpoint) are never taken for a lost scheduler:
    # only the comm layer's. A cancelled future is judged by the caller with the client's status.
    return bool(names & {"CommClosedError", "StreamClosedError"}) or any(
        isinstance(e, (CommClosedError, ConnectionError)) for e in _chain(exc))


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _executing_keys(dask_worker) -> list[str]:
    """The keys of the tasks a worker is executing (run on each worker by ``Client.run``)."""
    return [str(ts.key) for ts in dask_worker.state.executing]
