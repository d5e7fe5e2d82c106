"""The one loop every study runs its jobs through: skip finished jobs, run the rest, record failures."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from cnnlstm.data import Dataset
from cnnlstm.fileio import write_json
from cnnlstm.study.engine.executor import SerialExecutor
from cnnlstm.study.engine.joblog import JobEvents, with_job_log
from cnnlstm.study.engine.jobs import AnalysisArgs, Job, check_recipes, job_done, job_key

log = logging.getLogger(__name__)

#: Written into the study folder only after a job failed for good: ``{job: one-line error}``.
FAILURES_FILE = "failures.json"


def run_jobs(root: str | Path, ds: Dataset, jobs: list[Job], *, executor=None, events: JobEvents | None = None,
             args: AnalysisArgs | None = None, baseline: Callable[[Job], dict | None] | None = None,
             later: Callable[[], list[list[Job]]] | None = None) -> dict:
    """Run every job of ``jobs`` not yet done, then the waves ``later()`` plans from what finished.

    Each wave goes to ``executor`` (default :class:`~cnnlstm.study.engine.executor.SerialExecutor`)
    as one batch, so a cluster runs a wave's jobs side by side. Finished jobs are skipped (their
    final file exists), so the same call resumes a study; a folder trained with another recipe is
    refused first (:func:`~cnnlstm.study.engine.jobs.check_recipes`). A job that fails is recorded
    in ``failures.json`` and the rest go on; the file goes once every job has finished.

    Parameters
    ----------
    root : path
        The study folder.
    ds : Dataset
    jobs : list of Job
        The first wave (the training runs, and anything else that needs no finished run).
    executor : SerialExecutor or DaskExecutor, optional
    events : JobEvents, optional
        Progress callbacks; every ended job is also a row of the folder's ``jobs.csv``.
    args : AnalysisArgs, optional
        The keyword arguments of each analysis kind.
    baseline : callable, optional
        ``baseline(job)``: the record a robustness job normalises by, or None.
    later : callable, optional
        Called once the first wave has run: the waves of jobs that read finished runs, in order.

    Returns
    -------
    dict
        ``{"jobs": every job planned, "ran": int, "skipped": int, "failed": {job: error}, "seconds": float}``.
    """
    root = Path(root)
    executor = executor or SerialExecutor()
    events = with_job_log(events or JobEvents(), root)
    args = args or AnalysisArgs()
    baseline = baseline or (lambda job: None)
    check_recipes(jobs, root)
    t_start, ran, skipped, failed = time.perf_counter(), 0, 0, {}
    all_jobs, waves, first = list(jobs), [list(jobs)], True
    while waves:
        wave = waves.pop(0)
        todo = [j for j in wave if not job_done(j, root)]
        skipped += len(wave) - len(todo)
        for job in wave:
            if job not in todo:
                log.info("skipping %s (done)", job_key(job))
        failed.update(executor.run(todo, root, ds, args, events, baseline))
        ran += len(todo)
        if first and later is not None:  # now it is known which runs finished, to analyse
            waves = later()
            all_jobs += [j for w in waves for j in w]
        first = False
    record_failures(root, failed)
    return {"jobs": all_jobs, "ran": ran, "skipped": skipped, "failed": failed,
            "seconds": time.perf_counter() - t_start}


def record_failures(root: Path, failed: dict[str, str]) -> None:
    """``failures.json`` names the jobs that failed for good; without failures it is removed."""
    path = root / FAILURES_FILE
    if failed:
        write_json(path, failed)
    elif path.exists():
        path.unlink()
