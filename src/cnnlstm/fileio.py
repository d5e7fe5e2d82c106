"""The one atomic file writer, and SHA-256 of bytes: the lowest level every writer builds on.

The data cache (:mod:`cnnlstm.data`), run folders (:mod:`cnnlstm.runs`), figures, reports and
exports all write through :func:`atomic_write`, so no reader ever sees half a file.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
from contextlib import suppress
from pathlib import Path

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
    leaves only its temp file, which :func:`cnnlstm.runs.run_lock` removes later.

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
