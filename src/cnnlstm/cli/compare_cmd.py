"""``cnnlstm compare A B [C ...]``: models under one recipe and the same seeds, then the matched comparison."""

from __future__ import annotations

from cnnlstm.cli import add_command
from cnnlstm.cli.common import (
    StudyDisplay,
    add_seed_flags,
    add_study_flags,
    load_data_for_cli,
    report_failures,
    run_settings_from_args,
)

EXAMPLES = """\
  cnnlstm compare cnn_lstm cnn_twin                      # the flagship vs its no-LSTM twin, fast recipe, 3 seeds
  cnnlstm compare model1 model1_lstm --preset paper --seeds 5 --out runs/m1-vs-lstm
  cnnlstm compare cnn_lstm cnn_twin --seeds auto --max-seeds 10   # seeds until the interval decides
  cnnlstm compare cnn_lstm cnn_twin --data ~/pets --image-size 32 --set epochs=10
  cnnlstm compare cnn_lstm cnn_twin cnn_gap --workers 2  # 2 runs at a time on this machine
  cnnlstm compare cnn_lstm cnn_twin --out runs/cmp       # after an interruption: the same command continues
  cnnlstm compare gru_hybrid gru_control cnn_lstm --model-file examples/gru_hybrid.py
  cnnlstm compare my_pkg.nets:gru_hybrid cnn_lstm        # a model from an importable module
"""


def add_parser(sub) -> None:
    p = add_command(sub, "compare", help="train models under one recipe and seeds, and compare them",
                    description="Train every MODEL with the same training preset, --set overrides and seeds "
                                "0..N-1 into one folder (resumably), then compare every pair: mean ± sample std "
                                "over seeds, the difference with its 95% t-interval over paired seeds, McNemar "
                                "and a paired bootstrap per seed pair, the recipe check, parameters and MFLOPs, "
                                "a forest plot, and the verdict the numbers allow (A better, B better, equivalent "
                                "within ±0.5 points, or inconclusive; Holm over the pairs). Writes "
                                "OUT/report.html, OUT/report.md, OUT/results.csv and OUT/comparisons.csv.",
                    examples=EXAMPLES)
    p.add_argument("models", nargs="+", metavar="MODEL", help="two or more names from `cnnlstm models`")
    add_seed_flags(p, 3, "every model (one seed is reported as one, never as a win)")
    p.add_argument("--preset", default="fast", metavar="P",
                   help="the training preset of every model (default fast; 'none' for the config defaults)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="a config value for every run (repeatable), e.g. --set epochs=10")
    p.add_argument("--model-file", metavar="PATH.py", default=None,
                   help="a Python file whose @register_model builders join the models (see docs/models.md)")
    p.add_argument("--out", metavar="DIR", default=None, help="folder (default runs/compare-A-B...)")
    add_study_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlstm import api

    settings = run_settings_from_args(args)
    if args.model_file:
        settings["model_file"] = args.model_file
    display = StudyDisplay(quiet=args.quiet)
    try:
        summary = api.compare(args.models, out=args.out, seeds=args.seeds, max_seeds=args.max_seeds,
                              preset=None if args.preset == "none" else args.preset,
                              data=load_data_for_cli(args), settings=settings, workers=args.workers, dask=args.dask,
                              dask_tls=args.dask_tls, gpu_per_job=args.gpu_per_job, events=display.events())
    finally:
        display.stop()
    for pair in summary["pairs"]:
        print(pair.claim())
    if "stopped" in summary:
        print(f"seeds auto: {summary['stopped']}")
    print(f"report: {summary['report']}")
    return report_failures("compare", summary["failed"])
