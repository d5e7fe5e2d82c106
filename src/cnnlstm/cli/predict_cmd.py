"""``cnnlstm predict``: classify image files (PNG, JPEG, ... or .npy) with a run's weights."""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import add_device_flag, check_device, positive_int
from cnnlstm.errors import ConfigError

EXAMPLES = """\
  cnnlstm predict runs/cnn_lstm-20250101-120000 shoe.jpg shirt.png   # top-3 table
  cnnlstm predict runs/m1 photos/ --topk 1                            # every image in a folder
  cnnlstm predict runs/m1 *.png --json > predictions.jsonl            # one JSON object per file
  cnnlstm predict runs/m1 image.npy --checkpoint last --device cuda
"""

DESCRIPTION = """\
Classify each IMAGE with RUN_DIR's weights and print its top-K classes with probabilities.

IMAGE is any file Pillow reads (PNG, JPEG, GIF, BMP, TIFF, WebP ...; any size and mode; EPS is
refused) or a .npy array ((H, W), (1, H, W), (H, W, 1) or (H, W, 3); integers 0..255, or floats
in [0, 1] or [0, 255]). A folder stands for the image and .npy files directly inside it.
Each image is prepared the way Fashion-MNIST was made: grayscale; negated if its border is light
(so the object is light on black); trimmed to the object; longest side resized to 28 px; centred
on a black 28x28 canvas; normalised like the training images. A 28x28 image is only negated if
needed, so dataset images pass through unchanged. See docs/predict.md.

A file that cannot be used (unreadable, not an image, truncated, smaller than 8x8, larger than
50 MP, blank) gets a one-line error on stderr; the other files are still predicted.

exit status:
  0  every file was predicted
  1  some files failed (each named on stderr); the others were predicted
  2  nothing was predicted: a usage error (RUN_DIR is not a run, --topk 0 ...) or every file failed
"""


def add_parser(sub) -> None:
    p = add_command(sub, "predict", help="classify image files with a run's weights",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `cnnlstm train`")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image or .npy files, or folders of them")
    p.add_argument("--topk", type=positive_int, default=3, metavar="K",
                   help="classes shown per image (at most the number of classes)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per line per file: {"file", "top": [{"label", "name", "prob"}]}')
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="best = best validation weights (best.pt), last = the last epoch (checkpoint.pt)")
    add_device_flag(p, default="cpu", default_text="cpu; the models are small, reading the files dominates")
    p.add_argument("--batch-size", type=positive_int, default=512, metavar="B",
                   help="images read and classified per batch")
    p.set_defaults(func=run)


def expand_paths(items: list[str]) -> list[str]:
    """Files as given; a folder becomes its image/.npy files (sorted, not recursive, no hidden files)."""
    from PIL import Image

    Image.init()
    suffixes = {ext.lower() for ext in Image.registered_extensions()} | {".npy"}
    out: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(f) for f in path.iterdir()
                           if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in suffixes)
            if not found:
                raise ConfigError(f"{item}: folder holds no image or .npy files")
            out.extend(found)
        else:
            out.append(item)
    return out


def printable(text: str) -> str:
    """``text`` safe for one terminal line: undecodable bytes and control characters escaped."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def run(args) -> int:
    from cnnlstm.deploy.predict import load_predictor, predict_files
    from cnnlstm.device import resolve_device

    check_device(args.device)
    paths = expand_paths(args.images)
    run_ = load_predictor(args.run_dir, args.checkpoint, resolve_device(args.device))
    with warnings.catch_warnings():
        if not args.debug:  # decoders' chatter about damaged files; each failure gets its own line
            warnings.simplefilter("ignore")
        results = predict_files(run_, paths, topk=args.topk, batch_size=args.batch_size)
        failed = _print_json(results) if args.json else _print_table(results, min(args.topk, len(run_.classes)))
    return exit_status(failed, len(paths))


def exit_status(failed: int, total: int) -> int:
    """0 when every file was predicted, 1 when some failed and the rest were predicted, 2 when all failed.

    Every file failing is a user error (the inputs are not images), so it exits like one.
    """
    if not failed:
        return 0
    return 2 if failed >= total else 1


def _report_error(message: str) -> None:
    print(f"cnnlstm predict: error: {printable(message)}", file=sys.stderr, flush=True)


def _print_json(results) -> int:
    """Stream one JSON line per predicted file (errors go to stderr); return the failure count."""
    failed = 0
    for res in results:
        if res.error is not None:
            failed += 1
            _report_error(res.error)
        else:
            print(json.dumps(res.to_json(), ensure_ascii=True), flush=False)
    sys.stdout.flush()
    return failed


def _print_table(results, k: int) -> int:
    """A rich table of the top-``k`` classes per file (errors go to stderr); return the failure count."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False)
    table.add_column("file", overflow="fold")
    for i in range(1, k + 1):
        table.add_column(f"#{i}", no_wrap=True)
    failed, widest = 0, 0
    for res in results:
        if res.error is not None:
            failed += 1
            _report_error(res.error)
            continue
        cells = [Text(f"{t['name']} {t['prob']:.1%}") for t in res.top]
        name = Text(printable(res.file))
        widest = max(widest, name.cell_len + sum(c.cell_len + 3 for c in cells) + 3)
        table.add_row(name, *cells)
    if table.row_count:
        # On a terminal long names fold; piped into a file, lines are as wide as needed, unbroken.
        width = None if sys.stdout.isatty() else max(80, widest)
        Console(highlight=False, width=width).print(table)
    return failed
