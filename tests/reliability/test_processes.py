"""Reliability and security: bad input, faults and untrusted files never lose work or run foreign code.

Covers training, checkpoints, configs and the CLI (image/predict fuzzing and IDX fuzzing live in
their own test files). Each test names the fault it injects and checks what must survive it:

- crafted and damaged checkpoints are refused with one clear line and never run their code;
- bad config files and user errors give one stderr line and exit 2 (a traceback only with --debug);
- SIGKILL at random points (mid-epoch, mid-checkpoint-write) never corrupts a file, loses at most
  one epoch, and ``--resume`` ends bit-identical to an uninterrupted run;
- SIGINT/SIGTERM save, say how to resume, and exit 130/143;
- a full disk keeps the previous file and leaves no temp file; two processes never share a run.

The SIGKILL and lock tests fork their training processes from a "zygote": a helper process that
imports cnnlstm and torch once, then forks one child per run, each of which runs the real CLI
(``cnnlstm.cli.main``) exactly as ``python -m cnnlstm`` does. That saves the 3-6 s torch import
per run on the 2-core CI machine, so the tests can afford many kills. The SIGINT/SIGTERM test and
the lock test's second process use real ``python -m cnnlstm`` processes.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import (
    PY,
    RANDOM_ARGS,
    assert_one_line_error,
    assert_same_weights,
    cli,
    reference_weights,
    saved_config,
    strip_seconds,
    subprocess_env,
    temp_files,
    train_args,
    wait_for,
)

from cnnlstm.fileio import read_history, read_json
from cnnlstm.runs import load_checkpoint

# --------------------------------------------------------------------------- real processes


ZYGOTE = r'''
"""Import cnnlstm once, then fork one child per request that runs the real CLI (see the test)."""
import json, os, sys, time, traceback
import cnnlstm.cli, cnnlstm.cli.train_cmd, cnnlstm.study.experiment, cnnlstm.training.loop  # the slow imports
import torch._dynamo  # what building an optimizer imports (3 s); importing starts no threads

def slow_fsync(real, delay):
    """A slow disk: fsync of a temp file takes `delay` s, so a kill can land inside a write."""
    def fsync(fd):
        try:
            slow = os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp")
        except OSError:
            slow = False
        if slow:
            time.sleep(delay)
        return real(fd)
    return fsync

def child(job):
    try:
        os.environ.update(job["env"])
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        if job.get("slow_fsync"):
            os.fsync = slow_fsync(os.fsync, job["slow_fsync"])
        code = cnnlstm.cli.main(job["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    if job["op"] == "run":
        pid = os.fork()
        if pid == 0:
            child(job)
        print(pid, flush=True)
    else:  # "wait"
        _, status = os.waitpid(job["pid"], 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
'''


class Zygote:
    """Drives the ZYGOTE process: ``start(argv)`` -> pid of a child running ``cnnlstm ARGV``."""

    def __init__(self, folder: Path):
        script = folder / "zygote.py"
        script.write_text(ZYGOTE)
        self.folder = folder
        self.proc = subprocess.Popen([PY, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=subprocess_env())
        self._buf = b""
        assert self._readline(timeout=180) == "ready"

    def _readline(self, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise AssertionError(f"zygote silent for {timeout} s")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"zygote exited ({self.proc.poll()})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def _send(self, job: dict) -> str:
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        return self._readline()

    def start(self, argv, log: Path, slow_fsync: float = 0.0) -> int:
        env = {"XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]}
        return int(self._send({"op": "run", "argv": [str(a) for a in argv], "log": str(log), "env": env,
                               "slow_fsync": slow_fsync}))

    def wait(self, pid: int) -> int:
        return int(self._send({"op": "wait", "pid": pid}))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


def lock_taken_by(run: Path, pid: int) -> bool:
    try:
        return (run / ".lock").read_text().strip() == str(pid)
    except OSError:
        return False


def checkpoint_epoch(run: Path) -> int:
    path = run / "checkpoint.pt"
    return load_checkpoint(path)["train_state"]["epoch"] if path.exists() else 0


def history_epoch(run: Path) -> int:
    rows = read_history(run / "history.csv")
    return rows[-1]["epoch"] if rows else 0


KILL_EPOCHS = 6
# (mode, file): "delay" waits for the child's next checkpoint, then kills after a seeded-random
# delay (mid-epoch, or inside the next epoch's writes); "write" kills the moment a temp file of
# `file` -- or, if the epoch writes no such file, of checkpoint.pt -- appears, i.e. inside
# atomic_write before its rename, with the new file half-written or not yet synced.
KILL_PLAN = [("delay", None), ("write", "best.pt"), ("delay", None), ("write", "checkpoint.pt"),
             ("delay", None), ("write", "history.csv"), ("delay", None), ("write", "checkpoint.pt")]
SLOW_FSYNC = 0.08  # seconds per temp-file fsync in the children: a slow disk widens the write window


def running(pid: int) -> bool:
    """True while ``pid`` runs (a finished child waiting to be reaped counts as not running)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino  # every atomic replace makes a new inode
    except OSError:
        return None


def temps_of(run: Path, pid: int, names) -> list[str]:
    with os.scandir(run) as entries:
        return [e.name for e in entries if e.name.endswith(".tmp") and f".{pid}." in e.name
                and any(e.name.startswith(f".{n}.") for n in names)]


def _kill_once(zygote: Zygote, argv, run: Path, log: Path, mode: str, name, rng: random.Random) -> dict:
    """Start one child, SIGKILL it as ``mode`` says, and report what the run folder holds after."""
    before = checkpoint_epoch(run)
    old = inode(run / "checkpoint.pt")
    pid = zygote.start(argv, log, slow_fsync=SLOW_FSYNC)
    wait_for(lambda: lock_taken_by(run, pid) or not running(pid), what=f"child {pid} to take the lock")
    if mode == "delay":
        wait_for(lambda: inode(run / "checkpoint.pt") != old or not running(pid), what="a new checkpoint")
        time.sleep(rng.uniform(0.0, 0.3))
    else:  # a child that gets past its last write ends without one: then there is nothing to kill
        wait_for(lambda: temps_of(run, pid, {name, "checkpoint.pt"}) or not running(pid),
                 what=f"a temp file of {name}")
    os.kill(pid, signal.SIGKILL)
    rc = zygote.wait(pid)
    return {"mode": mode if mode == "delay" else f"write {name}", "rc": rc, "before": before,
            "after": checkpoint_epoch(run), "history": history_epoch(run),
            "in_write": temps_of(run, pid, {"checkpoint.pt", "best.pt", "history.csv", "config.json"})}


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_bit_identical(zygote, tiny_data_dir, tmp_path):
    """8 SIGKILLs of a real training process at seeded-random moments and inside file writes:
    every file stays loadable, at most one epoch is lost per kill, no lock goes stale, and the
    resumed run ends bit-identical to one never interrupted."""
    run = tmp_path / "run"
    argv = train_args(tiny_data_dir, run, KILL_EPOCHS, *RANDOM_ARGS)
    rng = random.Random(7)
    kills = []
    for i, (mode, arg) in enumerate(KILL_PLAN):
        resume = ["train", "--resume", run, "--quiet"]
        k = _kill_once(zygote, argv if not (run / "config.json").exists() else resume, run,
                       tmp_path / f"kill{i}.log", mode, arg, rng)
        kills.append(k)
        assert k["rc"] in (-signal.SIGKILL, 0), (k, (tmp_path / f"kill{i}.log").read_text())
        # nothing is ever corrupted: every file the run folder holds still loads
        if (run / "best.pt").exists():
            load_checkpoint(run / "best.pt")
        saved_config(run)
        assert k["after"] >= k["before"], k  # the checkpoint never goes back
        assert k["after"] >= k["history"] - 1, k  # at most one completed epoch lost
        if k["rc"] == 0:  # the run got to the end before the kill: nothing left to interrupt
            break
    report = "\n".join(f"{k['mode']:<20} rc {k['rc']:>3}  checkpoint epoch {k['before']} -> {k['after']}  "
                       f"history {k['history']}  killed inside the write of {k['in_write'] or '-'}"
                       for k in kills)
    print("\nSIGKILL log\n" + report)
    killed = [k for k in kills if k["rc"] == -signal.SIGKILL]
    assert len(killed) >= 6, report
    assert sum(bool(k["in_write"]) for k in killed) >= 3, report  # some kills landed inside a write
    assert any(k["after"] > k["before"] for k in killed), report  # and the run made progress
    rc = zygote.wait(zygote.start(["train", "--resume", run, "--quiet"], tmp_path / "final.log"))
    assert rc == 0, (tmp_path / "final.log").read_text()
    assert temp_files(run) == []  # the resume cleared what the killed writers left
    weights, history = reference_weights(run, tmp_path / "ref", tiny_data_dir)
    assert_same_weights(load_checkpoint(run / "checkpoint.pt")["model"], weights)
    assert strip_seconds(read_history(run / "history.csv")) == strip_seconds(history)
    assert read_json(run / "metrics.json")["epochs_trained"] == KILL_EPOCHS


@pytest.mark.slow
def test_second_process_on_the_same_run_is_refused_and_a_killed_holder_leaves_no_lock(
        zygote, tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    first = zygote.start(train_args(tiny_data_dir, run, 200, "--no-eval"), tmp_path / "first.log")
    wait_for(lambda: lock_taken_by(run, first) and (run / "checkpoint.pt").exists(),
             what="the first process to be training")
    os.kill(first, signal.SIGSTOP)  # hold it mid-training, lock held, while others try the folder
    refusal = f"{run} is in use by another cnnlstm process (pid {first})"
    try:
        # a real `python -m cnnlstm` resuming it, and a forked CLI starting a new run into it
        real = subprocess.Popen([PY, "-m", "cnnlstm", "train", "--resume", str(run), "--quiet"],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                env=subprocess_env())
        fresh = zygote.start(train_args(tiny_data_dir, run, 2, "--no-eval"), tmp_path / "fresh.log")
        assert_one_line_error(zygote.wait(fresh), (tmp_path / "fresh.log").read_text(), "train", refusal)
        err = real.communicate(timeout=120)[1]
        assert_one_line_error(real.returncode, err, "train", refusal)
    finally:
        os.kill(first, signal.SIGKILL)
    assert zygote.wait(first) == -signal.SIGKILL
    assert lock_taken_by(run, first)  # its pid is still in .lock, but the kernel dropped the flock
    epoch = checkpoint_epoch(run)
    # the next --resume takes the lock and trains on (stopped with SIGTERM once it has progressed)
    pid = zygote.start(["train", "--resume", run, "--quiet", "--no-eval"], tmp_path / "resume.log")
    wait_for(lambda: checkpoint_epoch(run) > epoch or not running(pid), interval=0.05,
             what="the resumed run to train")
    os.kill(pid, signal.SIGTERM)
    rc = zygote.wait(pid)
    log = (tmp_path / "resume.log").read_text()
    assert rc == 143 and f"resume with: cnnlstm train --resume {run}" in log, log
    assert checkpoint_epoch(run) > epoch


SIGNALS = {"SIGINT": ((signal.SIGINT,), 130), "SIGTERM": ((signal.SIGTERM,), 143),
           "double SIGINT": ((signal.SIGINT, signal.SIGINT), 130)}


@pytest.mark.slow
def test_sigint_and_sigterm_save_say_how_to_resume_and_resume_exactly(zygote, tiny_data_dir, tmp_path, capsys):
    """Real ``python -m cnnlstm train`` processes get SIGINT / SIGTERM mid-training (after epoch 1
    was saved); a forked one gets two SIGINTs 2 ms apart (the second means "stop now")."""
    epochs = 16
    argv = {name: train_args(tiny_data_dir, tmp_path / name, epochs, "--no-eval", *RANDOM_ARGS) for name in SIGNALS}
    procs = {name: subprocess.Popen([PY, "-m", "cnnlstm", *argv[name]], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=subprocess_env())
             for name in ("SIGINT", "SIGTERM")}
    double = zygote.start(argv["double SIGINT"], tmp_path / "double.log")
    pids = {**{name: p.pid for name, p in procs.items()}, "double SIGINT": double}
    pending = set(SIGNALS)
    deadline = time.monotonic() + 180
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            if (tmp_path / name / "checkpoint.pt").exists() or not running(pids[name]):
                for i, sig in enumerate(SIGNALS[name][0]):
                    time.sleep(0.002 * i)
                    os.kill(pids[name], sig)
                pending.discard(name)
        time.sleep(0.001)
    results = {name: (p.communicate(timeout=120)[1], p.returncode) for name, p in procs.items()}
    results["double SIGINT"] = (None, zygote.wait(double))
    results["double SIGINT"] = ((tmp_path / "double.log").read_text(), results["double SIGINT"][1])
    ref = None
    for name, (err, rc) in results.items():
        run = tmp_path / name
        assert rc == SIGNALS[name][1], (name, rc, err)
        assert "Traceback" not in err, err
        assert f"resume with: cnnlstm train --resume {run}" in err, err
        ckpt = load_checkpoint(run / "checkpoint.pt")
        assert 1 <= ckpt["train_state"]["epoch"] < epochs, name
        if name != "double SIGINT":  # (a second Ctrl-C may cut a write short: the next run cleans up)
            assert temp_files(run) == []
        rc, _, err = cli(["train", "--resume", run, "--quiet", "--no-eval"], capsys)
        assert rc == 0, err
        assert temp_files(run) == []
        if ref is None:
            ref = reference_weights(run, tmp_path / "ref", tiny_data_dir)
        assert_same_weights(load_checkpoint(run / "checkpoint.pt")["model"], ref[0])
        assert strip_seconds(read_history(run / "history.csv")) == strip_seconds(ref[1])
