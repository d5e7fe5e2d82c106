"""Deprecated: ``cnnlstm.export`` moved to :mod:`cnnlstm.deploy.export`; this alias warns and forwards.

docs/predict.md named this path before the layers became folders; it goes in a later release.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_NEW = "cnnlstm.deploy.export"


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # the import system's own look-ups
        raise AttributeError(name)
    warnings.warn(f"cnnlstm.export is deprecated; import {name} from {_NEW}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(_NEW), name)
