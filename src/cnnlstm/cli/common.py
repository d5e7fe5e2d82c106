"""Helpers shared by several subcommands: argument types, data, device and t-SNE flags, progress display.

Command modules import their shared helpers from here and never from one another.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from cnnlstm.data import Dataset, load_data
from cnnlstm.errors import DatasetError

DATA_NOTE = ("By default the data are loaded the way the run was trained (its config.json's data, image_size, "
             "data_dir, download and verify); the data flags override that.")


# --------------------------------------------------------------------------- argument types


def workers_or_auto(text: str) -> int | str:
    """``--workers``: ``auto`` or a number of worker processes >= 1."""
    return "auto" if text == "auto" else int_at_least(1, "a number of workers >= 1 or 'auto'")(text)


def seeds_or_auto(text: str) -> int | str:
    """``--seeds``: a number of seeds >= 1, or ``auto`` (added until every primary interval is precise)."""
    return "auto" if text == "auto" else int_at_least(1, "a number of seeds >= 1 or 'auto'")(text)


def add_seed_flags(p: argparse.ArgumentParser, default, what: str) -> None:
    """``--seeds N|auto`` and ``--max-seeds``, one wording for every study."""
    p.add_argument("--seeds", type=seeds_or_auto, default=default, metavar="N|auto",
                   help=f"seeds of {what}; 'auto' adds paired seeds, 2 at a time from 3, until every primary "
                        "comparison's 95%% interval is at most the margin (0.5 points) wide, or --max-seeds "
                        "(docs/statistics.md)" + (f" (default {default})" if default is not None else ""))
    p.add_argument("--max-seeds", type=int_at_least(3, "at least 3 seeds"), default=10, metavar="N",
                   help="the cap of --seeds auto (default 10)")


def int_at_least(minimum: int, what: str):
    """An argparse type for a whole number >= ``minimum``, named ``what`` in its error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


non_negative_int = int_at_least(0, "a whole number >= 0")
positive_int = int_at_least(1, "a positive integer")


def fmt(value) -> str:
    """A metric with 4 decimals, or n/a when the sample was too small for it."""
    return "n/a" if value is None else f"{value:.4f}"


# --------------------------------------------------------------------------- device


def add_device_flag(p, *, default: str | None, default_text: str | None = None, dest: str = "device") -> None:
    """The one ``--device D`` flag (auto, cpu, cuda or cuda:N) of every command that has one.

    Its value is checked by :func:`check_device` in the command's ``run``, so a bad name is a
    one-line error with exit 2 rather than argparse's usage text.

    Parameters
    ----------
    p : argparse.ArgumentParser or argument group
    default : str or None
        None lets the run's (or the config's) own setting decide.
    default_text : str, optional
        The default in words for the help (default: ``default`` itself).
    dest : str, default "device"
    """
    p.add_argument("--device", dest=dest, default=default, metavar="D",
                   help=f"auto, cpu, cuda or cuda:N (default: {default_text or default})")


def check_device(name: str | None) -> str | None:
    """``name`` when it is None or a valid device name; otherwise a one-line ConfigError."""
    from cnnlstm.device import check_device_name

    return None if name is None else check_device_name(name)


# --------------------------------------------------------------------------- t-SNE


def add_tsne_flags(p: argparse.ArgumentParser) -> None:
    """--perplexity, --k0, --seed, --jobs: shared by explore and embed."""
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity")
    p.add_argument("--k0", type=non_negative_int, default=None, metavar="K",
                   help="early-exaggeration iterations (default: floor((ln n)^2), natural log: "
                        "124 for n = 70,000, 84 for n = 10,000)")
    p.add_argument("--seed", type=int, default=0, help="seeds sampling, PCA and openTSNE")
    p.add_argument("--jobs", type=int, default=-1, metavar="N",
                   help="openTSNE threads (-1 = all cores, or 1 below 5,000 points)")


# --------------------------------------------------------------------------- data


def add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="SPEC", default=None,
                   help="fashion-mnist (default), mnist, kmnist, debris[:N[:T]] or pathfinder[:L[:T]] (synthetic "
                        "tasks, T training images; docs/positive-control.md), an .npz file (x_train, y_train, x_test, y_test), or a folder "
                        "of class folders (DIR/<class>/*.png, or DIR/train/... and DIR/test/...)")
    p.add_argument("--image-size", metavar="N", type=int_at_least(1, "a side of at least 1 pixel"), default=None,
                   help="image folders: resize every image to NxN (default: their own size, which must be one)")
    p.add_argument("--data-dir", metavar="DIR", default=None,
                   help="folder with the four IDX files (.gz or raw); default: search $CNNLSTM_DATA, "
                        "the user cache, /usr/share/datasets/fashion-mnist, then download")
    p.add_argument("--no-download", dest="download", action="store_false", default=True,
                   help="never download; fail with instructions when no local copy exists")
    p.add_argument("--no-verify", dest="verify", action="store_false", default=True,
                   help="skip the IDX dataset's published checksums (to load other files of that layout)")


def download_progress(quiet: bool):
    """A rich progress bar for dataset downloads, as a ``progress(stem, done, total)`` callback."""
    if quiet:
        return None
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), transient=True)
    tasks: dict[str, int] = {}

    def progress(stem: str, done: int, total: int) -> None:
        if stem not in tasks:
            if not bar.live.is_started:
                bar.start()
            tasks[stem] = bar.add_task(stem, total=total or None)
        bar.update(tasks[stem], completed=done)
        if total and done >= total:
            bar.stop() if all(bar.tasks[t].finished for t in tasks.values()) else None

    return progress


def load_data_for_cli(args, *, data=None, image_size=None, data_dir=None, download=None, verify=None) -> Dataset:
    """Load the dataset as the data flags (or explicit overrides) ask."""
    return load_data(
        data or getattr(args, "data", None) or "fashion-mnist",
        image_size=image_size if image_size is not None else (getattr(args, "image_size", None) or 0),
        data_dir=data_dir if data_dir is not None else getattr(args, "data_dir", None),
        download=getattr(args, "download", True) if download is None else download,
        verify=getattr(args, "verify", True) if verify is None else verify,
        progress=download_progress(getattr(args, "quiet", False)))


def load_run_data(args, cfg, run_dir: Path) -> Dataset:
    """The dataset of a run: its saved data settings, overridden by explicit data flags.

    The run's ``image_size`` and ``data_dir`` are carried over only where they apply (a folder;
    its own IDX dataset): see :func:`cnnlstm.study.prelude.run_data_settings`.
    """
    from cnnlstm.study.prelude import run_data_settings

    settings = run_data_settings(cfg, args.data, image_size=args.image_size or None, data_dir=args.data_dir)
    try:
        return load_data_for_cli(args, data=settings["spec"], image_size=settings["image_size"],
                                 data_dir=settings["data_dir"], download=args.download and cfg.download,
                                 verify=args.verify and cfg.verify)
    except DatasetError as exc:
        if args.data_dir is None and settings["data_dir"] is not None:
            raise DatasetError(f"{exc} (the data_dir saved in {run_dir}/config.json; "
                               "pass --data-dir to use another copy)") from exc
        raise


# --------------------------------------------------------------------------- progress


@contextmanager
def working(quiet: bool, what: str, *, live: bool | None = None):
    """A spinner with the time elapsed while ``what`` runs, for a step that reports no progress of its own.

    Shown on stderr when it is a terminal (``live`` overrides that) and not ``quiet``; the
    library's log lines print above it as each part finishes. Off a terminal it shows nothing,
    so logs and captured output are unchanged.

    Parameters
    ----------
    quiet : bool
        ``--quiet``: no display.
    what : str
        What is being done, e.g. ``"evaluating runs/m1 and drawing its figures"``.
    live : bool, optional
        Force the spinner on or off (default: whether stderr is a terminal).
    """
    if quiet or not (sys.stderr.isatty() if live is None else live):
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    spinner = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                       console=Console(stderr=True), transient=True)
    spinner.add_task(what, total=None)
    with spinner:
        yield


class TrainingDisplay:
    """Live progress of training: a bar per epoch on a terminal, one log line per epoch otherwise."""

    def __init__(self, quiet: bool):
        import sys

        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self.progress = None
        self.task = None
        self.epoch = 0

    def on_step(self, batch: int, n_batches: int, loss: float) -> None:
        if not self.live:
            return
        if self.progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(),
                                     transient=True)
            self.progress.start()
        if self.task is None:
            self.task = self.progress.add_task(f"epoch {self.epoch + 1}", total=n_batches, loss=loss)
        self.progress.update(self.task, completed=batch, loss=loss)

    def on_epoch(self, row: dict) -> None:
        self.epoch = row["epoch"]
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        if not self.quiet:
            import logging

            logging.getLogger("cnnlstm.training.loop").info(
                "epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | lr %.2e | %.1f s",
                row["epoch"], row["train_loss"], row["train_acc"], row["val_loss"], row["val_acc"],
                row["lr"], row["seconds"])

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class training_display:
    """``with training_display(quiet) as d: fit(..., on_step=d.on_step, on_epoch=d.on_epoch)``."""

    def __init__(self, quiet: bool):
        self.display = TrainingDisplay(quiet)

    def __enter__(self) -> TrainingDisplay:
        return self.display

    def __exit__(self, *exc) -> bool:
        self.display.stop()
        return False


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    """--workers, --dask, --dask-tls, --gpu-per-job: where a study's jobs run."""
    where = p.add_argument_group("where the jobs run (default: every core of this machine)")
    where.add_argument("--workers", type=workers_or_auto, default="auto", metavar="N|auto",
                       help="auto (the default): one job per core, 1 thread each (or --threads each), on a Dask "
                            "cluster bound to 127.0.0.1; the folder's cluster.json keeps the threads per job for a "
                            "resumed study. N: a cluster of N worker processes, the cores split between them "
                            "(--threads each, default cores / N); 1: this process, one job after another")
    where.add_argument("--dask", metavar="ADDRESS", default=None,
                       help="an existing Dask scheduler (tcp://host:8786, or tls://host:8786 with --dask-tls): "
                            "lab PCs, Slurm/PBS through dask-jobqueue, Kubernetes; see docs/scaling.md. A "
                            "scheduler runs any code its clients send: keep it on loopback or a private network")
    where.add_argument("--dask-tls", metavar="DIR", default=None,
                       help="folder with ca.pem, cert.pem and key.pem for a tls:// scheduler")
    where.add_argument("--gpu-per-job", type=float, default=None, metavar="F",
                       help="each job asks for F of a worker's GPU resource (workers started with "
                            "--resources GPU=1 run 1/F jobs on their card at once)")


def add_study_flags(p: argparse.ArgumentParser) -> None:
    """--device, --threads, the executor flags and the data flags of a command that runs many jobs."""
    add_device_flag(p, default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per run (0 = torch's default)")
    add_executor_flags(p)
    add_data_flags(p)


def run_settings_from_args(args, **extra) -> dict:
    """The config keys every run of a study gets from its flags: ``--set``, the data and runtime
    flags, ``--image-size`` when given, and ``extra``."""
    from cnnlstm.config import parse_set

    settings = {**parse_set(getattr(args, "sets", [])), "data_dir": args.data_dir, "download": args.download,
                "verify": args.verify, "device": args.device, "threads": args.threads, **extra}
    if args.image_size:
        settings["image_size"] = args.image_size
    return settings


def report_failures(command: str, failed: dict[str, str], hint: str = "the same command retries them") -> int:
    """Print the jobs that failed for good on stderr; 1 when there were any, else 0."""
    if not failed:
        return 0
    names = "; ".join(f"{name} ({error})" for name, error in failed.items())
    print(f"cnnlstm {command}: {len(failed)} job(s) failed: {names}; {hint}", file=sys.stderr)
    return 1


# --------------------------------------------------------------------------- a study's progress


class StudyDisplay:
    """Jobs done, running and failed, with an ETA and where each runs; the epoch bar of an in-process run.

    On a terminal it is a live bar; otherwise (a log, CI) one line per job started and finished.
    """

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.total = self.done = 0.0
        self.n_done = self.n_failed = 0
        self.running: dict[str, str] = {}  # job -> where it runs
        self.last_running = ""  # the last "running now" line, so an unchanged one is not repeated
        self.bar = self.overall = self.epoch_task = None
        self.log = logging.getLogger("cnnlstm.study.engine")

    def events(self):
        from cnnlstm.study.engine.joblog import JobEvents

        return JobEvents(on_start=self.start_job, on_end=self.end_job, on_running=self.show_running,
                         on_step=self.on_step, on_epoch=self.on_epoch)

    def show_running(self, running: dict[str, list[str]]) -> None:
        """Which worker runs which job now (a Dask cluster's answer; the others are queued)."""
        now = "; ".join(f"{worker}: {', '.join(k.rsplit('-', 1)[0] for k in keys)}"
                        for worker, keys in sorted(running.items()))
        if now and now != self.last_running:
            self.last_running = now
            self.log.info("running now: %s", now)

    def _start_bar(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), transient=True)
        self.overall = self.bar.add_task("study", total=max(self.total, 1e-9))
        self.bar.start()

    def start_job(self, job, where: str) -> None:
        from cnnlstm.study.engine.jobs import job_key

        self.total += job.weight
        self.running[job_key(job)] = where
        if self.live and self.bar is None:
            self._start_bar()
        self.log.info("%s %s on %s%s", "queued" if where.startswith("the queue") else "started", job_key(job),
                      where.removeprefix("the queue of "), self.counts())
        self._refresh()

    def end_job(self, job, seconds: float, error: str | None, where: str = "") -> None:
        from cnnlstm.study.engine.jobs import job_key

        self.running.pop(job_key(job), None)
        self.done += job.weight
        self.n_done += error is None
        self.n_failed += error is not None
        self.log.info("%s %s in %.1f s%s%s%s", "FAILED" if error else "finished", job_key(job), seconds,
                      f" on {where}" if where else "", self.counts(), self.eta())
        self._refresh()

    def counts(self) -> str:
        return f" [done {self.n_done}, running or queued {len(self.running)}, failed {self.n_failed}]"

    def _refresh(self) -> None:
        if self.bar is None:
            return
        where = ", ".join(f"{k} ({w})" for k, w in list(self.running.items())[:3])
        more = f" +{len(self.running) - 3}" if len(self.running) > 3 else ""
        self.bar.update(self.overall, total=max(self.total, 1e-9), completed=min(self.done, self.total),
                        description=f"{self.counts().strip()} {where}{more}")

    def on_step(self, b: int, nb: int, loss: float) -> None:
        if not self.bar:
            return
        if self.epoch_task is None:
            self.epoch_task = self.bar.add_task("  epoch", total=nb)
        self.bar.update(self.epoch_task, completed=b, description=f"  epoch (loss {loss:.3f})")

    def on_epoch(self, row: dict) -> None:
        if not self.live and not self.quiet:
            self.log.info("  epoch %d: train acc %.4f, val acc %.4f, %.1f s", row["epoch"], row["train_acc"],
                          row["val_acc"], row["seconds"])
        if self.bar and self.epoch_task is not None:
            self.bar.remove_task(self.epoch_task)
            self.epoch_task = None

    def eta(self) -> str:
        """Time left, from the share of the planned work (job weights) done so far."""
        elapsed = time.perf_counter() - self.t0
        if self.done <= 0 or elapsed < 5 or self.done >= self.total:
            return ""
        left = elapsed / self.done * (self.total - self.done)
        return f" (about {left / 60:.1f} min left of this stage)"

    def stop(self) -> None:
        if self.bar:
            self.bar.stop()
