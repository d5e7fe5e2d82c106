"""Bad config files, user errors and a NaN loss: one stderr line, exit 2, and the last good checkpoint kept.

See tests/reliability/test_processes.py for what real processes killed mid-run must keep."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch
from support import PY, assert_one_line_error, cli, subprocess_env, temp_files, train_args

from cnnlstm.cli import main
from cnnlstm.errors import UserError
from cnnlstm.fileio import read_history
from cnnlstm.runs import load_checkpoint
from cnnlstm.training import loop as T

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
    assert err.strip().splitlines() == ["cnnlstm train: error: argument --epochs: invalid int value: 'many'",
                                        "run 'cnnlstm train --help' for usage"]


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
