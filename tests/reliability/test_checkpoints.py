"""Untrusted and damaged checkpoints are refused with one clear line and never run their code.

See tests/reliability/test_processes.py for what real processes killed mid-run must keep."""

from __future__ import annotations

import io
import os
import pickle
import random
import shlex
import struct
from pathlib import Path

import pytest
import torch
from support import assert_one_line_error, cli

from cnnlstm import runs
from cnnlstm.config import resolve_train_config
from cnnlstm.data import load_dataset
from cnnlstm.errors import RunError
from cnnlstm.runs import load_checkpoint
from cnnlstm.study.experiment import evaluate_run

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
        from cnnlstm.study.experiment import build_model

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
