"""What an executor reports as jobs start and end, and the study folder's job log (``jobs.csv``)."""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from cnnlstm.study.engine.jobs import Job, job_key

log = logging.getLogger(__name__)


@dataclass
class JobEvents:
    """What an executor reports as jobs start and end (the CLI's progress display listens).

    ``on_start(job, where)`` and ``on_end(job, seconds, error, where)``: ``where`` names the
    process or Dask worker that runs (ran) the job; ``seconds`` is the job's own run time, measured
    where it ran (for a job that failed on a cluster, the time since it was queued); ``error`` is
    None for a job that finished.
    """

    on_start: Callable[[Job, str], None] = lambda job, where: None
    on_end: Callable[[Job, float, str | None, str], None] = lambda job, seconds, error, where: None
    on_running: Callable[[dict[str, list[str]]], None] = lambda running: None  # {worker: [task keys]}
    on_step: Callable | None = None  # in-process jobs only: the epoch bar
    on_epoch: Callable | None = None


# --------------------------------------------------------------------------- the job log

#: One row per ended job, appended as it ends, in the study folder: what ran where, for how long.
JOB_LOG = "jobs.csv"
JOB_LOG_FIELDS = ("finished_at", "job", "kind", "status", "seconds", "where", "error")


def with_job_log(events: JobEvents, root: Path) -> JobEvents:
    """``events`` that also append each ended job to ``root / JOB_LOG`` before passing it on.

    A resumed study appends to the same log, so a job that failed and later finished has two
    rows; a job killed mid-way has none (its rerun's row counts only the resumed part).
    """
    def on_end(job: Job, seconds: float, error: str | None, where: str) -> None:
        try:
            append_job_row(root, job, seconds, error, where)
        except OSError as exc:  # a full disk: the job's own files are written; its log row is a nicety
            log.warning("could not log %s in %s: %s", job.name, root / JOB_LOG, exc)
        events.on_end(job, seconds, error, where)

    return replace(events, on_end=on_end)


def append_job_row(root: Path, job: Job, seconds: float, error: str | None, where: str) -> None:
    """Append one CSV row (a header first when the log is new) in a single write.

    One ``write`` of one short line in append mode: a crash leaves the rows before it whole, and
    at worst a cut last line, which :func:`read_job_log` skips and the next row does not join.
    """
    path = Path(root) / JOB_LOG
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        writer.writerow(JOB_LOG_FIELDS)
    elif _last_byte(path) != b"\n":
        buf.write("\n")  # a line cut by a crash stays a line of its own, not the start of this one
    writer.writerow([datetime.now(timezone.utc).isoformat(timespec="seconds"), job_key(job), job.kind,
                     "failed" if error else "done", f"{seconds:.2f}", where, error or ""])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(buf.getvalue())


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def read_job_log(root: Path) -> list[dict]:
    """The rows of ``root / JOB_LOG`` (``seconds`` as float); cut or malformed rows are skipped."""
    path = Path(root) / JOB_LOG
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            try:
                row["seconds"] = float(row["seconds"])
            except (TypeError, ValueError):
                continue
            if row.get("kind") and row.get("status") in ("done", "failed"):
                rows.append(row)
    return rows
