"""``cnnlstm reproduce``: the research plan end to end, resumable, with one report at the end."""

from __future__ import annotations

import logging
import sys
import time

from cnnlstm.cli import add_command
from cnnlstm.cli.common import add_data_flags, add_device_flag, load_data_for_cli

EXAMPLES = """\
  cnnlstm reproduce                         # --preset quick: the plan's question at 3 seeds, ~10 min on 2 CPU cores
  cnnlstm reproduce --preset paper          # the plan's settings, 3 seeds
  cnnlstm reproduce --preset best --seeds 5 --out runs/best-study
  cnnlstm reproduce --out runs/study        # after an interruption: the same command continues it
  cnnlstm reproduce --preset paper --workers 4 --device cuda      # 4 jobs at a time sharing one GPU
  cnnlstm reproduce --preset paper --dask tcp://lab-pc1:8786      # on the lab's Dask cluster
"""


def add_parser(sub) -> None:
    from cnnlstm.study.reproduce import STUDY_PRESETS

    p = add_command(sub, "reproduce", help="run the whole study and write its report",
                    description="Explore the dataset; train and evaluate the plan's baselines, the "
                                "reference models, the CNN-LSTM hybrids, the flagship and its no-LSTM "
                                "controls over N seeds, each hybrid under the same recipe as its control; "
                                "ablate the flagship's regularizers and optimizers at its full schedule; "
                                "embed the best baseline and hybrid with t-SNE; write report.html/report.md "
                                "with 95% intervals on every comparison. "
                                "Finished runs are skipped when the same --out is used again.",
                    examples=EXAMPLES)
    p.add_argument("--preset", default="quick", choices=sorted(STUDY_PRESETS),
                   help="quick: the plan's question at 3 seeds (model1/model2 vs their LSTM hybrids, the "
                        "flagship vs its no-LSTM twin), 2-epoch schedules, no references or ablations "
                        "(~10 min on 2 cores); paper: the plan's settings and the references' published "
                        "recipes, 3 seeds, ablations; best: the flagship family at its best recipe, 3 seeds")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="seeds of every model trained (default: the preset's, 3 for the compared pairs)")
    p.add_argument("--out", metavar="DIR", default=None, help="study folder (default runs/reproduce-<preset>)")
    add_device_flag(p, default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    p.add_argument("--limit-train", type=int, default=0, metavar="N",
                   help="train every run on only N images (smoke tests)")
    p.add_argument("--models", default=None, metavar="A,B", help="only these models (comma-separated)")
    p.add_argument("--ablations", default=None, metavar="A,B",
                   help="only these flagship ablations (comma-separated; 'none' for none); default all of: "
                        "all_on, no_flip, no_batchnorm, no_dropout, adam, nadam, sgd")
    p.add_argument("--tsne-samples", type=int, default=None, metavar="N",
                   help="images in the raw-pixel t-SNE (default: the preset's; 0 skips it)")
    where = p.add_argument_group("where the jobs run (default: in this process, one after another)")
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="a Dask cluster of N worker processes on this machine, bound to 127.0.0.1; the cores "
                            "are split between them (--threads each, default cores / N); on a GPU they share it")
    where.add_argument("--dask", metavar="ADDRESS", default=None,
                       help="an existing Dask scheduler (tcp://host:8786, or tls://host:8786 with --dask-tls): "
                            "lab PCs, Slurm/PBS through dask-jobqueue, Kubernetes; see docs/scaling.md. A "
                            "scheduler runs any code its clients send: keep it on loopback or a private network")
    where.add_argument("--dask-tls", metavar="DIR", default=None,
                       help="folder with ca.pem, cert.pem and key.pem for a tls:// scheduler")
    where.add_argument("--gpu-per-job", type=float, default=None, metavar="F",
                       help="each job asks for F of a worker's GPU resource (workers started with "
                            "--resources GPU=1 run 1/F jobs on their card at once)")
    add_data_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlstm import api

    settings = {"data_dir": args.data_dir, "download": args.download, "verify": args.verify,
                "device": args.device, "threads": args.threads, "limit_train": args.limit_train}
    models = tuple(m.strip() for m in args.models.split(",")) if args.models else None
    ablations = None
    if args.ablations:
        ablations = () if args.ablations == "none" else tuple(a.strip() for a in args.ablations.split(","))
    display = StudyDisplay(quiet=args.quiet)
    try:
        summary = api.reproduce(args.preset, out=args.out, seeds=args.seeds, models=models, ablations=ablations,
                                tsne_samples=args.tsne_samples, data=load_data_for_cli(args), settings=settings,
                                workers=args.workers, dask=args.dask, dask_tls=args.dask_tls,
                                gpu_per_job=args.gpu_per_job, events=display.events())
    finally:
        display.stop()
    if not args.quiet:
        print(f"study: {summary['ran']} jobs run, {summary['skipped']} already done, "
              f"{summary['seconds'] / 60:.1f} min")
    print(f"report: {summary['report']}")
    if summary["failed"]:
        names = "; ".join(f"{name} ({error})" for name, error in summary["failed"].items())
        print(f"cnnlstm reproduce: {len(summary['failed'])} job(s) failed: {names}; the report lists the missing "
              "runs, and the same command retries them", file=sys.stderr)
        return 1
    return 0


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
        self.log = logging.getLogger("cnnlstm.study.reproduce")

    def events(self):
        from cnnlstm.study.executor import JobEvents

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
        from cnnlstm.study.reproduce import job_key

        self.total += job.weight
        self.running[job_key(job)] = where
        if self.live and self.bar is None:
            self._start_bar()
        self.log.info("%s %s on %s%s", "queued" if where.startswith("the queue") else "started", job_key(job),
                      where.removeprefix("the queue of "), self.counts())
        self._refresh()

    def end_job(self, job, seconds: float, error: str | None) -> None:
        from cnnlstm.study.reproduce import job_key

        self.running.pop(job_key(job), None)
        self.done += job.weight
        self.n_done += error is None
        self.n_failed += error is not None
        self.log.info("%s %s in %.1f s%s%s", "FAILED" if error else "finished", job_key(job), seconds,
                      self.counts(), self.eta())
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
