"""``cnnlstm explain``: Grad-CAM and LSTM step attributions for a few test images of a run."""

from __future__ import annotations

from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import DATA_NOTE, add_data_flags, add_device_flag, load_run_data, non_negative_int

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
    from cnnlstm import api

    run_dir = Path(args.run_dir)
    record = api.explain(run_dir, per_class=args.per_class, mistakes=args.mistakes, seed=args.seed,
                         device=args.device, data=lambda cfg: load_run_data(args, cfg, run_dir))
    if not args.quiet:
        print(f"{run_dir}: Grad-CAM on {record['grad_cam']['layer']}; " + (
            step_words(record["steps"]) if "absent" not in record["steps"] else record["steps"]["absent"]))
        profile = record.get("step_profile")
        if profile:
            print("mean share of |attribution| per step: " + " ".join(f"{v:.2f}" for v in profile["all"]))
        print(f"worst class {record['worst_class_name']}: {len(record['mistakes'])} confident mistakes shown")
        print(f"wrote {run_dir / 'explain.json'}, figures/explain.png and figures/explain_mistakes.png "
              f"({record['seconds']:.1f} s)")
    return 0


#: What one LSTM step is, for each ``seq_axis`` a hybrid reads its feature map along.
STEP_UNITS = {"rows": "row", "cols": "column", "spatial": "position"}


def step_words(steps: dict) -> str:
    """``step attribution over 7 LSTM steps (one per row of the feature map)``."""
    n, axis = steps["n_steps"], steps.get("seq_axis")
    unit = STEP_UNITS.get(axis)
    what = f" (one per {unit} of the feature map)" if unit else f" ({axis})" if axis else ""
    return f"step attribution over {n} LSTM step{'s' if n != 1 else ''}{what}"
