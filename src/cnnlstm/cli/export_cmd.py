"""``cnnlstm export``: a run's model as a TorchScript or ONNX file with a preprocessing card."""

from __future__ import annotations

from cnnlstm.cli import add_command

EXAMPLES = """\
  cnnlstm export runs/cnn_lstm-20250101-120000 --format onnx        # RUN_DIR/model.onnx (+ .json)
  cnnlstm export runs/m1 --format torchscript --out m1.pt           # m1.pt and m1.pt.json
  cnnlstm export runs/m1 --format onnx --checkpoint last
"""

DESCRIPTION = """\
Export RUN_DIR's weights as a deployable model that returns probabilities: a softmax on top of
the classifier. Input "images": float32 (N, 1, 28, 28), any N, normalised like training:
(pixel / 255 - 0.2860) / 0.3530, object light on a dark background. Output "probs": float32
(N, classes). FILE.json beside the model (also embedded in it) records the input, mean, std,
the preprocessing rule of `cnnlstm predict` and the class names.

Each export is loaded back and checked against PyTorch on a batch before it is kept
(probabilities equal to 1e-5; ONNX is run on onnx's reference evaluator). ONNX needs
`pip install 'cnnlstm[onnx]'`. See docs/predict.md.
"""


def add_parser(sub) -> None:
    p = add_command(sub, "export", help="export a run's model as TorchScript or ONNX",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `cnnlstm train`")
    p.add_argument("--format", required=True, choices=("torchscript", "onnx"), dest="fmt",
                   help="torchscript (torch.jit.trace) or onnx (torch.onnx dynamo exporter, opset 18)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="model file (default RUN_DIR/model.torchscript.pt or RUN_DIR/model.onnx)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="best = best validation weights (best.pt), last = the last epoch (checkpoint.pt)")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlstm.deploy.export import export_run

    result = export_run(args.run_dir, args.fmt, out=args.out, which=args.checkpoint)
    if not args.quiet:
        print(f"{result.format}: {result.path}")
        print(f"card: {result.card}")
        print(f"checked against PyTorch: max |probability difference| {result.max_abs_diff:.2e}")
    return 0
