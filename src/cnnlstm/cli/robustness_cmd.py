"""``cnnlstm robustness``: accuracy on the Fashion-MNIST-C corruptions and the mean corruption error."""

from __future__ import annotations

import logging
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import DATA_NOTE, add_data_flags, add_device_flag, load_run_data, non_negative_int
from cnnlstm.errors import ConfigError

log = logging.getLogger(__name__)

EXAMPLES = """\
  cnnlstm robustness runs/flagship                        # 15 corruptions x 5 severities, all test images
  cnnlstm robustness runs/flagship --samples 2000         # a seeded 2,000-image sample (~30 s on 2 cores)
  cnnlstm robustness runs/flagship --baseline runs/m1     # mean corruption error relative to Model I
  cnnlstm robustness runs/m1 --severity 1-3 --corruptions rotate shear scale
  cnnlstm robustness runs/m1 --severity 5 --corruptions flip_h inverse
  cnnlstm report runs/flagship                            # the report then shows the table
"""

DESCRIPTION = (
    "Corrupt RUN_DIR's test images with the 15 corruptions of Fashion-MNIST-C (shot_noise, impulse_noise, "
    "glass_blur, motion_blur, shear, scale, rotate, brightness, contrast, saturate, inverse, flip_h, flip_v, "
    "turn_left, turn_right; regenerated locally, deterministic under --seed) at each severity, evaluate its "
    "best.pt on every corrupted set and write robustness.json and figures/robustness.png. inverse, the "
    "flips and the turns have no strength: they are evaluated once, whatever the severities. With "
    "--baseline, the corruption error CE_c = sum_s E_model / sum_s E_baseline and its mean over "
    "corruptions (mCE, as ImageNet-C) are added; the baseline is evaluated on the same images first "
    "unless its robustness.json already covers them. " + DATA_NOTE)


def parse_severities(values: list[str] | None) -> tuple[int, ...]:
    """``["1-3", "5"]`` or ``["1,3,5"]`` -> ``(1, 2, 3, 5)``; a one-line ConfigError otherwise."""
    from cnnlstm.data.corruptions import SEVERITIES, check_severities

    if not values:
        return SEVERITIES
    out: list[int] = []
    for value in values:
        for part in filter(None, value.split(",")):
            m = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", part)
            if not m:
                raise ConfigError(f"--severity takes integers from 1 to 5 or a range like 1-3, got {part!r}")
            lo, hi = int(m[1]), int(m[2] or m[1])
            if lo > hi:
                raise ConfigError(f"--severity range {part!r} is empty")
            out += range(lo, hi + 1)
    try:
        return check_severities(out)
    except ConfigError as exc:
        raise ConfigError(f"--{exc}") from None


def add_parser(sub) -> None:
    p = add_command(sub, "robustness", help="accuracy on Fashion-MNIST-C corruptions, mean corruption error",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (with best.pt)")
    p.add_argument("--severity", nargs="+", metavar="S", default=None,
                   help="severities from 1 to 5: numbers, ranges like 1-3, or lists like 1,3,5 (default: 1-5)")
    p.add_argument("--corruptions", nargs="+", metavar="NAME", default=None,
                   help="corruptions to apply (default: all 15)")
    p.add_argument("--samples", type=non_negative_int, default=None, metavar="N",
                   help="test images used, a seeded sample (default: all of the run's test images)")
    p.add_argument("--baseline", metavar="RUN", default=None,
                   help="a run folder to normalise the corruption errors by (e.g. Model I's run)")
    p.add_argument("--seed", type=int, default=0, help="seeds the sample and every corruption")
    add_device_flag(p, default=None, default_text="the run's device setting")
    add_data_flags(p)
    p.set_defaults(func=run)


@contextmanager
def cell_progress(quiet: bool, what: str):
    """A ``progress(done, total, label)`` callback: a bar on a terminal, a log line every 10% otherwise."""
    if quiet:
        yield None
        return
    if not sys.stderr.isatty():
        step = {"next": 0.1}

        def log_line(done: int, total: int, label: str) -> None:
            if done / total >= step["next"] or done == total:
                log.info("%s: %d/%d (%s)", what, done, total, label)
                step["next"] = done / total + 0.1

        yield log_line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[label]}"), TimeRemainingColumn(), transient=True)
    task = None

    def update(done: int, total: int, label: str) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(what, total=total, label="")
        bar.update(task, completed=done, label=label)
        if done == total:
            bar.stop()  # finished: a baseline's bar makes way for the run's

    try:
        yield update
    finally:
        bar.stop()


def run(args) -> int:
    from contextlib import ExitStack

    from cnnlstm import api

    run_dir = Path(args.run_dir)
    with ExitStack() as stack:
        progress = stack.enter_context(cell_progress(args.quiet, run_dir.name))
        base_progress = (stack.enter_context(cell_progress(args.quiet, f"baseline {Path(args.baseline).name}"))
                         if args.baseline else None)
        record = api.robustness(run_dir, baseline=args.baseline, severities=parse_severities(args.severity),
                                corruptions=args.corruptions, samples=args.samples, seed=args.seed,
                                device=args.device, data=lambda cfg: load_run_data(args, cfg, run_dir),
                                progress=progress, baseline_progress=base_progress)
    if not args.quiet:
        print_summary(run_dir, record)
    return 0


def print_summary(run_dir: Path, record: dict) -> None:
    """Clean and mean corrupted accuracy, the three hardest corruptions and the mCE."""
    print(f"{run_dir}: {record['model']} on {record['n_images']:,} test images (seed {record['seed']}): clean "
          f"{100 * record['clean_accuracy']:.2f}%, mean corrupted {100 * record['mean_corrupted_accuracy']:.2f}%")
    worst = sorted(record["mean_accuracy"].items(), key=lambda kv: kv[1])[:3]
    print("hardest: " + ", ".join(f"{name} {100 * acc:.1f}%" for name, acc in worst))
    if record.get("mce") is not None:
        rel = record.get("relative_mce")
        print(f"mCE {record['mce']:.3f}" + (f", relative mCE {rel:.3f}" if rel is not None else "")
              + f" (baseline {record['baseline']['model']}: {record['baseline']['run']})")
    print(f"wrote {run_dir / 'robustness.json'} and figures/robustness.png "
          f"({record['seconds']:.1f} s: {record['corrupt_seconds']:.1f} s corrupting, "
          f"{record['predict_seconds']:.1f} s predicting)")
