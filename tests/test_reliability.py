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

import errno
import io
import json
import os
import pickle
import random
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cnnlstm
from cnnlstm import runs
from cnnlstm import train as T
from cnnlstm.cli import main
from cnnlstm.config import TrainConfig, from_dict, resolve_train_config
from cnnlstm.data import load_dataset
from cnnlstm.errors import RunError, UserError
from cnnlstm.experiment import evaluate_run, train_run
from cnnlstm.runs import load_checkpoint, read_history, read_json

from conftest import Stop, stop_after

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


@pytest.fixture
def half_run(tiny_data_dir, tmp_path) -> Path:
    """A run folder of 2 epochs that stopped after epoch 1 (so ``--resume`` has work to do)."""
    cfg = resolve_train_config("model1", overrides=dict(
        data_dir=str(tiny_data_dir), verify=False, device="cpu", threads=1, epochs=2, batch_size=16,
        val_size=40))
    run = tmp_path / "half"
    with pytest.raises(Stop):
        train_run(cfg, run, load_dataset(tiny_data_dir, verify=False), evaluate=False, on_epoch=stop_after(1))
    return run


@pytest.fixture
def done_run(tiny_data_dir, tmp_path) -> Path:
    """A finished 1-epoch run evaluated without figures: ``--resume`` only re-evaluates it."""
    cfg = resolve_train_config("model1", overrides=dict(
        data_dir=str(tiny_data_dir), verify=False, device="cpu", threads=1, epochs=1, batch_size=16,
        val_size=40))
    run = tmp_path / "done"
    ds = load_dataset(tiny_data_dir, verify=False)
    train_run(cfg, run, ds, evaluate=False)
    evaluate_run(run, ds, figures=False)
    return run


# --------------------------------------------------------------------------- untrusted checkpoints


class Payload:
    """Pickles as a call of ``fn(*args)``: what a malicious checkpoint would run on load."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payload(kind: str, marker: Path) -> Payload:
    """A pickle payload that leaves ``marker`` behind when it runs."""
    if kind == "os.system":
        return Payload(os.system, (f"touch {shlex.quote(str(marker))}",))
    if kind == "exec":
        return Payload(exec, (f"open({str(marker)!r}, 'w').write('pwned')",))
    return Payload(os.mkdir, (str(marker),))  # "os.mkdir"


def write_crafted(path: Path, kind: str, fmt: str, marker: Path) -> Path:
    """A checkpoint-shaped file whose pickle runs ``payload(kind)``, in torch's zip or legacy format
    or as a bare pickle."""
    state = {"format": 1, "model": {"w": torch.zeros(2)}, "config": payload(kind, marker)}
    if fmt == "zip":
        torch.save(state, path)
    elif fmt == "legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    else:  # a bare pickle, "pickle2" or "pickle5"
        path.write_bytes(pickle.dumps(state, protocol=int(fmt[-1])))
    return path


REFUSAL = {  # format -> what load_checkpoint says
    "zip": "refused to load: it asks for .*never unpickles code",
    "legacy": "refused to load: it asks for .*never unpickles code",
    "pickle2": "refused to load: it asks for .*never unpickles code",
    "pickle5": "damaged or not a checkpoint",  # its framing opcodes are refused before the call
}


@pytest.mark.parametrize("fmt", list(REFUSAL))
@pytest.mark.parametrize("kind", ["os.system", "exec", "os.mkdir"])
def test_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path, kind, fmt):
    # Control: the payload is live -- loading it the unsafe way does run it.
    control = tmp_path / "control-marker"
    try:
        torch.load(write_crafted(tmp_path / "control.pt", kind, fmt, control), weights_only=False)
    except Exception:  # noqa: BLE001 - a bare pickle is not a torch file, but it ran on the way
        pass
    assert control.exists(), "the crafted payload should run when loaded without weights_only"

    marker = tmp_path / "marker"
    path = write_crafted(tmp_path / "checkpoint.pt", kind, fmt, marker)
    with pytest.raises(RunError, match=REFUSAL[fmt]):
        load_checkpoint(path)
    assert not marker.exists(), "load_checkpoint ran code from the checkpoint"


def test_cli_resume_refuses_crafted_checkpoint(half_run, tmp_path, capsys):
    marker = tmp_path / "marker"
    write_crafted(half_run / "checkpoint.pt", "os.system", "zip", marker)
    rc, _, err = cli(["train", "--resume", half_run, "--quiet"], capsys)
    assert_one_line_error(rc, err, "train", "checkpoint.pt", "refused to load")
    assert not marker.exists()


def test_crafted_best_weights_are_refused_by_evaluation(done_run, tiny_data_dir, tmp_path, capsys):
    """``best.pt`` is read by evaluation: at the end of a (resumed) run, and by ``cnnlstm evaluate``."""
    marker = tmp_path / "marker"
    write_crafted(done_run / "best.pt", "exec", "zip", marker)
    with pytest.raises(RunError, match="refused to load"):
        evaluate_run(done_run, load_dataset(tiny_data_dir, verify=False), figures=False)
    rc, _, err = cli(["train", "--resume", done_run, "--quiet"], capsys)  # nothing to train: evaluates
    assert_one_line_error(rc, err, "train", "best.pt", "refused to load")
    assert not marker.exists()


def test_cli_evaluate_refuses_crafted_checkpoint(done_run, tmp_path, capsys):
    pytest.importorskip("cnnlstm.cli.evaluate_cmd", reason="no `cnnlstm evaluate` in this checkout")
    marker = tmp_path / "marker"
    write_crafted(done_run / "best.pt", "os.mkdir", "legacy", marker)
    rc, _, err = cli(["evaluate", done_run, "--quiet"], capsys)
    assert_one_line_error(rc, err, "evaluate", "refused to load")
    assert not marker.exists()


def _damage(run: Path, how: str) -> None:
    path = run / "checkpoint.pt"
    good = load_checkpoint(path)
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif how == "a JSON file":
        path.write_text('{"model": {}}')
    elif how == "a folder":
        path.unlink()
        path.mkdir()
    elif how == "a list":
        torch.save([1, 2, 3], path)
    elif how == "no model":
        torch.save({"optimizer": good["optimizer"]}, path)
    # The next four decode and carry a recorded SHA-256 (saved as cnnlstm saves), so what is checked
    # is the contents: a file from another version, not one damaged on disk.
    elif how == "no optimizer state":
        runs.save_checkpoint(path, {k: v for k, v in good.items() if k != "optimizer"})
    elif how == "bad train_state":
        runs.save_checkpoint(path, {**good, "train_state": {"epoch": 1, "bogus": 2}})
    elif how == "bad rng state":
        runs.save_checkpoint(path, {**good, "rng": {"augment": "x", "torch": torch.zeros(3)}})
    elif how == "another model's weights":
        other = resolve_train_config("model2", overrides=dict(device="cpu"))
        from cnnlstm.experiment import build_model

        runs.save_checkpoint(path, {**good, "model": build_model(other, 10, 28, torch.device("cpu")).state_dict()})


DAMAGE = {  # how -> words the one-line error must hold
    "truncated": "damaged or not a checkpoint",
    "empty": "damaged or not a checkpoint",
    "random bytes": "damaged or not a checkpoint",
    "a JSON file": "damaged or not a checkpoint",
    "a folder": "checkpoint.pt is missing",
    "a list": "not a cnnlstm checkpoint",
    "no model": "not a cnnlstm checkpoint",
    "no optimizer state": "incomplete or from another version",
    "bad train_state": "incomplete or from another version",
    "bad rng state": "incomplete or from another version",
    "another model's weights": "does not match",
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_cli_resume_from_a_damaged_checkpoint_is_one_line(half_run, capsys, how):
    _damage(half_run, how)
    rc, _, err = cli(["train", "--resume", half_run, "--quiet"], capsys)
    assert_one_line_error(rc, err, "train", DAMAGE[how])


def test_mutated_checkpoints_load_or_raise_run_error(tmp_path):
    """800 seeded mutations of a real checkpoint (truncations, bit flips, overwritten spans):
    each either loads as a dict holding "model" or raises RunError -- never another exception."""
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save({"format": 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "rng": {"torch": torch.get_rng_state()}, "train_state": {"epoch": 1}}, buf)
    good = buf.getvalue()
    rng = random.Random(20240601)
    path = tmp_path / "checkpoint.pt"
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(800):
        data = bytearray(good)
        how = rng.random()
        if how < 0.3:
            data = data[:rng.randrange(len(data))]
        elif how < 0.7:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        else:
            at, n = rng.randrange(len(data)), rng.randint(1, 64)
            data[at:at + n] = rng.randbytes(n)
        path.write_bytes(bytes(data))
        try:
            state = load_checkpoint(path)
        except RunError:
            outcomes["refused"] += 1
        else:
            assert isinstance(state, dict) and "model" in state
            outcomes["loaded"] += 1
    print(f"\nmutated checkpoints: {outcomes}")
    assert outcomes["refused"] > 200, outcomes


def flip_tensor_bit(path: Path, entry: str = "data/0", offset: int = 0) -> None:
    """Flip the lowest bit of byte ``offset`` of the raw tensor storage ``entry`` in a torch zip file.

    torch stores each storage uncompressed as ``<archive>/data/<key>``; the byte's position in the
    file is the entry's local header offset plus the 30-byte header, its name and its extra field.
    """
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(f"/{entry}"))
    data = bytearray(path.read_bytes())
    header = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[header + 26:header + 30])
    data[header + 30 + name_len + extra_len + offset] ^= 1
    path.write_bytes(bytes(data))


def test_a_bit_flip_inside_tensor_bytes_decodes_so_only_the_checksum_can_catch_it(done_run):
    """The control for the two tests below: the flipped file still loads without the digest."""
    path = done_run / "best.pt"
    before = torch.load(path, weights_only=True)["model"]
    flip_tensor_bit(path)
    after = torch.load(path, weights_only=True)["model"]  # no error: torch does not check its zip CRCs
    assert any(not torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(RunError, match=r"best.pt is damaged: SHA-256 mismatch"):
        load_checkpoint(path)


def test_cli_evaluate_refuses_best_weights_with_a_flipped_bit(done_run, capsys):
    flip_tensor_bit(done_run / "best.pt", offset=5)
    rc, _, err = cli(["evaluate", done_run, "--quiet"], capsys)
    assert_one_line_error(rc, err, "evaluate", "best.pt is damaged: SHA-256 mismatch")


def test_cli_resume_refuses_a_checkpoint_with_a_flipped_bit(half_run, capsys):
    before = (half_run / "history.csv").read_bytes()
    flip_tensor_bit(half_run / "checkpoint.pt")
    rc, _, err = cli(["train", "--resume", half_run, "--quiet"], capsys)
    assert_one_line_error(rc, err, "train", "checkpoint.pt is damaged: SHA-256 mismatch")
    assert (half_run / "history.csv").read_bytes() == before  # nothing trained on from damaged state


def test_run_folder_from_before_checksums_loads_with_a_warning(done_run, tiny_data_dir, caplog):
    (done_run / runs.CHECKSUMS).unlink()
    with caplog.at_level("WARNING", logger="cnnlstm.runs"):
        metrics = evaluate_run(done_run, load_dataset(tiny_data_dir, verify=False), figures=False)
    assert metrics["n_test"] == 50
    assert any("best.pt has no recorded SHA-256" in r.getMessage() for r in caplog.records)


def test_a_crash_between_recording_and_replacing_still_loads_only_whole_files(tmp_path):
    """save_checkpoint records the new digest first; if the replace never happens (a crash, a full
    disk) the whole old file must still load, while a damaged old file is never carried over."""
    path = tmp_path / "checkpoint.pt"
    runs.save_checkpoint(path, {"model": {"w": torch.zeros(4)}})
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.ones(4)}}, buf)
    runs.record_checksum(path, buf.getvalue())  # ... and the process dies before atomic_write
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.zeros(4))
    flip_tensor_bit(path)
    runs.record_checksum(path, buf.getvalue())  # the damaged file on disk is not "previous"
    with pytest.raises(RunError, match="checkpoint.pt is damaged: SHA-256 mismatch"):
        load_checkpoint(path)


def test_damaged_checksums_file_is_one_line_naming_it(done_run, capsys):
    (done_run / runs.CHECKSUMS).write_text('{"best.pt": "nope"}')
    rc, _, err = cli(["evaluate", done_run, "--quiet"], capsys)
    assert_one_line_error(rc, err, "evaluate", "checksums.json is damaged", "delete it")


# --------------------------------------------------------------------------- config files


CONFIG_CASES = {  # name -> (file name, text, words in the error)
    "toml unknown key": ("c.toml", "epochz = 3\n", "unknown config key 'epochz' (did you mean 'epochs'?)"),
    "yaml unknown key": ("c.yaml", "lrate: 0.1\n", "unknown config key 'lrate'"),
    "json unknown key": ("c.json", '{"optimiser": "adam"}', "unknown config key 'optimiser'"),
    "toml wrong type": ("c.toml", 'epochs = "many"\n', "'epochs' must be int"),
    "yaml wrong type": ("c.yaml", "lr: fast\n", "'lr' must be float"),
    "json wrong type": ("c.json", '{"flip_h": true}', "'flip_h' must be float"),
    "toml out of range": ("c.toml", "eval_batch_size = 0\n", "eval_batch_size must be >= 1"),
    "yaml out of range": ("c.yml", "flip_v: 2.5\n", "flip_v must be in [0, 1]"),
    "json bad choice": ("c.json", '{"optimizer": "adagrad"}', "'optimizer' must be one of"),
    "toml syntax error": ("c.toml", "epochs = = 3\n", "not valid TOML"),
    "yaml syntax error": ("c.yaml", "lr: [0.1\n", "not valid YAML"),
    "json syntax error": ("c.json", '{"lr": 0.1,}', "not valid JSON"),
    "yaml python tag": ("c.yaml", "lr: !!python/object/apply:os.system ['touch {marker}']\n", "not valid YAML"),
    "yaml python name": ("c.yaml", "model_args: !!python/name:os.system\n", "not valid YAML"),
    "yaml top-level list": ("c.yaml", "- lr\n- 0.1\n", "expected a table"),
    "unknown model arg": ("c.toml", "[model_args]\nwidth = 3\n", "has no argument 'width'"),
    "wrong suffix": ("c.ini", "lr = 0.1\n", "must end in .toml, .yaml, .yml or .json"),
    "missing file": ("absent.toml", None, "cannot read config"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_file_is_one_line_exit_2(tiny_data_dir, tmp_path, capsys, case):
    name, text, words = CONFIG_CASES[case]
    marker = tmp_path / "marker"
    path = tmp_path / name
    if text is not None:
        path.write_text(text.replace("{marker}", str(marker)))
    rc, _, err = cli(train_args(tiny_data_dir, tmp_path / "run", 1, "--config", path), capsys)
    assert_one_line_error(rc, err, "train", words)
    assert not marker.exists()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_config_file_that_is_not_text_is_one_line(tiny_data_dir, tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xff\xfe\x00binary")
    rc, _, err = cli(train_args(tiny_data_dir, tmp_path / "run", 1, "--config", path), capsys)
    assert_one_line_error(rc, err, "train", "c.toml")


# --------------------------------------------------------------------------- CLI user errors


def _garbage_data(tmp_path: Path) -> Path:
    from conftest import write_dataset

    folder = write_dataset(tmp_path / "garbage")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    return folder


USER_ERRORS = {  # name -> (argv builder(tmp, tiny), command, words)
    "data: missing folder": (lambda t, d: ["data", "--data-dir", t / "nope", "--no-download"], "data",
                             "no such folder"),
    "data: damaged file": (lambda t, d: ["data", "--data-dir", _garbage_data(t), "--no-verify"], "data", "gzip"),
    "data: checksum": (lambda t, d: ["data", "--data-dir", d], "data", "Fashion-MNIST"),
    "models: unknown model": (lambda t, d: ["models", "--args", "nosuchmodel"], "models",
                              "unknown model 'nosuchmodel'"),
    "train: unknown model": (lambda t, d: train_args(d, t / "r")[:1] + ["nosuchmodel"] + train_args(d, t / "r")[2:],
                             "train", "unknown model 'nosuchmodel'"),
    "train: no model": (lambda t, d: ["train", "--data-dir", d], "train", "name a MODEL"),
    "train: --set unknown key": (lambda t, d: train_args(d, t / "r", 1, "--set", "epochz=3"), "train", "epochz"),
    "train: --set without =": (lambda t, d: train_args(d, t / "r", 1, "--set", "lr"), "train", "expected key=value"),
    "train: --set bad model arg": (lambda t, d: train_args(d, t / "r", 1, "--set", "model_args.dropout=5"),
                                   "train", "dropout"),
    "train: --epochs 0": (lambda t, d: train_args(d, t / "r", 0), "train", "epochs must be >= 1"),
    "train: --resume missing folder": (lambda t, d: ["train", "--resume", t / "nope"], "train", "no such run folder"),
    "train: --resume not a run": (lambda t, d: ["train", "--resume", d], "train", "config.json is missing"),
    "train: --resume with a model": (lambda t, d: ["train", "model1", "--resume", d], "train", "--resume continues"),
    "train: --out is a file": (lambda t, d: train_args(d, _file(t / "f"), 1), "train", "is not a folder"),
    "train: --out under a file": (lambda t, d: train_args(d, _file(t / "f") / "sub", 1), "train", "Not a directory"),
    "train: missing --config": (lambda t, d: train_args(d, t / "r", 1, "--config", t / "no.toml"), "train",
                                "cannot read config"),
    "train: unverified data": (lambda t, d: train_args(d, t / "r", 1, "--verify"), "train", "Fashion-MNIST"),
}


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_error_is_one_line_exit_2_and_debug_shows_the_traceback(tiny_data_dir, tmp_path, capsys, case):
    build, command, words = USER_ERRORS[case]
    argv = [str(a) for a in build(tmp_path, tiny_data_dir)]
    rc, _, err = cli(argv, capsys)
    assert_one_line_error(rc, err, command, words)
    with pytest.raises(UserError, match=re.escape(words)):
        main(["--debug", *argv])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_asking_for_cuda_without_one_is_one_line(tiny_data_dir, tmp_path, capsys):
    rc, _, err = cli(train_args(tiny_data_dir, tmp_path / "r", 1, "--device", "cuda"), capsys)
    assert_one_line_error(rc, err, "train", "no CUDA GPU")


def test_argparse_errors_exit_2_without_traceback(capsys):
    rc, _, err = cli(["train", "model1", "--epochs", "many"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "cnnlstm train: error: argument --epochs: invalid int value: 'many'"


@pytest.mark.slow
def test_real_process_user_error_and_debug_traceback(tmp_path):
    """End to end through ``python -m cnnlstm``: one line without --debug, a traceback with it
    (--debug accepted before or after the command)."""
    argv = ["data", "--data-dir", str(tmp_path / "nope"), "--no-download"]
    procs = [subprocess.Popen([PY, "-m", "cnnlstm", *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=subprocess_env())
             for a in (argv, ["--debug", *argv], [*argv, "--debug"])]
    (plain, _), (debug_before, _), (debug_after, _) = [(p.communicate(timeout=120)[1], p.returncode) for p in procs]
    assert procs[0].returncode == 2
    assert plain.strip().splitlines() == [f"cnnlstm data: error: --data-dir {tmp_path / 'nope'}: no such folder"]
    for err, p in ((debug_before, procs[1]), (debug_after, procs[2])):
        assert p.returncode == 1 and "Traceback (most recent call last)" in err
        assert "cnnlstm.errors.DatasetError" in err and "no such folder" in err


@pytest.mark.parametrize("flags", [("--schedule", "cosine", "--warmup-epochs", "inf"),
                                   ("--weight-decay", "nan"), ("--seed", "-1"),
                                   ("--seed", "99999999999999999999")])
def test_non_finite_and_out_of_range_numbers_are_one_line(tiny_data_dir, tmp_path, capsys, flags):
    rc, _, err = cli(train_args(tiny_data_dir, tmp_path / "r", 1, "--no-eval", *flags), capsys)
    assert_one_line_error(rc, err, "train", flags[-2].lstrip("-").replace("-", "_"))


# --------------------------------------------------------------------------- NaN loss


def test_nan_loss_via_cli_keeps_last_good_checkpoint(tiny_data_dir, tmp_path, capsys, monkeypatch):
    real = T.build_loss
    calls = {"n": 0}

    def poisoned(cfg, model):
        fn = real(cfg, model)

        def loss(logits, y):
            calls["n"] += 1
            out = fn(logits, y)
            return out * float("nan") if calls["n"] == 13 else out  # epoch 2, step 2 (10 steps + 1 val)
        return loss

    monkeypatch.setattr(T, "build_loss", poisoned)
    run = tmp_path / "r"
    rc, _, err = cli(train_args(tiny_data_dir, run, 3, "--no-eval"), capsys)
    assert_one_line_error(rc, err, "train", "loss became nan at epoch 2, step 2", "last good checkpoint is kept")
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["train_state"]["epoch"] == 1 and ckpt["train_state"]["step"] == 0
    assert [r["epoch"] for r in read_history(run / "history.csv")] == [1]
    load_checkpoint(run / "best.pt")
    assert temp_files(run) == []
    monkeypatch.setattr(T, "build_loss", real)  # e.g. a transient fault: resuming goes on from epoch 1
    rc, _, err = cli(["train", "--resume", run, "--quiet", "--no-eval"], capsys)
    assert rc == 0, err
    assert load_checkpoint(run / "checkpoint.pt")["train_state"]["epoch"] == 3


def test_huge_lr_nan_in_first_epoch_says_no_checkpoint_yet(tiny_data_dir, tmp_path, capsys):
    """A config that diverges deterministically (lr 1e30): the message must not promise a
    checkpoint that was never written."""
    run = tmp_path / "r"
    rc, _, err = cli(train_args(tiny_data_dir, run, 2, "--no-eval", "--lr", "1e30"), capsys)
    line = assert_one_line_error(rc, err, "train", "at epoch 1, step", "no checkpoint was written yet")
    assert "(try a lower lr)" in line
    assert not (run / "checkpoint.pt").exists() and temp_files(run) == []


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
    runs.write_json(path, {"a": 1})
    WriteFault(monkeypatch, "x.json", "fsync", errnum=errnum)
    with pytest.raises(RunError, match=f"could not write .*x.json \\({words}\\); the previous version is intact"):
        runs.write_json(path, {"a": 2})
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
    with runs.run_lock(tmp_path):
        assert not stale.exists() and live.exists() and other.exists()


# --------------------------------------------------------------------------- real processes


ZYGOTE = r'''
"""Import cnnlstm once, then fork one child per request that runs the real CLI (see the test)."""
import json, os, sys, time, traceback
import cnnlstm.cli, cnnlstm.cli.train_cmd, cnnlstm.experiment, cnnlstm.train  # the slow imports
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
