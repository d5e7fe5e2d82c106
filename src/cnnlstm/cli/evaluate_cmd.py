"""``cnnlstm evaluate``: re-evaluate a run folder's weights on the test set."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import DATA_NOTE, add_data_flags, add_device_flag, load_run_data, working

EXAMPLES = """\
  cnnlstm evaluate runs/cnn_lstm-20250101-120000            # best.pt on the 10,000 test images
  cnnlstm evaluate runs/m1 --checkpoint last                # the last epoch's weights instead
  cnnlstm evaluate runs/flagship --tta                      # average over the flips training used
  cnnlstm evaluate runs/m1 --device cpu --data-dir ~/fmnist # another copy of the data
"""

def add_parser(sub) -> None:
    p = add_command(sub, "evaluate", help="evaluate a run's weights on the test set",
                    description="Evaluate RUN_DIR's best.pt (or checkpoint.pt) on the test set and "
                                "(re)write its metrics.json, predictions.npz and figures "
                                "(confusion matrices, ROC curves, training curves, misclassified "
                                "images, reliability diagram). metrics.json also holds the calibration "
                                "(ECE with 15 bins, MCE, Brier score, NLL, before and after temperature "
                                "scaling fitted on the run's validation split) and the accuracy without "
                                "the test images that duplicate training images (accuracy_dedup). "
                                + DATA_NOTE,
                    examples=EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `cnnlstm train`")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="best = best validation weights (best.pt), last = the last epoch (checkpoint.pt)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the softmax over the flips the run trained with")
    add_device_flag(p, default=None, default_text="the run's device setting")
    add_data_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlstm import api

    run_dir = Path(args.run_dir)
    with ExitStack() as stack:
        def data(cfg):
            """The run's dataset, then a spinner for the evaluation and its figures (a download has its own bar)."""
            ds = load_run_data(args, cfg, run_dir)
            stack.enter_context(working(args.quiet, f"evaluating {run_dir} on {len(ds.test_labels):,} test "
                                        "images and drawing its figures"))
            return ds

        metrics = api.evaluate(run_dir, which=args.checkpoint, tta=args.tta, device=args.device, data=data)
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
    if metrics.get("ece") is not None:
        line = (f"calibration: ECE {metrics['ece']:.4f} ({metrics.get('calibration_bins', 15)} bins), "
                f"MCE {metrics['mce']:.4f}, Brier {metrics['brier']:.4f}")
        if metrics.get("temperature"):
            line += (f"; temperature {metrics['temperature']:.3f} (fitted on {metrics['n_val']:,} validation "
                     f"images) -> ECE {metrics['ece_temperature']:.4f}")
        print(line)
    if metrics.get("n_test_dedup") is not None and metrics.get("accuracy_dedup") is not None:
        print(f"accuracy without the {metrics['n_test_overlap']} test images that duplicate training images: "
              f"{metrics['accuracy_dedup']:.4f} (n={metrics['n_test_dedup']:,})")
    if metrics["top_confusions"]:
        pairs = ", ".join(f"{c['true_name']} -> {c['pred_name']} ({c['count']})"
                          for c in metrics["top_confusions"][:top])
        print(f"top confusions: {pairs}")
    print(f"wrote {run_dir / 'metrics.json'}, predictions.npz and figures/")
