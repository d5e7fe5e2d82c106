"""Helpers shared by several subcommands: data flags, device choice, progress display."""

from __future__ import annotations

import argparse

from cnnlstm.data import Dataset, load_dataset


def add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR", default=None,
                   help="folder with the four IDX files (.gz or raw); default: search $CNNLSTM_DATA, "
                        "the user cache, /usr/share/datasets/fashion-mnist, then download")
    p.add_argument("--no-download", dest="download", action="store_false", default=True,
                   help="never download; fail with instructions when no local copy exists")
    p.add_argument("--no-verify", dest="verify", action="store_false", default=True,
                   help="skip the Fashion-MNIST checksum (to load another IDX dataset, e.g. digit MNIST)")


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


def load_data_for_cli(args, *, data_dir=None, download=None, verify=None) -> Dataset:
    """Load the dataset as the data flags (or explicit overrides) ask."""
    return load_dataset(
        data_dir if data_dir is not None else getattr(args, "data_dir", None),
        download=getattr(args, "download", True) if download is None else download,
        verify=getattr(args, "verify", True) if verify is None else verify,
        progress=download_progress(getattr(args, "quiet", False)))


class TrainingDisplay:
    """Live progress of training: a bar per epoch on a terminal, one log line per epoch otherwise."""

    def __init__(self, quiet: bool, total_epochs: int | None = None):
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

            logging.getLogger("cnnlstm.train").info(
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
