"""``cnnlstm reproduce``: the research plan end to end, resumable, with one report at the end."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import add_data_flags, add_device_flag, check_device, load_data_for_cli

EXAMPLES = """\
  cnnlstm reproduce                         # --preset quick: the plan's question at 3 seeds, ~10 min on 2 CPU cores
  cnnlstm reproduce --preset paper          # the plan's settings, 3 seeds
  cnnlstm reproduce --preset best --seeds 5 --out runs/best-study
  cnnlstm reproduce --out runs/study        # after an interruption: the same command continues it
"""


def add_parser(sub) -> None:
    from cnnlstm.reproduce import STUDY_PRESETS

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
    add_data_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from dataclasses import replace

    from cnnlstm.errors import ConfigError
    from cnnlstm.reproduce import ABLATIONS, job_done, plan_jobs, run_study, study_preset
    from cnnlstm.report.study import write_study_report

    preset = study_preset(args.preset)
    if args.tsne_samples is not None:
        preset = replace(preset, tsne_samples=args.tsne_samples)
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    check_device(args.device)
    out = Path(args.out or f"runs/reproduce-{preset.name}")
    ds = load_data_for_cli(args)
    common = {"data_dir": args.data_dir, "download": args.download, "verify": args.verify,
              "device": args.device, "threads": args.threads, "limit_train": args.limit_train}
    models = tuple(m.strip() for m in args.models.split(",")) if args.models else None
    if models:
        from cnnlstm.models import get_model_entry

        for m in models:
            get_model_entry(m)  # an unknown name is a one-line error now, not after an hour
    ablations = None
    if args.ablations:
        ablations = () if args.ablations == "none" else tuple(a.strip() for a in args.ablations.split(","))
        unknown = set(ablations) - set(ABLATIONS)
        if unknown:
            raise ConfigError(f"unknown ablation {sorted(unknown)[0]!r}; choose from {', '.join(ABLATIONS)}")
    jobs = plan_jobs(preset, seeds=args.seeds, common=common, models=models, ablations=ablations)
    display = StudyDisplay(quiet=args.quiet, total_weight=sum(j.weight for j in jobs if not job_done(j, out)))
    try:
        summary = run_study(out, ds, preset, jobs=jobs, progress=display.progress())
    finally:
        display.stop()
    report = write_study_report(out, summary["jobs"], preset, ds)
    if not args.quiet:
        print(f"study: {summary['ran']} jobs run, {summary['skipped']} already done, "
              f"{summary['seconds'] / 60:.1f} min")
    print(f"report: {report}")
    return 0


class StudyDisplay:
    """Overall progress (stage, run i/N, ETA) plus the current run's epoch bar."""

    def __init__(self, quiet: bool, total_weight: float):
        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self.total = total_weight
        self.done = 0.0
        self.t0 = time.perf_counter()
        self.bar = None
        self.overall = None
        self.epoch_task = None
        self.job = None
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), transient=True)
            self.overall = self.bar.add_task("study", total=total_weight)
            self.bar.start()

    def progress(self):
        from cnnlstm.reproduce import StudyProgress

        return StudyProgress(on_job_start=self.start_job, on_job_end=self.end_job,
                             on_step=self.on_step, on_epoch=self.on_epoch)

    def start_job(self, i: int, n: int, job) -> None:
        import logging

        self.job = job
        what = {"explore": "exploring the dataset", "embed": f"t-SNE of {job.label}"}.get(
            job.kind, f"{job.group} {job.name}")
        logging.getLogger("cnnlstm.reproduce").info("[%d/%d] %s%s", i + 1, n, what, self.eta())
        if self.bar:
            self.bar.update(self.overall, description=f"[{i + 1}/{n}] {what}")

    def end_job(self, i: int, n: int, job, seconds: float) -> None:
        self.done += job.weight if job.kind != "train" else 0
        if self.bar:
            self.bar.update(self.overall, completed=min(self.done, self.total))

    def on_step(self, b: int, nb: int, loss: float) -> None:
        if not self.bar:
            return
        if self.epoch_task is None:
            self.epoch_task = self.bar.add_task("  epoch", total=nb)
        self.bar.update(self.epoch_task, completed=b, description=f"  epoch (loss {loss:.3f})")

    def on_epoch(self, row: dict) -> None:
        self.done += 1
        if not self.live and not self.quiet:
            import logging

            logging.getLogger("cnnlstm.reproduce").info(
                "  %s epoch %d: train acc %.4f, val acc %.4f, %.1f s%s", self.job.name if self.job else "",
                row["epoch"], row["train_acc"], row["val_acc"], row["seconds"], self.eta())
        if self.bar:
            if self.epoch_task is not None:
                self.bar.remove_task(self.epoch_task)
                self.epoch_task = None
            self.bar.update(self.overall, completed=min(self.done, self.total))

    def eta(self) -> str:
        elapsed = time.perf_counter() - self.t0
        if self.done <= 0 or elapsed < 5:
            return ""
        left = elapsed / self.done * max(0.0, self.total - self.done)
        return f" (about {left / 60:.1f} min left)"

    def stop(self) -> None:
        if self.bar:
            self.bar.stop()
