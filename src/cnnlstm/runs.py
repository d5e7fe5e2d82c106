"""The run folder contract: atomic writes, safe checkpoint loading, history, locking.

A run folder holds ``config.json``, ``history.csv``, ``checkpoint.pt`` (last state, for exact
resume), ``best.pt`` (best validation weights), ``metrics.json``, ``predictions.npz``,
``figures/`` and the reports. Every file is written through a temp file and a rename, so a crash
or a full disk never leaves half a file where a whole one was.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import pickle
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from cnnlstm.errors import RunError

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
CHECKPOINT_FORMAT = 1


def default_run_dir(model: str, root: str | Path = "runs") -> Path:
    """``runs/<model>-<YYYYmmdd-HHMMSS>`` (a suffix is added if that name exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{model}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / f"{model}-{stamp}-{n}"
    return path


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write bytes via temp file + fsync + rename.

    Raises
    ------
    RunError
        When the disk is full or not writable; the previous file at ``path`` is left intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        previous = "; the previous version is intact" if path.exists() else ""
        raise RunError(f"could not write {path} ({reason}){previous}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunError(f"{path} is missing") from exc
    except (OSError, ValueError) as exc:
        raise RunError(f"{path} is unreadable or not JSON ({exc})") from exc


def write_history(path: str | Path, rows: list[dict]) -> None:
    """Write the whole ``history.csv`` (rewritten atomically every epoch)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in HISTORY_FIELDS})
    atomic_write(path, buf.getvalue().encode())


def _fmt(value: Any) -> Any:
    return "" if value is None else (f"{value:.6g}" if isinstance(value, float) else value)


def read_history(path: str | Path) -> list[dict]:
    """``history.csv`` as a list of dicts of floats (``epoch`` as int; blanks as None)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: (int(v) if k == "epoch" else float(v)) if v not in ("", None) else None
                         for k, v in row.items()})
    return rows


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save`` to memory, then an atomic write (a crash mid-write keeps the old file)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint safely: ``weights_only=True`` never runs code from the file.

    Raises
    ------
    RunError
        Missing, truncated, or a file whose pickle holds anything beyond tensors and plain
        containers (which could run code); the message says which.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} is missing")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RunError(f"{path}: refused to load: it holds objects other than tensors and plain data "
                       "(a crafted or foreign file; cnnlstm never unpickles code)") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise RunError(f"{path}: damaged or not a checkpoint ({str(exc).splitlines()[0]})") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise RunError(f"{path}: not a cnnlstm checkpoint")
    return state


# --------------------------------------------------------------------------- locking


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` so two processes never write one run folder.

    The lock is ``fcntl.flock`` on ``run_dir/.lock``: the kernel releases it when the process
    dies, so a killed run never leaves a stale lock behind.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunError(f"{run_dir} is in use by another cnnlstm process (pid {holder})") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


# --------------------------------------------------------------------------- reading runs


def load_run_config(run_dir: str | Path) -> dict:
    """``config.json`` of a run folder, with a clear error for a missing or empty folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    if not (run_dir / "config.json").exists():
        raise RunError(f"{run_dir}: not a run folder (config.json is missing)")
    return read_json(run_dir / "config.json")


def weights_path(run_dir: str | Path, which: str = "best") -> Path:
    """The checkpoint to evaluate: ``best.pt`` or ``checkpoint.pt`` (``which`` = best | last)."""
    run_dir = Path(run_dir)
    path = run_dir / ("best.pt" if which == "best" else "checkpoint.pt")
    if not path.exists():
        hint = " (the run was interrupted before its first epoch ended; resume it with cnnlstm train --resume)"
        raise RunError(f"{run_dir}: {path.name} is missing{hint}")
    return path
