"""``cnnlstm reproduce``: the research plan end to end, resumable, with one report at the end."""

from __future__ import annotations

from cnnlstm.cli import add_command
from cnnlstm.cli.common import (
    StudyDisplay,
    add_data_flags,
    add_device_flag,
    add_executor_flags,
    add_seed_flags,
    load_data_for_cli,
    report_failures,
    run_settings_from_args,
)

EXAMPLES = """\
  cnnlstm reproduce                         # --preset quick: the plan's question at 3 seeds, ~10 min on 2 CPU cores
  cnnlstm reproduce --preset paper          # the plan's settings, 3 seeds
  cnnlstm reproduce --preset best --seeds 5 --out runs/best-study
  cnnlstm reproduce --out runs/study        # after an interruption: the same command continues it
  cnnlstm reproduce --preset paper --workers 4 --device cuda      # 4 jobs at a time sharing one GPU
  cnnlstm reproduce --preset paper --dask tcp://lab-pc1:8786      # on the lab's Dask cluster
  cnnlstm reproduce --data ~/pets --image-size 32 --out runs/pets-study   # the plan's study on your images
  cnnlstm reproduce --model-file examples/gru_hybrid.py       # your models beside the flagship and twin
  cnnlstm reproduce --positive-control runs/debris   # beside a positive control (docs/positive-control.md)
"""


def add_parser(sub) -> None:
    from cnnlstm.study.paper.plan import STUDY_PRESETS

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
    add_seed_flags(p, None, "every model the preset trains (default: the preset's, 3 for the compared pairs; "
                            "auto: until every hybrid-vs-control interval decides)")
    p.add_argument("--out", metavar="DIR", default=None, help="study folder (default runs/reproduce-<preset>)")
    add_device_flag(p, default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    p.add_argument("--limit-train", type=int, default=0, metavar="N",
                   help="train every run on only N images (smoke tests)")
    p.add_argument("--models", default=None, metavar="A,B", help="only these models (comma-separated)")
    p.add_argument("--ablations", default=None, metavar="A,B",
                   help="only these flagship ablations (comma-separated; 'none' for none); default all of: "
                        "all_on, no_flip, no_batchnorm, no_dropout, adam, nadam, sgd")
    p.add_argument("--model-file", metavar="PATH.py", default=None,
                   help="your own @register_model builders: each trains with the flagship's recipe and seeds, "
                        "compared with the flagship and its twin (docs/models.md)")
    p.add_argument("--tsne-samples", type=int, default=None, metavar="N",
                   help="images in the raw-pixel t-SNE (default: the preset's; 0 skips it)")
    p.add_argument("--positive-control", metavar="DIR", default=None,
                   help="the folder of an earlier `cnnlstm compare` (e.g. spoerer_bl vs spoerer_bk on debris:10) "
                        "whose result the report prints beside the LSTM's answer, in 'Could this study have "
                        "seen a benefit?' (docs/positive-control.md)")
    add_executor_flags(p)
    add_data_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlstm import api

    settings = run_settings_from_args(args, limit_train=args.limit_train)
    models = tuple(m.strip() for m in args.models.split(",")) if args.models else None
    ablations = None
    if args.ablations:
        ablations = () if args.ablations == "none" else tuple(a.strip() for a in args.ablations.split(","))
    display = StudyDisplay(quiet=args.quiet)
    try:
        summary = api.reproduce(args.preset, out=args.out, seeds=args.seeds, max_seeds=args.max_seeds, models=models,
                                ablations=ablations,
                                tsne_samples=args.tsne_samples, data=load_data_for_cli(args), settings=settings,
                                workers=args.workers, dask=args.dask, dask_tls=args.dask_tls,
                                gpu_per_job=args.gpu_per_job, model_file=args.model_file,
                                positive_control=args.positive_control, events=display.events())
    finally:
        display.stop()
    if not args.quiet:
        print(f"study: {summary['ran']} jobs run, {summary['skipped']} already done, "
              f"{summary['seconds'] / 60:.1f} min")
    print(f"report: {summary['report']}")
    if args.positive_control is None:
        from cnnlstm.study.paper.sections import POSITIVE_CONTROL_COMMAND

        print(f"could it have seen a benefit? measure a positive control: {POSITIVE_CONTROL_COMMAND} "
              "(docs/positive-control.md), then --positive-control DIR")
    return report_failures("reproduce", summary["failed"],
                           "the report lists the missing runs, and the same command retries them")
