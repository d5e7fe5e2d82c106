"""cnnlstm: CNN-LSTM hybrids and image classifiers on Fashion-MNIST-style data.

The package follows one flow: ``data -> models -> train -> evaluate -> embed -> report``.
Each step is a plain function on plain values; the command line (:mod:`cnnlstm.cli`) parses
arguments and calls the Python API (:mod:`cnnlstm.api`), so both take one path.

From Python (a notebook, a script), the same steps are these names, imported on first use so
that ``import cnnlstm`` stays cheap (no torch until one is used):

- ``load_dataset(data_dir=None, *, verify=True, ...)`` -- the four arrays (found, verified,
  cached, or downloaded), :func:`cnnlstm.data.load_dataset`;
- ``list_models()``, ``create_model(name, **model_args)`` -- the registered models;
- ``train(config_or_model, *, out=None, preset=None, data=None, **overrides)`` -- a run folder;
- ``load_run(run_dir, *, which="best", device="cpu")`` -- its config, model, metrics, history;
- ``evaluate(run_dir, ...)``, ``embed(run_dir, ...)``, ``report(*folders, ...)`` -- what
  ``cnnlstm evaluate``, ``embed`` and ``report`` do;
- ``compare(models, ...)``, ``reproduce(preset, ...)``, ``regimes(...)`` -- the matched
  comparison, the plan's study and the regime study.

The machinery lives in the layers' subpackages (``data``, ``models``, ``training``, ``measure``,
``reporting``, ``deploy``, ``study``); see ``docs/architecture.md`` and ``examples/quickstart.ipynb``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cnnlstm._version import __version__

# name -> module it lives in (imported on first access, PEP 562)
_LAZY = {
    "load_dataset": "cnnlstm.data",
    "create_model": "cnnlstm.models",
    "list_models": "cnnlstm.models",
    "train": "cnnlstm.api",
    "evaluate": "cnnlstm.api",
    "embed": "cnnlstm.api",
    "report": "cnnlstm.api",
    "load_run": "cnnlstm.api",
    "compare": "cnnlstm.api",
    "reproduce": "cnnlstm.api",
    "regimes": "cnnlstm.api",
    "Run": "cnnlstm.api",
    "TrainConfig": "cnnlstm.config",
}

__all__ = ["Run", "TrainConfig", "__version__", "compare", "create_model", "embed", "evaluate", "list_models",
           "load_dataset", "load_run", "regimes", "report", "reproduce", "train"]

if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from cnnlstm.api import Run, compare, embed, evaluate, load_run, regimes, report, reproduce, train
    from cnnlstm.config import TrainConfig
    from cnnlstm.data import load_dataset
    from cnnlstm.models import create_model, list_models


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnlstm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
