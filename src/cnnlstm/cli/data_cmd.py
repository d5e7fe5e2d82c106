"""``cnnlstm data``: where the dataset comes from, its counts, class balance and checksum status."""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from cnnlstm.cli import add_command
from cnnlstm.cli.common import add_data_flags, load_data_for_cli


def add_parser(sub) -> None:
    p = add_command(
        sub, "data", help="find, verify and describe the dataset",
        description="Find Fashion-MNIST (--data-dir, $CNNLSTM_DATA, the user cache, Debian's "
                    "/usr/share/datasets/fashion-mnist, else download), verify the SHA-256 of the "
                    "decompressed files, and print the source, per-split counts and class balance.",
        examples="  cnnlstm data\n  cnnlstm data --no-download\n"
                 "  cnnlstm data --data-dir ~/mnist --no-verify   # another IDX dataset of the same layout\n")
    add_data_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    ds = load_data_for_cli(args)
    console = Console()
    console.print(f"source: {ds.source}")
    status = "verified (SHA-256 of the decompressed files match Fashion-MNIST)" if ds.verified else "NOT verified"
    console.print(f"checksums: {status}")
    console.print(f"image size: {ds.train_images.shape[1]}x{ds.train_images.shape[2]}, "
                  f"train {len(ds.train_labels):,}, test {len(ds.test_labels):,}")
    table = Table(title="class distribution")
    table.add_column("label", justify="right")
    table.add_column("name")
    table.add_column("train", justify="right")
    table.add_column("test", justify="right")
    train = np.bincount(ds.train_labels, minlength=ds.num_classes)
    test = np.bincount(ds.test_labels, minlength=ds.num_classes)
    for i, name in enumerate(ds.classes):
        table.add_row(str(i), name, f"{train[i]:,}", f"{test[i]:,}")
    console.print(table)
    return 0
