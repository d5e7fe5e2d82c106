"""A full disk, or an interrupt mid-write, keeps the previous file and leaves no temp file behind.

See tests/reliability/test_processes.py for what real processes killed mid-run must keep."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from support import (
    assert_one_line_error,
    assert_same_weights,
    cli,
    reference_weights,
    strip_seconds,
    temp_files,
    train_args,
)

from cnnlstm import fileio, runs
from cnnlstm.errors import RunError
from cnnlstm.fileio import read_history
from cnnlstm.runs import load_checkpoint

# --------------------------------------------------------------------------- disk full


class WriteFault:
    """Make :func:`runs.atomic_write` of files named ``target`` fail with ``errnum`` at ``stage``
    (create the temp file | write | fsync | rename), from write number ``after + 1`` on."""

    def __init__(self, monkeypatch, target: str, stage: str, after: int = 0, errnum: int = errno.ENOSPC):
        self.target, self.stage, self.after, self.errnum = target, stage, after, errnum
        self.writes = 0  # atomic_write calls for target so far
        self.fired = 0
        self.armed = True
        real_open, real_fdopen, real_fsync, real_replace = os.open, os.fdopen, os.fsync, os.replace

        def open_(path, flags, *args, **kw):
            name = os.path.basename(path)
            if name.startswith(f".{target}.") and name.endswith(".tmp"):
                self.writes += 1
                self._maybe_fail("create")
            return real_open(path, flags, *args, **kw)

        def fdopen(fd, *args, **kw):
            f = real_fdopen(fd, *args, **kw)
            return _HalfWriter(f, self) if self._is_target_fd(fd) else f

        def fsync(fd):
            if self._is_target_fd(fd):
                self._maybe_fail("fsync")
            return real_fsync(fd)

        def replace(src, dst, *args, **kw):
            if Path(dst).name == target:
                self._maybe_fail("replace")
            return real_replace(src, dst, *args, **kw)

        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "fdopen", fdopen)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

    def _is_target_fd(self, fd: int) -> bool:
        try:
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return False
        return name.startswith(f".{self.target}.") and name.endswith(".tmp")

    def _maybe_fail(self, stage: str) -> None:
        if self.armed and stage == self.stage and self.writes > self.after:
            self.fired += 1
            raise OSError(self.errnum, os.strerror(self.errnum))


class _HalfWriter:
    """A file whose write puts half the bytes on disk, then fails (as ENOSPC does mid-write)."""

    def __init__(self, f, fault: WriteFault):
        self.f, self.fault = f, fault

    def write(self, data):
        if self.fault.armed and self.fault.stage == "write" and self.fault.writes > self.fault.after:
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            self.fault._maybe_fail("write")
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
        return False


@pytest.mark.parametrize("target,stage", [("checkpoint.pt", "create"), ("checkpoint.pt", "write"),
                                          ("checkpoint.pt", "fsync"), ("checkpoint.pt", "replace"),
                                          ("history.csv", "write"), ("best.pt", "fsync")])
def test_disk_full_during_training_keeps_previous_files(tiny_data_dir, tmp_path, capsys, monkeypatch,
                                                        target, stage):
    run = tmp_path / "r"
    fault = WriteFault(monkeypatch, target, stage, after=1)  # the 1st write fits, then the disk is full
    rc, _, err = cli(train_args(tiny_data_dir, run, 3, "--no-eval"), capsys)
    assert fault.fired == 1
    assert_one_line_error(rc, err, "train", f"could not write {run / target} (disk full)",
                          "the previous version is intact")
    assert temp_files(run) == []
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["train_state"]["epoch"] == 1  # epoch 2's save failed: epoch 1 is what is kept
    load_checkpoint(run / "best.pt")
    assert read_history(run / "history.csv")[0]["epoch"] == 1

    fault.armed = False  # space freed: the resumed run ends where an uninterrupted one does
    rc, _, err = cli(["train", "--resume", run, "--quiet", "--no-eval"], capsys)
    assert rc == 0, err
    weights, history = reference_weights(run, tmp_path / "ref", tiny_data_dir)
    assert_same_weights(load_checkpoint(run / "checkpoint.pt")["model"], weights)
    assert strip_seconds(read_history(run / "history.csv")) == strip_seconds(history)


def test_disk_full_during_report_json_write_keeps_previous(done_run, capsys, monkeypatch):
    before = (done_run / "metrics.json").read_bytes()
    fault = WriteFault(monkeypatch, "metrics.json", "fsync")
    rc, _, err = cli(["train", "--resume", done_run, "--quiet"], capsys)  # nothing to train: re-evaluates
    assert fault.fired == 1
    assert_one_line_error(rc, err, "train", "metrics.json (disk full)", "the previous version is intact")
    assert (done_run / "metrics.json").read_bytes() == before
    assert temp_files(done_run) == []


def test_disk_full_before_anything_was_written(tiny_data_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    fault = WriteFault(monkeypatch, "config.json", "write")
    rc, _, err = cli(train_args(tiny_data_dir, run, 1), capsys)
    line = assert_one_line_error(rc, err, "train", "config.json (disk full)")
    assert "intact" not in line  # there was no previous version to keep
    assert temp_files(run) == [] and not (run / "config.json").exists()
    fault.armed = False
    rc, _, err = cli(train_args(tiny_data_dir, run, 1, "--no-eval"), capsys)  # the same --out works now
    assert rc == 0, err


@pytest.mark.parametrize("errnum,words", [(errno.EROFS, "Read-only file system"),
                                          (errno.EDQUOT, "disk full"), (errno.EIO, "Input/output error")])
def test_atomic_write_names_the_reason(tmp_path, monkeypatch, errnum, words):
    path = tmp_path / "x.json"
    fileio.write_json(path, {"a": 1})
    WriteFault(monkeypatch, "x.json", "fsync", errnum=errnum)
    with pytest.raises(RunError, match=f"could not write .*x.json \\({words}\\); the previous version is intact"):
        fileio.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1} and temp_files(tmp_path) == []


def test_interrupt_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    runs.atomic_write(path, b"old")
    real = os.fsync

    def ctrl_c(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        runs.atomic_write(path, b"new")
    monkeypatch.setattr(os, "fsync", real)
    assert path.read_bytes() == b"old" and temp_files(tmp_path) == []


def test_damaged_history_is_a_run_error(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,train_loss\n1,0.5\n2,zero\n")
    with pytest.raises(RunError, match="damaged history .*line 3"):
        read_history(path)


def test_stale_temp_files_of_dead_writers_are_removed_under_the_lock(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".checkpoint.pt.{dead.pid}.abc123.tmp"
    live = tmp_path / f".checkpoint.pt.{os.getpid()}.def456.tmp"
    other = tmp_path / ".notes.tmp"  # not an atomic_write temp file: left alone
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    with fileio.run_lock(tmp_path):
        assert not stale.exists() and live.exists() and other.exists()
