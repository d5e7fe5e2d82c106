"""``cnnlstm sweep``: an Optuna study of training configs, one or many workers, and its best config."""

from __future__ import annotations

import sys
from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import add_data_flags, add_device_flag, check_device, load_data_for_cli
from cnnlstm.config import deep_merge, dump_config, parse_set, preset_names, resolve_model_source
from cnnlstm.errors import ConfigError

EXAMPLES = """\
  cnnlstm sweep model1 --trials 20 --set epochs=3            # SQLite study in runs/sweep-model1
  cnnlstm sweep cnn_lstm --trials 40 --preset fast --set epochs=3 --space space.toml
  cnnlstm sweep model1 --trials 20 --set epochs=3            # run again: continues the same study
  cnnlstm sweep gru_hybrid --model-file examples/gru_hybrid.py --trials 10 --set epochs=2
  cnnlstm sweep cnn_lstm --data ~/pets --image-size 32 --trials 20 --set epochs=5   # your own images

  # one study across lab machines: run the same line on each (N is the total over all of them)
  cnnlstm sweep cnn_lstm --trials 100 --preset fast --study lab-cnn-lstm \\
      --storage postgresql://optuna:secret@db-host:5432/optuna

  # the best trial's config, for `cnnlstm train --config`
  cnnlstm sweep --best lab-cnn-lstm --storage postgresql://optuna:secret@db-host:5432/optuna --out best.toml
  cnnlstm train --config best.toml --set limit_train=0 --out runs/best

space file (TOML; YAML/JSON alike), replacing the default space:
  lr = {type = "float", low = 1e-4, high = 1e-2, log = true}
  optimizer = {type = "categorical", choices = ["adam", "adamw"]}
  epochs = {type = "int", low = 2, high = 8, step = 2}
  [model_args]
  dropout = {type = "float", low = 0.0, high = 0.5}
"""


def add_parser(sub) -> None:
    p = add_command(sub, "sweep", help="search hyper-parameters with Optuna (one or many workers)",
                    description="Run an Optuna study of MODEL's training config: TPE sampling, median "
                                "pruning on the validation accuracy after each epoch, objective = best "
                                "validation accuracy (the test set is never used). Each trial is a run "
                                "folder OUT/trial-N. Writes OUT/sweep.json and OUT/figures/sweep_*.png. "
                                "The same command on several machines with one --storage joins one study; "
                                "--trials is the study's total of finished (complete or pruned) trials. "
                                "Default space: lr, weight_decay, batch_size, optimizer, flip_h, flip_v, "
                                "model_args.dropout and model_args.lstm_hidden where the model has them.",
                    examples=EXAMPLES)
    p.add_argument("model", nargs="?", help="model name (from `cnnlstm models`)")
    p.add_argument("--trials", type=int, metavar="N", help="finished trials the study should hold in total")
    p.add_argument("--storage", metavar="URL", help="Optuna database URL (default sqlite:///OUT/study.db; "
                   "postgresql://user:password@host:port/db to share a study between machines)")
    p.add_argument("--study", metavar="NAME", help="study name (default cnnlstm-MODEL)")
    p.add_argument("--space", metavar="FILE", help="TOML/YAML/JSON search space replacing the default one")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="fix a config key for every trial, e.g. --set epochs=3 (repeatable; not searched)")
    p.add_argument("--preset", choices=preset_names(), help="the base settings trials start from")
    p.add_argument("--out", metavar="PATH", help="sweep folder (default runs/sweep-STUDY); with --best, "
                   "the config file to write (.toml/.yaml/.json; default: print TOML)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (the training seed is --set seed=S)")
    p.add_argument("--best", metavar="STUDY",
                   help="print or write the best trial's config of STUDY (needs --storage)")
    runtime = p.add_argument_group("data and runtime (fixed for every trial, like --set)")
    add_data_flags(runtime)
    # Only the data flags given override the preset's and --set's values, as --set would.
    p.set_defaults(download=None, verify=None)
    add_device_flag(runtime, default=None, default_text="the preset's or --set's, else auto")
    runtime.add_argument("--threads", type=int, help="CPU threads per worker")
    runtime.add_argument("--model-file", metavar="PATH.py",
                         help="a Python file whose @register_model builders join the models (docs/models.md)")
    robust = p.add_argument_group("workers")
    robust.add_argument("--heartbeat", type=int, default=60, metavar="SECONDS",
                        help="a running trial's heartbeat interval")
    robust.add_argument("--grace", type=int, default=None, metavar="SECONDS",
                        help="a trial without a heartbeat for this long is failed and retried "
                             "(default 2x heartbeat)")
    robust.add_argument("--max-retry", type=int, default=3, metavar="N",
                        help="retries of a trial whose worker died")
    robust.add_argument("--no-prune", dest="prune", action="store_false", help="never prune trials")
    p.set_defaults(func=run)


def runtime_overrides(args) -> dict:
    """The data/runtime flags as config values (only those given)."""
    values = {"data": args.data, "image_size": args.image_size, "data_dir": args.data_dir,
              "download": args.download, "verify": args.verify, "device": check_device(args.device),
              "threads": args.threads}
    return {k: v for k, v in values.items() if v is not None}


def quiet_optuna(debug: bool) -> None:
    """Route Optuna's log lines through our handler, at WARNING unless --debug."""
    import logging

    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(logging.DEBUG if debug else logging.WARNING)


def run(args) -> int:
    quiet_optuna(args.debug)
    if args.best:
        return write_best(args)
    return run_worker(args)


def run_worker(args) -> int:
    from cnnlstm.study import sweep as S

    if not args.model:
        raise ConfigError("name a MODEL to sweep (see `cnnlstm models`), or use --best STUDY")
    if not args.trials or args.trials < 1:
        raise ConfigError("--trials N (>= 1) is required: the number of finished trials the study should hold")
    if args.heartbeat < 1 or (args.grace is not None and args.grace < 1) or args.max_retry < 0:
        raise ConfigError("--heartbeat and --grace must be >= 1 and --max-retry >= 0")
    fixed = deep_merge(parse_set(args.sets), runtime_overrides(args))
    # `my_pkg.nets:gru` or --model-file: the user's source is imported before the space reads the model
    args.model, model_file = resolve_model_source(args.model, args.model_file or fixed.get("model_file", ""))
    if model_file:
        fixed["model_file"] = model_file
    space = S.load_space(args.space) if args.space else S.default_space(args.model)
    study = args.study or f"cnnlstm-{args.model}"
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{study}"
    settings = S.SweepSettings(
        model=args.model, n_trials=args.trials, out_dir=out, study_name=study,
        storage_url=S.check_storage_url(args.storage or S.default_storage(out)),
        space=S.check_space(space, args.model, fixed), fixed=fixed, preset=args.preset, seed=args.seed,
        heartbeat_interval=args.heartbeat, grace_period=args.grace, max_retry=args.max_retry, prune=args.prune)
    base = S.base_config(settings)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_data_for_cli(args, data=base.data, image_size=base.image_size, data_dir=base.data_dir,
                           download=base.download, verify=base.verify)
    from cnnlstm.training.loop import TrainingInterrupted

    try:
        result = S.run_sweep(settings, ds)
    except TrainingInterrupted as exc:
        print(f"cnnlstm sweep: interrupted; the trial's state is saved ({exc.checkpoint}) and queued "
              "for retry: run the same command again to continue", file=sys.stderr)
        return 130 if exc.signum == 2 else 143
    summary = S.write_outputs(result, out, seed=args.seed)
    if not args.quiet:
        report(summary, out)
    return 0


def report(summary: dict, out: Path) -> None:
    counts = ", ".join(f"{n} {k.lower()}" for k, n in summary["counts"].items() if n)
    print(f"study {summary['study']}: {counts}")
    best = summary["best"]
    if best:
        params = ", ".join(f"{k}={_short(v)}" for k, v in best["params"].items())
        print(f"best: trial {best['number']}, validation accuracy {best['value']:.4f} ({params})")
    print(f"summary: {out / 'sweep.json'}; figures: {out / 'figures'}")


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def write_best(args) -> int:
    from cnnlstm.study import sweep as S

    if not args.storage:
        raise ConfigError("--best STUDY needs --storage URL (e.g. sqlite:///runs/sweep-NAME/study.db)")
    cfg, trial = S.best_config(args.storage, args.best)
    header = (f"best trial {trial.number} of study {args.best}: validation accuracy {trial.value:.4f}\n"
              "use: cnnlstm train --config THIS_FILE")
    if not args.out:
        sys.stdout.write(dump_config(cfg, "toml", header))
        return 0
    path = Path(args.out)
    fmt = path.suffix.lstrip(".")
    if fmt not in ("toml", "yaml", "yml", "json"):
        raise ConfigError(f"--out {path}: the config file must end in .toml, .yaml, .yml or .json")
    from cnnlstm.runs import atomic_write

    atomic_write(path, dump_config(cfg, fmt, header).encode())
    if not args.quiet:
        print(f"wrote {path} (trial {trial.number}, validation accuracy {trial.value:.4f})")
    return 0
