"""``cnnlstm models``: the registered models with parameters, MFLOPs per image and a description."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from cnnlstm.cli import add_command


def add_parser(sub) -> None:
    p = add_command(sub, "models", help="list the registered models",
                    description="List every registered model: parameters, forward MFLOPs per 28x28 "
                                "image (LSTM FLOPs counted analytically), and a one-line description.",
                    examples="  cnnlstm models\n  cnnlstm models --json\n"
                             "  cnnlstm models --args cnn_lstm   # the model's keyword arguments\n"
                             "  cnnlstm models --model-file examples/gru_hybrid.py   # check and list your own\n")
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.add_argument("--args", metavar="MODEL", help="show MODEL's arguments and their defaults")
    p.add_argument("--model-file", metavar="PATH.py", help="import a Python file of @register_model builders "
                   "first: its contract is checked and its models are listed with the rest (docs/models.md)")
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlstm.models import get_model_entry, list_models, model_args, model_summary
    from cnnlstm.models.user import load_model_source

    if args.model_file:
        load_model_source(args.model_file)
    if args.args:
        entry = get_model_entry(args.args)
        print(f"{entry.name}: {entry.description}" + (f" (from {entry.source})" if entry.source else ""))
        for key, default in model_args(entry.name).items():
            print(f"  model_args.{key} = {default!r}")
        if entry.train_defaults:
            print(f"  training defaults: {entry.train_defaults}")
        return 0
    rows = [{**model_summary(name), "source": get_model_entry(name).source} for name in list_models()]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    table = Table(title="cnnlstm models")
    for col, just in (("name", "left"), ("params", "right"), ("MFLOPs", "right"), ("description", "left")):
        table.add_column(col, justify=just)
    for row in rows:
        source = f" (from {row['source']})" if row["source"] else ""
        table.add_row(row["name"], f"{row['params']:,}", f"{row['mflops']:.2f}", row["description"] + source)
    Console().print(table)
    return 0
