"""Training: optimizers, LR schedules, the epoch loop, early stopping, exact checkpoint/resume.

The data is one normalised tensor on the training device; each epoch draws a seeded permutation
and slices batches out of it, augmenting each batch on the device (no per-sample Dataset, no
worker processes). All randomness comes from a ``torch.Generator`` created from the config's seed,
plus torch's global generator for dropout and weight init, whose state is saved too, so a run
resumed from any checkpoint continues bit-identically on the CPU.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from cnnlstm.config import TrainConfig, config_to_dict
from cnnlstm.data import FASHION_NORM, Norm
from cnnlstm.data import augment as aug
from cnnlstm.device import autocast_dtype
from cnnlstm.errors import RunError
from cnnlstm.fileio import write_history
from cnnlstm.runs import CHECKPOINT_FORMAT, save_checkpoint
from cnnlstm.training.distributed import all_reduce_sum, any_rank, reseed_rank, shard_indices
from cnnlstm.training.losses import make_loss
from cnnlstm.training.optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)

def black_pixel(norm: Norm) -> float | tuple[float, ...]:
    """``norm.black`` as :class:`~cnnlstm.data.augment.Augment` takes it: a float for one channel."""
    return norm.black[0] if norm.channels == 1 else norm.black


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the current state has been checkpointed."""

    def __init__(self, signum: int, checkpoint: Path):
        super().__init__(f"interrupted by signal {signum}; state saved to {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint


class NonFiniteLoss(RunError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


@dataclass
class TrainState:
    """Everything that changes during training and must survive a resume."""

    epoch: int = 0  # completed epochs
    step: int = 0  # batches done in the current (incomplete) epoch; 0 at epoch boundaries
    history: list = field(default_factory=list)  # one dict per completed epoch
    best_metric: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the monitored metric last improved
    running: dict = field(default_factory=lambda: {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0})


# --------------------------------------------------------------------------- optimizer and schedule


def build_augment(cfg: TrainConfig, norm: Norm = FASHION_NORM) -> aug.Augment | None:
    """The training-batch augmentation the config asks for, or None when it asks for none.

    Pixels shifted in and erased rectangles get the normalised value of a black pixel, the
    Fashion-MNIST background (0 would be mid-grey after normalisation).
    """
    augment = aug.Augment(cfg.flip_h, cfg.flip_v, cfg.shift, cfg.erase, fill=black_pixel(norm))
    return augment if augment.enabled else None


def build_loss(cfg: TrainConfig, model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(logits, targets)`` for the config's loss, bound to ``model``'s head where needed."""
    loss = make_loss(cfg.loss, label_smoothing=cfg.label_smoothing, svm_c=cfg.svm_c, svm_penalty=cfg.svm_penalty)
    if cfg.loss == "svm" and cfg.svm_penalty:
        return lambda logits, y: loss(logits, y, head_weight=model.head_weight)  # penalises mean(W^2)
    return loss


# --------------------------------------------------------------------------- one epoch


def epoch_permutation(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """The order of training images in ``epoch``: a function of (seed, epoch) alone.

    Deriving it from (seed, epoch) rather than from a running generator is what lets a resumed
    run, or every rank of a data-parallel run, rebuild exactly the same order.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


def train_steps(model, x, y, perm, *, opt, sched, loss_fn, augment, gen, batch_size, state: TrainState,
                epoch: int, scaler=None, amp_dtype=None, grad_clip=0.0, rank=0, world_size=1,
                should_stop: Callable[[], bool] = lambda: False,
                on_step: Callable[[int, int, float], None] | None = None) -> bool:
    """Run the remaining batches of one epoch; return False if stopped early by ``should_stop``.

    Batch ``b`` is ``perm[b*batch_size:(b+1)*batch_size]``; under data parallelism rank ``r`` of
    ``world_size`` takes every ``world_size``-th image of it, so ranks see disjoint shards, and
    weights its loss so the averaged gradient is the whole batch's (see
    :func:`cnnlstm.training.distributed.shard_indices`).
    """
    model.train()
    n_batches = math.ceil(len(perm) / batch_size)
    resumed_mid_epoch = state.step > 0
    run = state.running
    for b in range(state.step, n_batches):
        idx, weight = shard_indices(perm[b * batch_size:(b + 1) * batch_size], rank, world_size)
        xb, yb = x[idx], y[idx]  # (B, 1, H, W), (B,)
        if augment is not None:
            xb = augment(xb, gen)
        with torch.autocast(xb.device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
            logits = model(xb)
            loss = loss_fn(logits, yb)
        if not torch.isfinite(loss):
            kept = "the last good checkpoint is kept" if state.epoch or resumed_mid_epoch else \
                "no checkpoint was written yet"  # every checkpoint is from an epoch end or a resume point
            raise NonFiniteLoss(f"loss became {loss.item()} at epoch {epoch + 1}, step {b + 1}; "
                                f"{kept} (try a lower lr)")
        opt.zero_grad(set_to_none=True)
        objective = loss if weight == 1.0 else loss * weight
        if scaler is not None:
            scaler.scale(objective).backward()
            scaler.unscale_(opt)
        else:
            objective.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        (scaler.step(opt), scaler.update()) if scaler is not None else opt.step()
        sched.step()
        n = len(yb) if weight else 0  # a weight-0 stand-in image (empty shard) is not counted
        run["loss"] += loss.item() * n
        run["correct"] += int((logits.argmax(1) == yb).sum()) if n else 0
        run["count"] += n
        state.step = b + 1
        if on_step:
            on_step(b + 1, n_batches, run["loss"] / max(1, run["count"]))
        if should_stop():
            return False
    return True


@torch.inference_mode()
def evaluate_loss_acc(model, x, y, loss_fn, batch_size: int, amp_dtype=None) -> tuple[float, float]:
    """Mean loss and accuracy over (x, y) in eval mode; never shuffles or augments."""
    if len(y) == 0:
        return float("nan"), float("nan")
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        with torch.autocast(xb.device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
            logits = model(xb)
            total_loss += float(loss_fn(logits.float(), yb)) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
    return total_loss / len(y), correct / len(y)


# --------------------------------------------------------------------------- state save / restore


def capture_rng(gen: torch.Generator) -> dict:
    """Every RNG state training draws from: the augmentation generator and torch's global ones."""
    rng = {"augment": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict, gen: torch.Generator) -> None:
    gen.set_state(rng["augment"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def checkpoint_state(model, opt, sched, scaler, gen, state: TrainState, cfg: TrainConfig) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "model": unwrap(model).state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": capture_rng(gen),
        "train_state": {k: getattr(state, k) for k in TrainState.__dataclass_fields__},
        "config": config_to_dict(cfg),
    }


def restore_state(ckpt: dict, model, opt, sched, scaler, gen) -> TrainState:
    """Load a checkpoint produced by :func:`checkpoint_state` into live objects."""
    try:
        unwrap(model).load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise RunError(f"checkpoint does not match the model in config.json ({str(exc).splitlines()[0]})") from exc
    try:  # a checkpoint is input: a damaged or foreign one is the user's error, not a crash
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt["rng"], gen)
        return TrainState(**ckpt["train_state"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        raise RunError(f"checkpoint is incomplete or from another version ({type(exc).__name__}: "
                       f"{(str(exc).splitlines() or [''])[0]})") from exc


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


# --------------------------------------------------------------------------- signals


@contextmanager
def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM), debounce: float = 0.0) -> Iterator[list]:
    """Turn SIGINT/SIGTERM into a flag checked between batches (so state can be saved first).

    A second signal stops at once, unless it comes within ``debounce`` seconds of the first:
    under torchrun a terminal's Ctrl-C reaches each worker twice (from the terminal and
    forwarded by torchrun), which is still one request to save and stop.
    """
    received: list[int] = []
    previous = {}
    first = []

    def handler(signum, frame):
        if received and time.monotonic() - first[0] >= debounce:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        if not received:
            first.append(time.monotonic())
            received.append(signum)

    try:
        for s in signals:
            previous[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- fit


@dataclass
class FitData:
    """Training and validation tensors, already on the training device."""

    train_x: torch.Tensor  # (N, C, H, W) float, normalised
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    norm: Norm = FASHION_NORM  # the normalisation of the tensors (for the augmentations' black fill)


def improved(value: float, best: float | None, monitor: str) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if monitor == "val_acc" else value < best


def end_of_epoch(model, data: FitData, loss_fn, cfg, state: TrainState, lr: float) -> dict:
    """Validate, append the history row, update best/patience bookkeeping; return the row."""
    val_loss, val_acc = evaluate_loss_acc(model, data.val_x, data.val_y, loss_fn, cfg.eval_batch_size)
    run = state.running
    row = {"epoch": state.epoch + 1, "train_loss": run["loss"] / max(1, run["count"]),
           "train_acc": run["correct"] / max(1, run["count"]), "val_loss": val_loss, "val_acc": val_acc,
           "lr": lr, "seconds": run["seconds"]}
    state.history.append(row)
    state.epoch += 1
    state.step = 0
    state.running = {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0}
    metric = row[cfg.monitor] if len(data.val_y) else -row["train_loss"]
    if improved(metric, state.best_metric, cfg.monitor if len(data.val_y) else "val_acc"):
        state.best_metric, state.best_epoch, state.bad_epochs = metric, state.epoch, 0
    else:
        state.bad_epochs += 1
    return row


def fit(model: nn.Module, data: FitData, cfg: TrainConfig, run_dir: str | Path | None, *,
        resume: dict | None = None, rank: int = 0, world_size: int = 1,
        on_step: Callable[[int, int, float], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> TrainState:
    """Train ``model`` on ``data`` as ``cfg`` says, checkpointing into ``run_dir`` every epoch.

    Parameters
    ----------
    model : nn.Module
        Already on the training device (possibly wrapped in DDP).
    data : FitData
        Tensors on the same device.
    cfg : TrainConfig
    run_dir : path or None
        Where ``history.csv``, ``checkpoint.pt`` and ``best.pt`` go (only rank 0 writes; None
        writes nothing, for tests and sweeps that keep results in memory).
    resume : dict, optional
        A checkpoint from :func:`checkpoint_state` to continue from (exactly).
    rank, world_size : int
        Data-parallel position; each rank trains on its shard of every batch.
    on_step : callable, optional
        ``on_step(batch, n_batches, mean_loss)`` after each step (progress display).
    on_epoch : callable, optional
        ``on_epoch(history_row)`` after each epoch's validation.

    Returns
    -------
    TrainState
        With the full history and the best epoch.

    Raises
    ------
    TrainingInterrupted
        On SIGINT/SIGTERM, after saving a mid-epoch checkpoint that resumes exactly.
    NonFiniteLoss
        When the loss becomes NaN/inf (the previous checkpoint is left as it was).
    """
    run_dir = Path(run_dir) if run_dir is not None and rank == 0 else None
    steps_per_epoch = math.ceil(len(data.train_y) / cfg.batch_size)
    opt = build_optimizer(model.parameters(), cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    device = data.train_x.device
    amp_dtype = autocast_dtype(cfg.amp, device.type)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    loss_fn = build_loss(cfg, unwrap(model))
    augment = build_augment(cfg, data.norm)
    state = restore_state(resume, model, opt, sched, scaler, gen) if resume else TrainState()
    if resume and rank != 0:  # rank 0's checkpoint holds every shard's partial-epoch sums
        state.running.update(loss=0.0, correct=0, count=0)
    if world_size > 1:  # ranks must stop after the same batch (see any_rank)
        should_stop = lambda: any_rank(bool(received), device)  # noqa: E731
    else:
        should_stop = lambda: bool(received)  # noqa: E731

    def save(name: str = "checkpoint.pt") -> None:
        if run_dir is not None:
            save_checkpoint(run_dir / name, checkpoint_state(model, opt, sched, scaler, gen, state, cfg))

    with stop_on_signals(debounce=2.0 if world_size > 1 else 0.0) as received:
        while state.epoch < cfg.epochs:
            if cfg.patience and state.bad_epochs >= cfg.patience:
                log.info("early stopping: no improvement of %s for %d epochs", cfg.monitor, cfg.patience)
                break
            perm = epoch_permutation(len(data.train_y), cfg.seed, state.epoch, device)
            if world_size > 1:  # each rank its own random stream (see reseed_rank)
                reseed_rank(gen, cfg.seed, rank, state.epoch, state.step)
            t0 = time.perf_counter()
            finished = train_steps(
                model, data.train_x, data.train_y, perm, opt=opt, sched=sched, loss_fn=loss_fn,
                augment=augment, gen=gen, batch_size=cfg.batch_size, state=state, epoch=state.epoch,
                scaler=scaler, amp_dtype=amp_dtype, grad_clip=cfg.grad_clip, rank=rank,
                world_size=world_size, should_stop=should_stop, on_step=on_step)
            state.running["seconds"] += time.perf_counter() - t0
            if world_size > 1:  # every rank saw its own shard: the epoch's figures are their sum
                run = state.running
                run["loss"], run["correct"], run["count"] = all_reduce_sum(
                    [run["loss"], run["correct"], run["count"]], device)
            if not finished:
                save()
                signum = received[0] if received else int(signal.SIGTERM)  # another rank got the signal
                raise TrainingInterrupted(signum, run_dir / "checkpoint.pt" if run_dir else Path("-"))
            row = end_of_epoch(model, data, loss_fn, cfg, state, sched.get_last_lr()[0])
            if run_dir is not None:
                if state.best_epoch == state.epoch:
                    save_checkpoint(run_dir / "best.pt", {"model": unwrap(model).state_dict(),
                                                          "epoch": state.epoch, "config": config_to_dict(cfg)})
                write_history(run_dir / "history.csv", state.history)
                save()
            if on_epoch:
                on_epoch(row)
    return state
