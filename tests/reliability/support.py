"""Helpers shared by the reliability tests: running the CLI in-process, one-line error checks, waiting."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

import cnnlstm
from cnnlstm.cli import main
from cnnlstm.config import TrainConfig, from_dict
from cnnlstm.data import load_dataset
from cnnlstm.fileio import read_history, read_json
from cnnlstm.runs import load_checkpoint
from cnnlstm.study.experiment import train_run

SRC = Path(cnnlstm.__file__).resolve().parents[1]
PY = sys.executable


# --------------------------------------------------------------------------- helpers


def train_args(data_dir, out, epochs=4, *extra) -> list[str]:
    """``cnnlstm train model1`` on the tiny synthetic data, one CPU thread, quiet."""
    return ["train", "model1", "--data-dir", str(data_dir), "--no-verify", "--device", "cpu",
            "--threads", "1", "--epochs", str(epochs), "--batch-size", "16", "--val-size", "40",
            "--out", str(out), "--quiet", *map(str, extra)]


# Dropout and flips make every step draw random numbers, so an exact resume needs the RNG states.
RANDOM_ARGS = ("--flip-h", "0.5", "--set", "model_args.dropout=0.2")


def cli(argv, capsys) -> tuple[int, str, str]:
    """Run ``cnnlstm ARGV`` in this process; return (exit code, stdout, stderr)."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors, and `train` after a signal
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, command: str, *words: str) -> str:
    """Exit 2 and exactly one stderr line ``cnnlstm COMMAND: error: ...`` holding ``words``."""
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cnnlstm {command}: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).rglob("*.tmp"))


def subprocess_env() -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    env.pop("CNNLSTM_DATA", None)
    return env


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.002, what: str = "condition"):
    """Poll ``predicate`` until it returns a true value (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def saved_config(run: Path) -> TrainConfig:
    return from_dict(TrainConfig, read_json(run / "config.json"))


def reference_weights(run: Path, ref: Path, data_dir: Path) -> tuple[dict, list[dict]]:
    """Weights and history of an uninterrupted run with ``run``'s saved config (in this process)."""
    cfg = saved_config(run)
    train_run(cfg, ref, load_dataset(data_dir, verify=False), evaluate=False)
    return load_checkpoint(ref / "checkpoint.pt")["model"], read_history(ref / "history.csv")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def strip_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
