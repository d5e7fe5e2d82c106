"""Data-parallel training through torch.distributed, launched by torchrun.

``torchrun --nproc_per_node=N -m cnnlstm train ...`` (or ``cnnlstm train --nproc N``) starts N
processes; each joins the process group (gloo on CPU, nccl on CUDA), takes its shard of every
batch of the epoch's seeded permutation, and DistributedDataParallel averages the gradients. Only
rank 0 writes the run folder. Multi-node runs use torchrun's usual rendezvous flags.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    wrap: Callable | None = None  # model -> DDP(model), None when single-process


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum plain numbers over ranks (a no-op outside a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


@contextmanager
def distributed_context() -> Iterator[DistContext]:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1), else do nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield DistContext()
        return
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and os.environ.get("CNNLSTM_DDP_CPU") != "1"
    if cuda:
        torch.cuda.set_device(local)  # so device "cuda" means this rank's GPU
    dist.init_process_group("nccl" if cuda else "gloo")
    log.info("rank %d of %d joined (%s)", rank, world, "nccl" if cuda else "gloo")

    def wrap(model):
        return DDP(model, device_ids=[local] if cuda else None)

    try:
        yield DistContext(rank, world, local, wrap)
    finally:
        dist.destroy_process_group()


def launch_torchrun(argv: list[str], nproc: int) -> int:
    """Re-run this ``cnnlstm`` command under ``torchrun --nproc_per_node=nproc`` and wait."""
    args = [a for a in _strip_nproc(argv)]
    torchrun = shutil.which("torchrun") or None
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"])
    cmd += ["--standalone", f"--nproc_per_node={nproc}", "-m", "cnnlstm", *args]
    log.info("launching: %s", " ".join(cmd))
    return subprocess.call(cmd)


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
