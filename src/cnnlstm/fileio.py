"""The one atomic file writer, SHA-256 of bytes, the file formats written with it (JSON, ``.npz``,
``.npy``, ``history.csv``) and the folder lock: the lowest level every writer builds on.

The data cache (:mod:`cnnlstm.data`), run folders (:mod:`cnnlstm.runs`), figures, reports and
exports all write through :func:`atomic_write`, so no reader ever sees half a file.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import secrets
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # numpy is imported by the array writers that need it
    import numpy as np

from cnnlstm.errors import RunError

log = logging.getLogger(__name__)

# atomic_write's temp files: ".<name>.<writer pid>.<8 hex digits>.tmp" (the pid tells a dead
# writer's leftovers from a live one's)
TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write bytes via temp file + fsync + rename, then fsync the folder.

    Readers, and a run resumed after a crash, see either the old file or the new one, never a
    mix: the rename is atomic, and the data is on disk before it. A writer killed mid-write
    leaves only its temp file, which :func:`cnnlstm.fileio.run_lock` removes later.

    Raises
    ------
    RunError
        When the disk is full or not writable; the previous file at ``path`` is left intact and
        no temp file is left behind.
    """
    path = Path(path)
    # named before it exists, so an interrupt at any point can still remove it; new files get
    # 0o666 less the umask, like any other file the user creates (mkstemp would make them 0o600)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
        previous = "; the previous version is intact" if path.is_file() else ""
        raise RunError(f"could not write {path} ({reason}){previous}") from exc
    except BaseException:  # KeyboardInterrupt mid-write: the old file stays, the temp goes
        _discard(tmp)
        raise
    _fsync_dir(path.parent)


def _discard(tmp: Path) -> None:
    with suppress(OSError):  # already renamed, never created, or the folder is gone
        os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power cut (best effort: the file is already whole)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on folders; the data itself is synced
        log.debug("fsync of folder %s failed: %s", folder, exc)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- JSON, arrays, history

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` of ``arrays``, written atomically (e.g. ``predictions.npz``)."""
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, buf.getvalue())


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` of one array (no pickles), written atomically (e.g. ``embedding.npy``)."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write(path, buf.getvalue())


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
    """``history.csv`` as a list of dicts of floats (``epoch`` as int; blanks as None).

    Raises
    ------
    RunError
        When the file is unreadable or a row is not numbers (the message names the line).
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rows.append({k: _parse_cell(k, v) for k, v in row.items()})
    except (OSError, ValueError, TypeError, csv.Error) as exc:
        line = len(rows) + 2  # the header is line 1
        raise RunError(f"{path}: damaged history (line {line}: {exc})") from exc
    return rows


def _parse_cell(key: str | None, value: str | None) -> float | int | None:
    if key is None:  # more cells than header names
        raise ValueError("too many cells")
    if value in ("", None):
        return None
    return int(value) if key == "epoch" else float(value)


# --------------------------------------------------------------------------- locking


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` so two processes never write one run folder.

    The lock is ``fcntl.flock`` on ``run_dir/.lock``: the kernel releases it when the process
    dies, so a killed run never leaves a stale lock behind. Once it is held, temp files that
    killed writers left in the folder are removed.

    Raises
    ------
    RunError
        When another process holds the lock, or ``run_dir`` cannot be a folder (a file is in the
        way, no permission, disk full).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} exists and is not a folder; choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunError(f"{run_dir}: cannot use it as a run folder ({exc.strerror or exc})") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunError(f"{run_dir} is in use by another cnnlstm process (pid {holder})") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_stale_temp_files(run_dir)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def remove_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """Delete the temp files of writers that died mid-write (SIGKILL, power cut); return them.

    Only files named like :func:`atomic_write`'s temp files whose writer process is gone are
    removed, so a live writer's file is never touched.
    """
    removed = []
    for path in Path(run_dir).glob(".*.tmp"):
        match = TEMP_FILE.match(path.name)
        if match and not _process_alive(int(match["pid"])):
            with suppress(OSError):
                path.unlink()
                removed.append(path)
    if removed:
        log.info("removed %d temp file(s) left by an interrupted writer in %s", len(removed), run_dir)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
