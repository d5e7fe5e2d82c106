"""``cnnlstm models``: the registered models with parameters, MFLOPs per image and a description."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from cnnlstm.cli import add_command


def add_parser(sub) -> None:
    p = add_command(sub, "models", help="list the registered models",
                    description="List every registered model: parameters and forward MFLOPs per 28x28 "
                                "image (LSTM FLOPs counted analytically) with its builder's defaults, the "
                                "same under each training preset whose model_args change them (the flagship "
                                "family's stem differs per preset: the quick and paper studies train it with "
                                "fast's), and a one-line description.",
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
    rows = []
    for name in list_models():
        row = model_summary(name)
        rows.append({**row, "source": get_model_entry(name).source, "presets": preset_sizes(name, row)})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    table = Table(title="cnnlstm models", caption="params and forward MFLOPs per 28x28 image. A model's first row "
                  "is its builder's defaults; the rows under it are the training presets that build it at "
                  "another size (what `cnnlstm train MODEL --preset P` and the studies train)")
    for col, just in (("name", "left"), ("params", "right"), ("MFLOPs", "right"), ("description", "left")):
        table.add_column(col, justify=just)
    for row in rows:
        source = f" (from {row['source']})" if row["source"] else ""
        table.add_row(row["name"], f"{row['params']:,}", f"{row['mflops']:.2f}",
                      f"{row['description']}{source}")
        for preset, size in row["presets"].items():
            args = ", ".join(f"{k}={v}" for k, v in size["model_args"].items())
            table.add_row(f"  --preset {preset}", f"{size['params']:,}", f"{size['mflops']:.2f}",
                          f"the {preset} preset's model_args: {args}")
    Console().print(table)
    return 0


def preset_sizes(name: str, defaults: dict) -> dict[str, dict]:
    """The shipped presets whose ``model_args`` build ``name`` at another size than ``defaults``.

    Parameters
    ----------
    name : str
        A registered model.
    defaults : dict
        Its :func:`cnnlstm.models.model_summary` with the builder's defaults.

    Returns
    -------
    dict
        ``{preset: {"params", "mflops", "model_args"}}``, in preset order; presets that leave the
        size alone (no model_args, or only a dropout rate) are left out.
    """
    from cnnlstm.config import load_preset, preset_names
    from cnnlstm.models import model_summary

    sizes = {}
    for preset in preset_names():
        model_args = load_preset(preset, name).get("model_args") or {}
        if not model_args:
            continue
        row = model_summary(name, **model_args)
        if (row["params"], row["mflops"]) != (defaults["params"], defaults["mflops"]):
            sizes[preset] = {"params": row["params"], "mflops": row["mflops"], "model_args": model_args}
    return sizes
