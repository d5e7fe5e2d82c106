"""Module aliases kept for old import paths: each warns once per name and forwards to the new home."""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def forwarding_getattr(old: str, new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for ``old`` that warns and returns ``new``'s attribute."""
    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # the import system's own look-ups
            raise AttributeError(name)
        warnings.warn(f"{old} is deprecated; import {name} from {new}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)
    return __getattr__
