"""``cnnlstm regimes``: each hybrid beside its control over training-set size, stem width and occlusion."""

from __future__ import annotations

from cnnlstm.cli import add_command
from cnnlstm.cli.common import (
    StudyDisplay,
    add_seed_flags,
    add_study_flags,
    int_at_least,
    load_data_for_cli,
    report_failures,
    run_settings_from_args,
)
from cnnlstm.errors import ConfigError

EXAMPLES = """\
  cnnlstm regimes --dry-run                      # the default grid's runs and its cost on this machine
  cnnlstm regimes --workers 2 --out runs/regimes # 3 sizes x 3 widths x 3 seeds, + model1_lstm vs model1
  cnnlstm regimes --sizes 1000,6000 --widths 8x16,24x48 --seeds 5
  cnnlstm regimes --seeds auto --max-seeds 10 --out runs/regimes   # seeds until every primary endpoint decides
  cnnlstm regimes --out runs/regimes             # after an interruption: the same command continues
  cnnlstm regimes --data ~/pets --image-size 32 --sizes 500,all
  cnnlstm regimes --pairs spoerer_bl:spoerer_bk,conv_lstm:conv_lstm_ff --widths none --sizes all
                                                 # recurrence inside the stack, through the same curves
"""


def add_parser(sub) -> None:
    p = add_command(sub, "regimes", help="map where, if anywhere, the LSTM helps: data size x width x occlusion",
                    description="Train the flagship and its parameter-matched no-LSTM twin at every "
                                "(training-set size, stem width) cell, and model1_lstm beside model1 at every "
                                "size, with the same seeds and stratified nested subsets; schedules follow one "
                                "stated rule (--steps on the whole set, steps x sqrt(n / n_full) on n images). "
                                "The runs of the largest size are then evaluated under test-time occlusion and "
                                "translation. Writes a heat map of Δ with each cell's 95% interval, the "
                                "occlusion curves, report.html/report.md and regimes.json. The cost is printed "
                                "before anything trains; the same --out resumes.",
                    examples=EXAMPLES)
    add_seed_flags(p, 3, "every model in every cell (auto: until every primary endpoint decides)")
    p.add_argument("--sizes", default=None, metavar="N,N,...",
                   help="training-set sizes, 'all' for the whole split (default 1000,6000,all)")
    p.add_argument("--widths", default=None, metavar="AxB,...",
                   help="stem channels of the flagship and its twin (default 8x16,16x32,24x48; "
                        "'none' leaves the flagship's width axis out)")
    p.add_argument("--steps", type=int_at_least(1, "at least 1 step"), default=None, metavar="N",
                   help="optimizer steps of a run on the whole training split (default 1000)")
    p.add_argument("--pairs", default=None, metavar="H:C,...",
                   help="hybrid:control pairs mapped over the sizes at their own widths, with the same "
                        "occlusion and translation curves, in place of model1_lstm:model1 "
                        "(e.g. spoerer_bl:spoerer_bk,conv_lstm:conv_lstm_ff)")
    p.add_argument("--no-size-pairs", dest="size_pairs", action="store_false",
                   help="leave out model1_lstm vs model1 (or --pairs) over the sizes")
    p.add_argument("--preset", default="fast", metavar="P", help="the training preset of every run (default fast)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="a config value for every run (repeatable)")
    p.add_argument("--out", metavar="DIR", default=None, help="folder (default runs/regimes)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its cost, train nothing")
    add_study_flags(p)
    p.set_defaults(func=run)


def parse_sizes(text: str) -> list[int]:
    """``"1000,6000,all"`` -> ``[1000, 6000, 0]``."""
    try:
        return [0 if s.strip() == "all" else int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--sizes takes counts and 'all', e.g. 1000,6000,all; got {text!r}") from None


def parse_widths(text: str) -> list[tuple[int, int]]:
    """``"8x16,24x48"`` -> ``[(8, 16), (24, 48)]``; ``"none"`` -> ``[]``."""
    if text.strip() == "none":
        return []
    try:
        return [tuple(int(c) for c in w.split("x", 1)) for w in text.split(",")]
    except ValueError:
        raise ConfigError(f"--widths takes AxB channel pairs, e.g. 8x16,24x48; got {text!r}") from None


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``"spoerer_bl:spoerer_bk,conv_lstm:conv_lstm_ff"`` -> ``[("spoerer_bl", "spoerer_bk"), ...]``."""
    pairs = [tuple(p.strip() for p in pair.split(":")) for pair in text.split(",")]
    if any(len(p) != 2 or not all(p) for p in pairs):
        raise ConfigError(f"--pairs takes hybrid:control pairs, e.g. spoerer_bl:spoerer_bk; got {text!r}")
    return pairs


def print_plan(cost: dict) -> None:
    """The plan's size and cost, before anything trains (printed even with --quiet)."""
    left = cost["left"]
    done = cost["train_runs"] + cost["occlusion_runs"] - left["train_runs"] - left["occlusion_runs"]
    head = (f"plan: {cost['train_runs']} training runs, {cost['occlusion_runs']} occlusion evaluations, "
            f"{cost['tflop']:.0f} TFLOP")
    if cost["gflops"] is None:
        print(f"{head}; all {done} done in this folder, nothing left to run (the report is written again)", flush=True)
        return
    already = f"; {done} already done, {left['tflop']:.0f} TFLOP left" if done else ""
    from cnnlstm.study.regimes import duration_text

    print(f"{head}{already}; about {duration_text(cost['seconds'])} at the {cost['gflops']:.0f} GFLOP/s of an fp32 "
          "step on this CPU per process (a lower bound)", flush=True)


def run(args) -> int:
    from cnnlstm import api

    settings = run_settings_from_args(args)
    display = StudyDisplay(quiet=args.quiet)
    try:
        summary = api.regimes(out=args.out, seeds=args.seeds, max_seeds=args.max_seeds,
                              sizes=parse_sizes(args.sizes) if args.sizes else None,
                              widths=parse_widths(args.widths) if args.widths else None, steps=args.steps,
                              size_pairs=args.size_pairs, pairs=parse_pairs(args.pairs) if args.pairs else None,
                              preset=args.preset, data=load_data_for_cli(args),
                              settings=settings, workers=args.workers, dask=args.dask, dask_tls=args.dask_tls,
                              gpu_per_job=args.gpu_per_job, dry_run=args.dry_run, on_plan=print_plan,
                              events=display.events())
    finally:
        display.stop()
    if args.dry_run:
        return 0
    for line in summary["summary"]:
        print(f"- {line}")
    if "stopped" in summary:
        print(f"seeds auto: {summary['stopped']}")
    print(f"report: {summary['report']}")
    return report_failures("regimes", summary["failed"])
