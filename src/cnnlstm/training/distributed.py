"""Data-parallel training through torch.distributed, launched by torchrun.

``torchrun --nproc_per_node=N -m cnnlstm train ...`` (or ``cnnlstm train --nproc N``) starts N
processes; each joins the process group, takes its shard of every batch of the epoch's seeded
permutation (``batch_size`` is the GLOBAL batch), and DistributedDataParallel averages the
gradients. Only rank 0 writes the run folder. Multi-node runs use torchrun's usual rendezvous
flags (see ``docs/scaling.md``).

Backends: on a CUDA machine the group is ``cpu:gloo,cuda:nccl`` (collectives on GPU tensors go
through NCCL, those on CPU tensors through gloo, so ``--device cpu`` still works there); without
CUDA, or with ``CNNLSTM_DDP_CPU=1``, it is plain gloo.

Equivalence with one process: rank ``r`` of ``W`` trains on ``batch[r::W]`` and its loss is
weighted by ``W * len(shard) / len(batch)`` (see :func:`shard_indices`), so DDP's gradient
average equals the gradient of the mean loss over the whole global batch even when the batch
does not split evenly. Only the order of the floating-point sums differs, which is why a
W-process run matches a 1-process run to rounding error, not bit for bit. Batch norm is the
exception: its statistics are per shard (not synchronised), so BN models differ more. Random
augmentation and dropout differ too: each rank reseeds its own stream every epoch
(:func:`reseed_rank`), so that ranks do not share their random decisions.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

FORCE_CPU_ENV = "CNNLSTM_DDP_CPU"  # "1": use gloo only, even where CUDA exists (tests, CPU clusters)


@dataclass
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    wrap: Callable | None = None  # model -> DDP(model), None when single-process
    backend: str | None = None  # the process group's backend, None when single-process


def is_distributed() -> bool:
    """True inside an initialised process group."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum plain numbers over ranks (a no-op outside a process group).

    Float64 on ``device``: counts up to 2**53 stay exact and the sum goes through the backend
    that serves tensors on that device.
    """
    import torch
    import torch.distributed as dist

    if not is_distributed():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on at least one (a MAX all-reduce).

    Ranks use it to agree on stopping after the same batch: a signal reaches the processes
    at slightly different times, and a rank that stopped alone would leave the others blocked
    in the next gradient all-reduce.
    """
    import torch
    import torch.distributed as dist

    if not is_distributed():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def shard_indices(batch: torch.Tensor, rank: int, world_size: int) -> tuple[torch.Tensor, float]:
    """This rank's images of a global ``batch`` of indices, and the weight of its loss.

    Parameters
    ----------
    batch : Tensor
        ``(B,)`` indices of one global batch.
    rank, world_size : int

    Returns
    -------
    idx : Tensor
        ``batch[rank::world_size]``; when that is empty (a last batch smaller than the world),
        the batch's first index, so the rank still runs forward/backward (DDP needs every rank
        in every gradient all-reduce) ...
    weight : float
        ... with weight 0. Otherwise ``world_size * len(idx) / B``: DDP averages the ranks'
        gradients, so weighting each rank's mean loss this way makes the result the gradient
        of the mean over the whole batch. 1.0 in a single process and for even splits.
    """
    if world_size == 1:
        return batch, 1.0
    idx = batch[rank::world_size]
    if len(idx) == 0:
        return batch[:1], 0.0
    return idx, world_size * len(idx) / len(batch)


def reseed_rank(gen: "torch.Generator", seed: int, rank: int, epoch: int, step: int) -> None:
    """Give this rank its own augmentation and dropout randomness, from (seed, rank, epoch, step).

    Every rank starts from the same seed (DDP needs the same initial weights), so without this
    each rank would draw the same flips, erasing boxes and dropout masks for the same position
    of its shard: N ranks would share each random decision. Called at every epoch start (and at a
    mid-epoch resume point) of a data-parallel run only; a single process keeps its one stream.
    """
    import hashlib

    import torch

    digest = hashlib.blake2b(f"{seed}:{rank}:{epoch}:{step}".encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little") & (2**63 - 1)
    gen.manual_seed(value)
    torch.manual_seed(value ^ 0x5DEECE66D)  # dropout draws from torch's global generators


def _backend() -> tuple[str, bool]:
    """``(backend, uses_cuda)`` for this machine (see the module docstring)."""
    import torch

    cuda = torch.cuda.is_available() and os.environ.get(FORCE_CPU_ENV) != "1"
    return ("cpu:gloo,cuda:nccl" if cuda else "gloo"), cuda


def _wrapper(local_rank: int) -> Callable:
    def wrap(model: torch.nn.Module) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        on_cuda = next(model.parameters()).device.type == "cuda"
        return DDP(model, device_ids=[local_rank] if on_cuda else None)

    return wrap


@contextmanager
def distributed_context() -> Iterator[DistContext]:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1), else do nothing.

    On CUDA machines each process selects GPU ``LOCAL_RANK``, so the device name ``cuda`` means
    this rank's own GPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield DistContext()
        return
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend, cuda = _backend()
    if cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group(backend)
    log.info("rank %d of %d joined (%s)", rank, world, backend)
    try:
        yield DistContext(rank, world, local, _wrapper(local), backend)
    finally:
        dist.destroy_process_group()


def torchrun_command(argv: list[str], nproc: int) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node=N -m cnnlstm ARGV``.

    ``--nproc`` is removed from ``argv`` so the workers do not launch again. The launcher is
    run with this interpreter (a ``torchrun`` on PATH may belong to another environment).
    """
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "cnnlstm", *_strip_nproc(argv)]


def launch_torchrun(argv: list[str], nproc: int) -> int:
    """Re-run this ``cnnlstm`` command under torchrun with ``nproc`` local processes and wait.

    SIGTERM to this process is passed on to torchrun (which passes it to the workers, who save
    a checkpoint); SIGINT is ignored here because a terminal's Ctrl-C already reaches every
    process of the foreground group.

    This module imports torch lazily, so the launching process stays light.

    Returns
    -------
    int
        torchrun's exit status.
    """
    cmd = torchrun_command(argv, nproc)
    log.info("launching: %s", " ".join(cmd))
    proc = subprocess.Popen(cmd)
    forward = lambda signum, frame: proc.send_signal(signum)  # noqa: E731
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.SIGTERM: signal.signal(signal.SIGTERM, forward)}
    try:
        return proc.wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _strip_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out
