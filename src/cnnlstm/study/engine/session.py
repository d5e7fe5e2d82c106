"""What every study does around its loop: settle the settings of its runs, load their dataset, fit
the planned configs to it, and open (and always close) the executor its jobs run on."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cnnlstm.data import Dataset, load_data
from cnnlstm.errors import ConfigError
from cnnlstm.study.engine.jobs import Job
from cnnlstm.study.prelude import check_image_size, is_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cluster:
    """Where a study's jobs run: this process (the default), a local Dask cluster of ``workers``
    processes on 127.0.0.1, or the Dask scheduler at ``dask``.

    Attributes
    ----------
    workers : int, optional
    dask : str, optional
        ``tcp://host:8786`` or ``tls://...``.
    dask_tls : path, optional
        A folder with ``ca.pem``, ``cert.pem`` and ``key.pem`` for a ``tls://`` scheduler.
    gpu_per_job : float, optional
        The share of a worker's ``GPU`` resource each job asks for.
    """

    workers: int | str | None = None
    dask: str | None = None
    dask_tls: str | Path | None = None
    gpu_per_job: float | None = None
    rule: str = ""  # with workers "auto", settled: the rule that chose the split (recorded in cluster.json)
    threads_per_job: int = 0  # with workers "auto", settled: the threads each job runs on

    def check(self) -> Cluster:
        """Return self, or raise :class:`ConfigError` naming the argument that does not fit."""
        if self.workers is not None and self.dask is not None and self.workers != AUTO:
            raise ConfigError("choose one of workers (a local Dask cluster) and dask (an existing one)")
        if self.workers is not None and self.workers != AUTO and (
                isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1):
            raise ConfigError(f"workers must be a number >= 1 or 'auto', got {self.workers!r}")
        if self.gpu_per_job is not None and not 0 < self.gpu_per_job <= 1:
            raise ConfigError(f"gpu_per_job must be in (0, 1], got {self.gpu_per_job}")
        if self.dask_tls is not None and self.dask is None:
            raise ConfigError("dask_tls goes with dask (a tls:// scheduler address)")
        return self

    @property
    def processes(self) -> int:
        """How many jobs run side by side on this machine (1 unless a local cluster)."""
        return self.workers if isinstance(self.workers, int) else 1


#: ``workers="auto"``: every core runs a job of one thread. Small convolutional nets on a CPU scale
#: poorly within one process (a batch's work is too small to split well over threads), so jobs side
#: by side use the cores better than threads within a job (benchmarks/RESULTS.md, "Every core").
AUTO = "auto"
AUTO_THREADS = 1
CLUSTER_FILE = "cluster.json"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under a batch system), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def settle_cluster(cluster: Cluster, root: Path, settings: dict) -> tuple[Cluster, dict]:
    """``workers="auto"`` made concrete for this machine, and ``workers=1`` made a serial run.

    Auto runs one job per core at :data:`AUTO_THREADS` thread each (or at the ``threads`` asked
    for). The threads per job are what a run's numbers depend on, so a study folder records them
    (``cluster.json``) and a resumed auto study keeps them, on any machine; the number of workers
    is only how many run at once. One usable core, or one worker, is the serial run.

    Returns
    -------
    (Cluster, dict)
        The cluster to open and the run settings with ``threads`` set.
    """
    settings = dict(settings)
    if cluster.workers == 1:
        return dataclasses.replace(cluster, workers=None), settings
    if cluster.workers != AUTO or cluster.dask is not None:
        return dataclasses.replace(cluster, workers=None if cluster.workers == AUTO else cluster.workers), settings
    record = root / CLUSTER_FILE
    kept = json.loads(record.read_text()).get("threads_per_job") if record.is_file() else None
    settings_threads = settings.get("threads")
    threads = int(settings_threads or kept or AUTO_THREADS)
    cores = usable_cores()
    workers = max(1, cores // threads)
    settings["threads"] = threads
    rule = (f"{cores} usable core(s), {threads} thread(s) per job"
            + (" (kept from this folder's cluster.json)" if kept == threads and not settings_threads else "")
            + f": {workers} job(s) at a time")
    return dataclasses.replace(cluster, workers=workers if workers > 1 else None, rule=rule,
                               threads_per_job=threads), settings


@contextmanager
def open_executor(cluster: Cluster, root: Path | None = None) -> Iterator:
    """The executor ``cluster`` asks for, closed on the way out whatever happens; a settled auto
    cluster's rule is recorded in ``root/cluster.json`` (see :func:`settle_cluster`)."""
    from cnnlstm.study.engine.executor import DaskExecutor, SerialExecutor

    cluster.check()
    if cluster.workers is not None and cluster.workers != AUTO:
        executor = DaskExecutor.local(cluster.workers, gpu_per_job=cluster.gpu_per_job)
    elif cluster.dask is not None:
        executor = DaskExecutor.connect(cluster.dask, tls=cluster.dask_tls, gpu_per_job=cluster.gpu_per_job)
    else:
        executor = SerialExecutor()
    if cluster.rule and root is not None:
        from cnnlstm.fileio import write_json

        Path(root).mkdir(parents=True, exist_ok=True)
        write_json(Path(root) / CLUSTER_FILE, {"rule": cluster.rule, "workers": cluster.processes,
                                               "threads_per_job": cluster.threads_per_job, "cores": usable_cores()})
        log.info("jobs: %s", cluster.rule)
    try:
        yield executor
    finally:
        executor.close()


def run_settings(settings: dict | None, cluster: Cluster, data=None, image_size: int | None = None) -> dict:
    """The config keys every run of a study gets, checked; a data spec ``data`` and ``image_size``
    become its ``data`` and ``image_size`` keys, and a local worker gets its share of the cores."""
    check_image_size(image_size)
    if image_size is not None and data is not None and not is_spec(data):
        raise ConfigError("image_size goes with a data spec (data='DIR'), not with a loaded Dataset")
    cluster.check()
    common = dict(settings or {})
    if is_spec(data):
        common["data"] = str(data)
    if image_size is not None:
        common["image_size"] = image_size
    if common.get("device") is not None:
        from cnnlstm.device import check_device_name

        check_device_name(common["device"])
    if isinstance(cluster.workers, int) and not common.get("threads"):
        # Each local worker process gets an equal share of the cores (a runtime key: resuming the
        # study serially, or on another machine, may change it).
        common["threads"] = max(1, (os.cpu_count() or 1) // cluster.workers)
    return common


def study_dataset(data, common: dict) -> Dataset:
    """``data`` when it is a loaded Dataset, else the dataset the run settings name (default Fashion-MNIST)."""
    if data is not None and not is_spec(data):
        return data
    return load_data(common.get("data", "fashion-mnist"), image_size=common.get("image_size", 0),
                     data_dir=common.get("data_dir"), download=common.get("download", True),
                     verify=common.get("verify", True))


def fit_jobs_to_dataset(jobs: list[Job], ds: Dataset) -> list[Job]:
    """Each training job's config as it will train on ``ds`` (its data spec; no label-changing flips),
    so the plan a resumed study checks its folders against is what the folders hold."""
    from cnnlstm.study.experiment import fit_config_to_dataset

    if not ds.flip_preserves_labels and any(j.cfg is not None and j.cfg.flip_h for j in jobs):
        log.warning("%s: a horizontal flip does not preserve its labels; every run trains without it (flip_h 0)",
                    ds.name)
    return [dataclasses.replace(j, cfg=fit_config_to_dataset(j.cfg, ds, warn=False)) if j.cfg is not None else j
            for j in jobs]
