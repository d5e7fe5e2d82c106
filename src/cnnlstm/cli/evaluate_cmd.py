"""``cnnlstm evaluate``: re-evaluate a run folder's weights on the test set."""

from __future__ import annotations

import re
from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import add_data_flags, load_data_for_cli
from cnnlstm.errors import ConfigError, DatasetError

EXAMPLES = """\
  cnnlstm evaluate runs/cnn_lstm-20250101-120000            # best.pt on the 10,000 test images
  cnnlstm evaluate runs/m1 --checkpoint last                # the last epoch's weights instead
  cnnlstm evaluate runs/flagship --tta                      # average over the flips training used
  cnnlstm evaluate runs/m1 --device cpu --data-dir ~/fmnist # another copy of the data
"""

DATA_NOTE = ("By default the data are loaded the way the run was trained (its config.json's data_dir, "
             "download and verify); --data-dir, --no-download and --no-verify override that.")


def add_parser(sub) -> None:
    p = add_command(sub, "evaluate", help="evaluate a run's weights on the test set",
                    description="Evaluate RUN_DIR's best.pt (or checkpoint.pt) on the test set and "
                                "(re)write its metrics.json, predictions.npz and figures "
                                "(confusion matrices, ROC curves, training curves, misclassified "
                                "images). " + DATA_NOTE,
                    examples=EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `cnnlstm train`")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="best = best validation weights (best.pt), last = the last epoch (checkpoint.pt)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the softmax over the flips the run trained with")
    p.add_argument("--device", default=None, metavar="D",
                   help="auto, cpu, cuda or cuda:N (default: the run's device setting)")
    add_data_flags(p)
    p.set_defaults(func=run)


def check_device(name: str | None) -> str | None:
    """Reject a malformed ``--device`` with a one-line error (torch would raise a traceback)."""
    if name is None or re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        return name
    raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")


def load_run_data(args, cfg, run_dir: Path):
    """The dataset of a run: its saved data settings, overridden by explicit data flags."""
    data_dir = args.data_dir if args.data_dir is not None else cfg.data_dir
    try:
        return load_data_for_cli(args, data_dir=data_dir, download=args.download and cfg.download,
                                 verify=args.verify and cfg.verify)
    except DatasetError as exc:
        if args.data_dir is None and cfg.data_dir is not None:
            raise DatasetError(f"{exc} (the data_dir saved in {run_dir}/config.json; "
                               "pass --data-dir to use another copy)") from exc
        raise


def run(args) -> int:
    import logging

    from cnnlstm.experiment import evaluate_run, load_run_for_eval, tta_views_for
    from cnnlstm.runs import run_lock, weights_path

    run_dir = Path(args.run_dir)
    device = check_device(args.device)
    cfg = load_run_for_eval(run_dir)
    weights_path(run_dir, args.checkpoint)  # fail on a missing checkpoint before loading data
    if args.tta and tta_views_for(cfg) is None:
        logging.getLogger(__name__).warning("--tta has no effect: %s trained without flips", run_dir)
    ds = load_run_data(args, cfg, run_dir)
    with run_lock(run_dir):
        metrics = evaluate_run(run_dir, ds, which=args.checkpoint, tta=args.tta, device=device)
    if not args.quiet:
        print_summary(run_dir, metrics)
    return 0


def print_summary(run_dir: Path, metrics: dict, top: int = 3) -> None:
    """Accuracy, macro F1, the worst class and the most frequent confusions."""
    worst = metrics["per_class"][metrics["worst_class"]]
    auc = metrics.get("roc_auc_macro")
    print(f"{run_dir}: {metrics['checkpoint']} weights{' with TTA' if metrics['tta'] else ''}, "
          f"n={metrics['n_test']:,} test images")
    print(f"accuracy {metrics['accuracy']:.4f}   macro F1 {metrics['f1_macro']:.4f}"
          + (f"   macro ROC AUC {auc:.4f}" if auc is not None else ""))
    print(f"worst class: {worst['name']} (label {worst['label']}), F1 {worst['f1']:.4f}, "
          f"recall {worst['recall']:.4f}")
    if metrics["top_confusions"]:
        pairs = ", ".join(f"{c['true_name']} -> {c['pred_name']} ({c['count']})"
                          for c in metrics["top_confusions"][:top])
        print(f"top confusions: {pairs}")
    print(f"wrote {run_dir / 'metrics.json'}, predictions.npz and figures/")
