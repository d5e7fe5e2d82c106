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
