"""``cnnlstm explain``: Grad-CAM and LSTM step attributions for a few test images of a run."""

from __future__ import annotations

from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import (DATA_NOTE, add_data_flags, add_device_flag, check_device, load_run_data,
                                non_negative_int)
from cnnlstm.errors import ConfigError

EXAMPLES = """\
  cnnlstm explain runs/flagship                  # 3 test images per class + the worst class's mistakes
  cnnlstm explain runs/flagship --per-class 5    # more images per class
  cnnlstm explain runs/m1 --mistakes 12 --seed 1 # other images; a CNN gets Grad-CAM only
  cnnlstm report runs/flagship                   # the report then shows the figures
"""

DESCRIPTION = (
    "Explain RUN_DIR's best.pt on a few test images: Grad-CAM (captum) on the last convolution and, for "
    "models with an LSTM, integrated gradients over the LSTM's input steps (one score per row, column or "
    "position the LSTM reads), both for the predicted class. Writes explain.json, figures/explain.png "
    "(--per-class seeded images of each class) and figures/explain_mistakes.png (the worst class's most "
    "confident mistakes). A few seconds on 2 CPU cores. " + DATA_NOTE)


def add_parser(sub) -> None:
    p = add_command(sub, "explain", help="where a run's model looks: Grad-CAM and LSTM step attribution",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (with best.pt)")
    p.add_argument("--per-class", type=non_negative_int, default=3, metavar="K",
                   help="test images per class in figures/explain.png")
    p.add_argument("--mistakes", type=non_negative_int, default=8, metavar="M",
                   help="most confident mistakes of the worst class in figures/explain_mistakes.png")
    p.add_argument("--seed", type=int, default=0, help="seeds the choice of images")
    add_device_flag(p, default=None, default_text="the run's device setting")
    add_data_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import logging

    from cnnlstm.explain import run_explain
    from cnnlstm.runs import load_run_config, read_json, weights_path

    if args.per_class < 1:
        raise ConfigError("--per-class must be >= 1")
    device = check_device(args.device)
    run_dir = Path(args.run_dir)
    cfg = load_run_config(run_dir)
    weights_path(run_dir, "best")  # fail on an unfinished run before loading data
    ds = load_run_data(args, cfg, run_dir)
    logging.getLogger(__name__).info("explaining %s: %d images per class and up to %d mistakes",
                                     run_dir, args.per_class, args.mistakes)
    figure = run_explain(run_dir, ds, per_class=args.per_class, mistakes=args.mistakes, seed=args.seed,
                         device=device)
    if not args.quiet:
        record = read_json(run_dir / "explain.json")
        print(f"{run_dir}: Grad-CAM on {record['grad_cam']['layer']}; " + (
            f"step attribution over {record['steps']['n_steps']} {record['steps']['seq_axis']} steps"
            if "absent" not in record["steps"] else record["steps"]["absent"]))
        profile = record.get("step_profile")
        if profile:
            print("mean share of |attribution| per step: " + " ".join(f"{v:.2f}" for v in profile["all"]))
        print(f"worst class {record['worst_class_name']}: {len(record['mistakes'])} confident mistakes shown")
        print(f"wrote {run_dir / 'explain.json'}, {figure} and figures/explain_mistakes.png "
              f"({record['seconds']:.1f} s)")
    return 0
