"""Device names: which ones are valid, and what ``auto`` means on this machine."""

from __future__ import annotations

import re

from cnnlstm.errors import ConfigError

# What --device (and the config's ``device``) accept: torch's own names would also take "meta",
# "cuda:x" or "mps", and then fail later with a traceback.
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str) -> str:
    """``name`` when it is auto, cpu, cuda or cuda:N; otherwise a one-line ConfigError."""
    if not DEVICE_NAME.fullmatch(name):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return name


def resolve_device(name: str):
    """``auto`` -> CUDA when available, else CPU; an unavailable CUDA is a ConfigError.

    Returns
    -------
    torch.device
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available (use --device cpu)")
    return torch.device(name)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Allocations below this come from the heap rather than fresh mmap'd pages: glibc's own upper
#: bound for the threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX = 32 MiB).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Keep up to this much freed memory in the heap instead of returning it to the system.
TRIM_THRESHOLD = 512 * 1024 * 1024


def keep_cpu_allocations_warm() -> bool:
    """Stop glibc from mmap-ing (and page-faulting) every large CPU tensor of a training step.

    glibc serves allocations above its mmap threshold (128 KiB at start) with fresh pages that
    are faulted in on first touch and unmapped on free, and only raises the threshold after a
    large block is freed. A training step's activations (1-4 MiB at batch 128) therefore cost
    page faults on every step until the first validation pass happens to free a big enough
    block: measured on 2 cores, the flagship's first epoch took 14.6 s against 11.9 s for the
    second, and 11.1 s with the thresholds fixed here from the start. Fixing them also keeps
    later epochs from depending on what ran before. Does nothing (returns False) where the C
    library is not glibc.

    Returns
    -------
    bool
        Whether both thresholds were set.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): no mallopt
        return False
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
