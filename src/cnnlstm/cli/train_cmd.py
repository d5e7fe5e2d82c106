"""``cnnlstm train``: train one model into a run folder, or resume one exactly."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import add_device_flag, load_data_for_cli, training_display
from cnnlstm.config import TrainConfig, parse_set, preset_names, resolve_train_config
from cnnlstm.errors import ConfigError
from cnnlstm.runs import default_run_dir

log = logging.getLogger(__name__)

EXAMPLES = """\
  cnnlstm train cnn_lstm --preset fast          # the flagship under its fast CPU recipe
  cnnlstm train model1 --preset paper --seed 1  # the plan's baseline Model I
  cnnlstm train cnn_svm --epochs 5              # CNN with an L2-SVM head (squared hinge loss)
  cnnlstm train cnn_lstm --set model_args.seq_axis=cols --set flip_h=0.5 --lr 3e-3
  cnnlstm train model1 --config my.toml --out runs/m1
  cnnlstm train --resume runs/m1                # continue an interrupted run exactly
  cnnlstm train model1 --limit-train 2000 --epochs 1 --device cpu --threads 2
"""

SKIP_FLAGS = {"model", "model_args"}  # positional MODEL, and --set model_args.X=...


def add_parser(sub) -> None:
    p = add_command(sub, "train", help="train a model into a run folder",
                    description="Train MODEL (see `cnnlstm models`) and evaluate its best validation "
                                "weights on the test set. Every config key is also a flag "
                                "(`limit_train` is --limit-train) and can be set with --set KEY=VALUE; "
                                "precedence: defaults < preset < --config < --set/flags.",
                    examples=EXAMPLES)
    p.add_argument("model", nargs="?", help="model name (from `cnnlstm models`)")
    p.add_argument("--preset", choices=preset_names(), help="shipped settings: paper = the plan's, "
                   "fast = most accuracy in ~60 s of 2 CPU cores, best = most in ~30 min of them, "
                   "gpu = one CUDA GPU (benchmarks/RESULTS.md has what each measured)")
    p.add_argument("--config", metavar="FILE", help="TOML/YAML/JSON file of config keys")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="set any config key, e.g. --set model_args.lstm_hidden=64 (repeatable)")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/<model>-<timestamp>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    p.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="skip the test-set evaluation at the end")
    p.add_argument("--nproc", type=int, default=0, metavar="N",
                   help="data-parallel training on N local processes (launches torchrun)")
    add_config_flags(p)
    p.set_defaults(func=run)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, sharing its name (``limit_train`` -> ``--limit-train``).

    Each flag's default is None, so that only flags given on the command line override the
    preset and the config file; the help states the dataclass default instead.
    """
    group = p.add_argument_group("config keys (defaults shown are the dataclass defaults)")
    hints = typing.get_type_hints(TrainConfig)
    comments = field_comments()
    for f in dataclasses.fields(TrainConfig):
        if f.name in SKIP_FLAGS:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp = hints[f.name]
        stated = f"(default: {f.default})" if f.default is not None else None  # the comment says what None means
        text = " ".join(filter(None, [comments.get(f.name), stated]))
        if f.name == "device":
            add_device_flag(group, default=None, default_text=f.default, dest="cfg_device")
        elif tp is bool:
            group.add_argument(flag, dest=f"cfg_{f.name}", action=argparse.BooleanOptionalAction,
                               default=None, help=text)
        elif typing.get_origin(tp) is typing.Literal:
            group.add_argument(flag, dest=f"cfg_{f.name}", choices=typing.get_args(tp), default=None, help=text)
        else:
            conv = {int: int, float: float}.get(tp, str)
            group.add_argument(flag, dest=f"cfg_{f.name}", type=conv, default=None, metavar=f.name.upper(),
                               help=text)


def field_comments() -> dict[str, str]:
    """Each TrainConfig field's trailing comment in config.py, as its flag's help ({} without the source).

    The comments are the fields' documentation; reading them keeps one text for both.
    """
    import inspect
    import re

    try:
        source = inspect.getsource(TrainConfig)
    except (OSError, TypeError):  # installed without .py files
        return {}
    pattern = re.compile(r"^\s+(?P<name>\w+):[^#\n]*#(?P<comment>[^\n]*)$", re.M)
    return {m["name"]: m["comment"].strip().replace("%", "%%") for m in pattern.finditer(source)}


def flag_overrides(args) -> dict:
    """Config values given as explicit flags (None = not given)."""
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}


def resolve_from_args(args) -> TrainConfig:
    from cnnlstm.config import deep_merge

    overrides = deep_merge(parse_set(args.sets), flag_overrides(args))
    if not (args.model or args.config or "model" in overrides):
        raise ConfigError("name a MODEL (see `cnnlstm models`), or use --resume RUN_DIR")
    return resolve_train_config(args.model, preset=args.preset, config_file=args.config, overrides=overrides)


def run(args) -> int:
    if args.nproc and args.nproc > 1:
        from cnnlstm.training.distributed import launch_torchrun

        return launch_torchrun(args.argv, args.nproc)
    from cnnlstm.training.distributed import distributed_context

    with distributed_context() as dist:
        if args.resume:
            if args.model or args.preset or args.config or args.sets or flag_overrides(args):
                raise ConfigError("--resume continues a run with its saved config.json; "
                                  "drop MODEL, --preset, --config, --set and config flags")
            run_dir, cfg = Path(args.resume), None
        else:
            cfg = resolve_from_args(args)
            run_dir = Path(args.out) if args.out else default_run_dir(cfg.model)
        if cfg is not None:
            ds = load_data_for_cli(args, data=cfg.data, image_size=cfg.image_size, data_dir=cfg.data_dir,
                                   download=cfg.download, verify=cfg.verify)
        else:
            from cnnlstm.runs import load_run_config

            saved = load_run_config(run_dir)
            ds = load_data_for_cli(args, data=saved.data, image_size=saved.image_size, data_dir=saved.data_dir,
                                   download=saved.download, verify=saved.verify)
        quiet = args.quiet or dist.rank != 0
        with training_display(quiet) as display:
            result = _train(args, cfg, run_dir, ds, dist, display)
        if dist.rank == 0:
            report_result(run_dir, result, quiet=args.quiet)
    return 0


def _train(args, cfg, run_dir, ds, dist, display):
    from cnnlstm.study.experiment import train_run
    from cnnlstm.training.loop import TrainingInterrupted

    try:
        return train_run(cfg, run_dir, ds, resume=bool(args.resume), evaluate=args.evaluate,
                         rank=dist.rank, world_size=dist.world_size, wrap_model=dist.wrap,
                         on_step=display.on_step, on_epoch=display.on_epoch)
    except TrainingInterrupted as exc:
        display.stop()
        if dist.rank == 0:  # the other ranks saved nothing
            print(f"cnnlstm train: interrupted; state saved to {exc.checkpoint}\n"
                  f"resume with: cnnlstm train --resume {run_dir}", file=sys.stderr)
        raise SystemExit(130 if exc.signum == 2 else 143) from None
    except KeyboardInterrupt:  # a second Ctrl-C stops at once; atomic writes keep the last checkpoint whole
        display.stop()
        if dist.rank == 0 and (run_dir / "config.json").exists():
            print(f"cnnlstm train: interrupted; {run_dir} keeps its last checkpoint\n"
                  f"resume with: cnnlstm train --resume {run_dir}", file=sys.stderr)
        raise SystemExit(130) from None


def report_result(run_dir: Path, result: dict, quiet: bool) -> None:
    state, metrics = result["state"], result["metrics"]
    if quiet:
        return
    best = state.best_metric
    print(f"run folder: {run_dir}")
    print(f"trained {state.epoch} epochs in {result['train_seconds']:.1f} s; best validation epoch "
          f"{state.best_epoch}" + (f" ({best:.4f})" if best is not None else ""))
    if metrics:
        print(f"test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['f1_macro']:.4f} "
              f"(n={metrics['n_test']}); worst class: {metrics['per_class'][metrics['worst_class']]['name']}")
