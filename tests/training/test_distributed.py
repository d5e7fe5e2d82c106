"""Data-parallel training: 2 gloo processes under torchrun match 1 process, write a complete run
folder, and resume after SIGTERM.

Tolerance: a W-process run computes the same global-batch gradient as one process (see
``cnnlstm.training.distributed.shard_indices``) but sums it in a different order (each rank reduces its
shard, then gloo adds the ranks), so the two agree to float32 rounding, not bit for bit, and Adam
carries those ~1e-7 relative differences forward. Measured on this 2-core machine over 2 epochs
of model1: every history.csv loss equal to all 6 printed digits, weights within 2e-7. We allow
``LOSS_RTOL`` = 1e-4 (the 6-digit rounding alone can reach 1e-5) and ``WEIGHT_ATOL`` = 1e-5, and
require the same accuracies. model1 has no batch norm (per-shard statistics would differ by
design) and no dropout. 40% of the synthetic training labels are random, so the loss stays far
from zero and the comparison means something.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlstm.config import TrainConfig
from cnnlstm.data import load_dataset
from cnnlstm.fileio import read_history, read_json
from cnnlstm.runs import load_checkpoint
from cnnlstm.study.experiment import train_run
from cnnlstm.training import distributed as D

from conftest import synthetic_arrays, write_dataset

SRC = Path(__file__).resolve().parents[2] / "src"
LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-5
RUN_FILES = ("config.json", "history.csv", "checkpoint.pt", "best.pt", "metrics.json")


# --------------------------------------------------------------------------- unit level


def test_shard_weights_make_ddp_average_the_global_batch_mean():
    """sum_r w_r * mean_r / W equals the mean over the whole batch, for even and uneven splits."""
    losses = torch.arange(33, dtype=torch.float64) ** 1.5  # per-image losses of one global batch
    batch = torch.arange(33)
    for world in (1, 2, 3, 4, 5):
        total = 0.0
        for rank in range(world):
            idx, w = D.shard_indices(batch, rank, world)
            total += w * losses[idx].mean().item() / world  # what DDP's gradient average computes
        assert total == pytest.approx(losses.mean().item(), rel=1e-12)


def test_empty_shard_gets_a_weight_zero_stand_in():
    idx, w = D.shard_indices(torch.tensor([7]), 1, 2)
    assert w == 0.0 and idx.tolist() == [7]  # still one image, so the rank joins the all-reduce
    idx, w = D.shard_indices(torch.tensor([7, 8, 9]), 0, 1)
    assert w == 1.0 and idx.tolist() == [7, 8, 9]


def test_each_rank_gets_its_own_reproducible_random_stream():
    def draws(seed, rank, epoch, step):
        gen = torch.Generator()
        D.reseed_rank(gen, seed, rank, epoch, step)
        return torch.rand(4, generator=gen), torch.rand(4)  # augmentation stream, dropout stream

    a0, d0 = draws(3, 0, 1, 0)
    a1, d1 = draws(3, 1, 1, 0)
    assert not torch.equal(a0, a1) and not torch.equal(d0, d1)  # ranks no longer share flips/masks
    again = draws(3, 0, 1, 0)
    assert torch.equal(a0, again[0]) and torch.equal(d0, again[1])  # a function of (seed, rank, epoch, step)
    assert not torch.equal(a0, draws(3, 0, 2, 0)[0]) and not torch.equal(a0, draws(3, 0, 1, 5)[0])


def test_single_process_context_and_collectives_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with D.distributed_context() as ctx:
        assert (ctx.rank, ctx.world_size, ctx.wrap) == (0, 1, None)
    assert D.all_reduce_sum([1.0, 2.0], torch.device("cpu")) == [1.0, 2.0]
    assert D.any_rank(True, torch.device("cpu")) is True


def test_torchrun_command_drops_nproc_and_uses_this_python():
    cmd = D.torchrun_command(["train", "model1", "--nproc", "2", "--epochs", "1", "--nproc=4"], 2)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in cmd and "--standalone" in cmd
    assert cmd[cmd.index("cnnlstm") + 1:] == ["train", "model1", "--epochs", "1"]


# --------------------------------------------------------------------------- torchrun, 2 processes


def noisy_dataset(folder: Path, n_train: int) -> Path:
    """Synthetic IDX data whose training labels are 40% random (the loss cannot reach zero)."""
    arrays = synthetic_arrays(n_train=n_train, n_test=50, seed=1)
    rng = np.random.default_rng(0)
    noisy = rng.random(n_train) < 0.4
    arrays["train_labels"][noisy] = rng.integers(0, 10, int(noisy.sum()))
    return write_dataset(folder, arrays)


def _env() -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}", CNNLSTM_DDP_CPU="1",
               OMP_NUM_THREADS="1")
    return env


def _torchrun(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "cnnlstm", *args]


def _train_flags(data_dir: Path, cfg: TrainConfig) -> list[str]:
    return ["train", cfg.model, "--data-dir", str(data_dir), "--no-verify", "--device", "cpu",
            "--threads", "1", "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size),
            "--val-size", str(cfg.val_size), "--limit-train", str(cfg.limit_train), "--lr", str(cfg.lr),
            "--optimizer", cfg.optimizer, "--schedule", cfg.schedule, "--seed", str(cfg.seed), "-q"]


def _reference(cfg: TrainConfig, data_dir: Path, out: Path) -> list[dict]:
    """The same config trained in this (single) process."""
    train_run(cfg, out, load_dataset(data_dir, verify=False), evaluate=False)
    return read_history(out / "history.csv")


def _assert_histories_match(ddp: list[dict], single: list[dict]) -> None:
    assert [r["epoch"] for r in ddp] == [r["epoch"] for r in single]
    for a, b in zip(ddp, single):
        for key in ("train_loss", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=LOSS_RTOL), (a["epoch"], key)
        assert a["val_acc"] == b["val_acc"] and a["train_acc"] == b["train_acc"], a["epoch"]


def _assert_weights_close(a: Path, b: Path) -> None:
    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=WEIGHT_ATOL, rtol=0), k


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    """Global batch 33 over 133 images: every batch splits 17/16 and the last holds one image,
    so rank 1's last shard is empty; the loss trajectory still matches one process."""
    data = noisy_dataset(tmp_path / "data", 200)
    cfg = TrainConfig(model="model1", epochs=2, batch_size=33, val_size=40, limit_train=133, lr=3e-3,
                      optimizer="adam", schedule="constant", device="cpu", verify=False, seed=5).validate()
    ddp = tmp_path / "ddp"
    proc = subprocess.run(_torchrun([*_train_flags(data, cfg), "--out", str(ddp)]), env=_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in RUN_FILES:
        assert (ddp / name).is_file(), name
    saved = read_json(ddp / "config.json")
    assert saved["batch_size"] == 33 and saved["limit_train"] == 133
    single = _reference(cfg, data, tmp_path / "single")
    _assert_histories_match(read_history(ddp / "history.csv"), single)
    assert read_json(ddp / "metrics.json")["n_test"] == 50
    _assert_weights_close(ddp / "checkpoint.pt", tmp_path / "single" / "checkpoint.pt")


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.02)


@pytest.mark.slow
def test_nproc_launcher_sigterm_then_resume_under_torchrun(tmp_path):
    """`cnnlstm train --nproc 2`, SIGTERM after the first checkpoint, `--resume` under torchrun:
    the run finishes, and matches one uninterrupted process."""
    data = noisy_dataset(tmp_path / "data", 700)
    cfg = TrainConfig(model="model1", epochs=3, batch_size=9, val_size=100, limit_train=595, lr=2e-3,
                      optimizer="adam", schedule="cosine", device="cpu", verify=False, seed=2).validate()
    run = tmp_path / "run"
    args = [sys.executable, "-m", "cnnlstm", *_train_flags(data, cfg), "--out", str(run), "--nproc", "2"]
    launcher = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(run / "checkpoint.pt", launcher, timeout=180)
        launcher.send_signal(signal.SIGTERM)  # the launcher passes it to torchrun, torchrun to the workers
        _, err = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode != 0, "the run finished before SIGTERM reached it"
    assert "interrupted; state saved" in err, err[-3000:]
    state = load_checkpoint(run / "checkpoint.pt")["train_state"]
    assert 1 <= state["epoch"] < 3
    assert not (run / "metrics.json").exists()

    proc = subprocess.run(_torchrun(["train", "--resume", str(run), "--no-eval", "-q"]),
                          env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.json", "history.csv", "checkpoint.pt", "best.pt"):
        assert (run / name).is_file(), name
    assert load_checkpoint(run / "checkpoint.pt")["train_state"]["epoch"] == 3
    single = _reference(cfg, data, tmp_path / "single")
    _assert_histories_match(read_history(run / "history.csv"), single)
    _assert_weights_close(run / "checkpoint.pt", tmp_path / "single" / "checkpoint.pt")
