"""Devices: which names are valid, what ``auto`` means here, the CPU allocator, mixed precision."""

from __future__ import annotations

import logging
import re

from cnnlstm.errors import ConfigError

# What --device (and the config's ``device``) accept: torch's own names would also take "meta",
# "cuda:x" or "mps", and then fail later with a traceback.
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")

log = logging.getLogger(__name__)


def check_device_name(name: str) -> str:
    """``name`` when it is auto, cpu, cuda or cuda:N; otherwise a one-line ConfigError."""
    if not DEVICE_NAME.fullmatch(name):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
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


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 / AMX); emulated bf16 is slower
    than fp32, so autocast is only worth it where this is True."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def autocast_dtype(amp: str, device_type: str):
    """The dtype ``torch.autocast`` should use for ``TrainConfig.amp`` on a device, or None for fp32.

    CUDA takes bf16 and fp16 as asked. On a CPU only bf16 is used, and only where the CPU runs it
    natively: measured on a 2-core AMD EPYC with AVX512-BF16, a training step of the fast recipe's
    flagship took 19 ms under bf16 autocast against 25 ms in fp32 (1.31x), and its no-LSTM twin
    13.5 against 17.9 ms. fp16 on a CPU, or bf16 on a CPU without native support, falls back to
    fp32 with a log line, so one preset serves every machine.

    Parameters
    ----------
    amp : {"off", "bf16", "fp16"}
        The configured precision.
    device_type : str
        ``torch.device.type`` of the training data, e.g. ``"cuda"`` or ``"cpu"``.

    Returns
    -------
    torch.dtype or None
    """
    import torch

    if amp == "off":
        return None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    if device_type == "cuda":
        return dtype
    if device_type == "cpu" and dtype == torch.bfloat16 and cpu_has_native_bf16():
        return dtype
    log.info("amp=%s is not used on %s (%s): training in fp32", amp, device_type,
             "no native bf16" if dtype == torch.bfloat16 and device_type == "cpu" else "CUDA only")
    return None
