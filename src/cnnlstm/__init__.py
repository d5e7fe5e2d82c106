"""cnnlstm: CNN-LSTM hybrids and image classifiers on Fashion-MNIST-style data.

The package follows one flow: ``data -> models -> train -> evaluate -> embed -> report``.
Each step is a plain function on plain values; the command line (:mod:`cnnlstm.cli`) is the
only place that parses arguments, picks devices and run folders.

From Python (a notebook, a script), the same steps are these names, imported on first use so
that ``import cnnlstm`` stays cheap (no torch until one is used):

- ``load_dataset(data_dir=None, *, verify=True, ...)`` -- the four IDX arrays (found, verified,
  cached, or downloaded), :func:`cnnlstm.data.load_dataset`;
- ``list_models()``, ``create_model(name, **model_args)`` -- the registered models;
- ``train(config_or_model, *, out=None, preset=None, data=None, **overrides)`` -- a run folder;
- ``load_run(run_dir, *, which="best", device="cpu")`` -- its config, model, metrics, history;
- ``evaluate(run_dir, ...)``, ``embed(run_dir, ...)``, ``report(*folders, ...)`` -- what
  ``cnnlstm evaluate``, ``embed`` and ``report`` do.

``train``, ``evaluate``, ``embed`` and ``report`` are also the names of the modules that hold
each step's machinery (``cnnlstm.train.fit``, ``cnnlstm.report.build_report`` ...). Each of those
modules is therefore callable: calling it calls the step's function in :mod:`cnnlstm.api`, and
``from cnnlstm import train`` still gives the module. See ``examples/quickstart.ipynb``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module it lives in (imported on first access, PEP 562)
_LAZY = {
    "load_dataset": "cnnlstm.data",
    "create_model": "cnnlstm.models",
    "list_models": "cnnlstm.models",
    "load_run": "cnnlstm.api",
    "Run": "cnnlstm.api",
    "TrainConfig": "cnnlstm.config",
}
# steps whose API function shares its name with a submodule: the submodule is made callable
_STEPS = ("train", "evaluate", "embed", "report")

__all__ = ["__version__", *_LAZY, *_STEPS]

if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from cnnlstm.api import Run, load_run
    from cnnlstm.config import TrainConfig
    from cnnlstm.data import load_dataset
    from cnnlstm.models import create_model, list_models


class _StepModule(types.ModuleType):
    """A step's module that is also its function: ``cnnlstm.train(...)`` is ``cnnlstm.api.train(...)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        step = getattr(importlib.import_module("cnnlstm.api"), self.__name__.rpartition(".")[2])
        return step(*args, **kwargs)


class _Package(types.ModuleType):
    """The ``cnnlstm`` package: binds the step submodules as callable modules, whoever imports them."""

    def __setattr__(self, name: str, value: Any) -> None:
        # the import system binds each submodule here, on first import, from anywhere
        if name in _STEPS and isinstance(value, types.ModuleType) and type(value) is types.ModuleType:
            value.__class__ = _StepModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _STEPS:
        return importlib.import_module(f"{__name__}.{name}")  # bound (and made callable) by _Package
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnlstm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
