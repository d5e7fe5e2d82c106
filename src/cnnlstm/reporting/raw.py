"""The raw numbers behind a study's report: ``results.csv`` and ``comparisons.csv``.

Every study folder (the plan's study, ``compare``, ``regimes``) writes both, so a reader can
recompute every interval the report prints:

- ``results.csv``, tidy: one row per run and metric (``study, model, seed, metric, value``) plus the
  cell's columns (``train_size, width, perturbation, level``) where a study has cells;
- ``comparisons.csv``: one row per comparison (``family, a, b, n, diff, low, high, p, p_adjusted,
  tost_p, margin, verdict, mde``), with ``diff``, ``low``, ``high``, ``margin`` and ``mde`` in
  accuracy points, plus the same cell columns naming which ``results.csv`` rows it compares.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from cnnlstm.fileio import atomic_write
from cnnlstm.measure.stats import Comparison

RESULTS_FILE = "results.csv"
COMPARISONS_FILE = "comparisons.csv"
CELL_FIELDS = ("train_size", "width", "perturbation", "level")
RESULT_FIELDS = ("study", "model", "seed", "metric", "value", *CELL_FIELDS)
COMPARISON_FIELDS = ("family", "a", "b", "metric", "n", "diff", "low", "high", "p", "p_adjusted", "tost_p", "margin",
                     "verdict", "mde", *CELL_FIELDS)
#: What a finished run contributes to results.csv (keys of metrics.json).
RUN_METRICS = ("accuracy", "f1_macro", "best_epoch", "epochs_trained", "n_train")


def run_rows(study: str, model: str, seed: int, metrics: dict, **cell) -> list[dict]:
    """A finished run's rows of ``results.csv``: its test accuracy, F1 and schedule (best epoch of how many)."""
    return [{"study": study, "model": model, "seed": seed, "metric": key, "value": metrics[key], **cell}
            for key in RUN_METRICS if metrics.get(key) is not None]


def comparison_row(c: Comparison, metric: str = "accuracy", **cell) -> dict:
    """One row of ``comparisons.csv`` (:meth:`cnnlstm.measure.stats.Comparison.row`) with its cell."""
    return {**c.row(), "metric": metric, **cell}


def _write_csv(path: Path, fields: tuple[str, ...], rows: Iterable[dict]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
    atomic_write(path, buf.getvalue().encode())
    return path


def write_raw_numbers(root: str | Path, results: Iterable[dict], comparisons: Iterable[dict]) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``comparisons.csv`` into the study folder ``root`` (atomically)."""
    root = Path(root)
    return (_write_csv(root / RESULTS_FILE, RESULT_FIELDS, results),
            _write_csv(root / COMPARISONS_FILE, COMPARISON_FIELDS, comparisons))


def read_csv(path: str | Path) -> list[dict]:
    """The rows of one of these files as dicts of strings (empty cells as "")."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
