"""``cnnlstm data``: where the dataset comes from, its counts, class balance and checksum status."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import numpy as np
from rich.console import Console
from rich.table import Table

from cnnlstm.cli import add_command
from cnnlstm.cli.common import add_data_flags, load_data_for_cli
from cnnlstm.data.sources import IDX_FAMILIES, candidate_dirs

#: Where an IDX dataset's folder was found, in words (the labels of ``candidate_dirs``).
FOUND_IN = {"--data-dir": "named by --data-dir", "$CNNLSTM_DATA": "named by $CNNLSTM_DATA",
            "cache": "the user cache, where downloads go", "debian": "Debian's dataset-fashion-mnist package"}


def add_parser(sub) -> None:
    p = add_command(
        sub, "data", help="find, verify and describe the dataset",
        description="Find Fashion-MNIST (--data-dir, $CNNLSTM_DATA, the user cache, Debian's "
                    "/usr/share/datasets/fashion-mnist, else download), verify the SHA-256 of the "
                    "decompressed files, and print the source, per-split counts and class balance.",
        examples="  cnnlstm data\n  cnnlstm data --no-download\n"
                 "  cnnlstm data --data-dir ~/mnist --no-verify   # another IDX dataset of the same layout\n"
                 "  cnnlstm data --data mnist --data-dir ~/mnist   # digit MNIST, checked against its MD5s\n"
                 "  cnnlstm data --data ~/pets --image-size 32     # a folder of class folders, resized to 32x32\n"
                 "  cnnlstm data --data arrays.npz                 # x_train, y_train, x_test, y_test\n")
    add_data_flags(p)
    p.set_defaults(func=run)


@contextmanager
def without_loading_line():
    """Drop the loader's own "loading X from FOLDER (label)" log line: this command prints the
    source itself, once, in words."""
    logger = logging.getLogger("cnnlstm.data.sources")

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("loading ")

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def describe_source(ds, data_dir) -> str:
    """``/usr/share/datasets/fashion-mnist (Debian's ... package; decoded arrays read from the array cache)``."""
    folder = ds.source.removesuffix(" (cache)")
    notes = []
    if ds.name in IDX_FAMILIES:
        labels = {str(path): label for label, path in candidate_dirs(data_dir, IDX_FAMILIES[ds.name])}
        if folder in labels:
            notes.append(FOUND_IN.get(labels[folder], labels[folder]))
    if ds.source.endswith(" (cache)"):
        notes.append("decoded arrays read from the array cache")
    return folder + (f" ({'; '.join(notes)})" if notes else "")


def run(args) -> int:
    from cnnlstm.data.synthetic import is_synthetic

    with without_loading_line():
        ds = load_data_for_cli(args)
    console = Console()
    console.print(f"dataset: {ds.name}")
    console.print(f"source: {describe_source(ds, args.data_dir)}")
    if is_synthetic(ds.name):
        status = "none published (generated here from fixed seeds); the arrays' SHA-256 below identifies it"
    elif ds.name not in IDX_FAMILIES:
        status = "none published (a folder or .npz of your own); the arrays' SHA-256 below identifies it"
    else:
        status = f"verified (the published checksums of {ds.name} match)" if ds.verified else "NOT verified"
    console.print(f"checksums: {status}")
    console.print(f"arrays: SHA-256 {ds.checksum[:16]}..., recorded by every run trained on them")
    console.print(f"images: {ds.image_size}x{ds.image_size}, {'RGB' if ds.channels == 3 else 'greyscale'}, "
                  f"train {len(ds.train_labels):,}, test {len(ds.test_labels):,}"
                  + (f" ({ds.split})" if ds.split else ""))
    console.print(f"normalisation (train split): mean {', '.join(f'{m:.4f}' for m in ds.norm.mean)}; "
                  f"std {', '.join(f'{s:.4f}' for s in ds.norm.std)}")
    console.print(f"horizontal flips {'keep' if ds.flip_preserves_labels else 'change'} the labels")
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
