"""A researcher's own models: a Python file or an importable module whose builders join the registry.

``cnnlstm train gru_hybrid --model-file my_models.py`` (or ``--model my_pkg.nets:gru_hybrid``)
imports the source once per process; every ``@register_model`` in it registers a model exactly
as the built-in ones are registered, so ``train``, ``sweep``, ``compare`` and ``reproduce`` use
it unchanged. Three things are checked, each a one-line :class:`~cnnlstm.errors.ConfigError`:

- the source imports, and registers at least one model whose name is not taken (by a built-in
  model or by another source);
- each new builder takes ``num_classes``, ``image_size`` and ``in_channels`` (the dataset sets
  them) and has a default on every argument, so the registry can list and check it;
- the model it builds with its defaults has the one interface: ``forward_features`` maps a batch
  ``(B, C, H, W)`` to ``(B, D)`` and ``forward_head`` maps that to ``(B, num_classes)``. The
  check runs on PyTorch's ``meta`` device: shapes only, no weights allocated, no random numbers
  drawn.

A run records the source and the SHA-256 of the file that defines its model (``model_file.json``,
see :mod:`cnnlstm.runs`), so a run whose file has since been edited or removed says so instead
of loading its weights into a different model. For a module, the hash is of the module's own
``.py`` file (what ``importlib`` finds for it), not of the modules that file imports.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlstm.errors import ConfigError
from cnnlstm.fileio import sha256_hex
from cnnlstm.models import registry
from cnnlstm.models.registry import DATA_ARGS

__all__ = ["ModelSource", "is_model_file", "load_model_source", "check_model_contract", "source_file"]

log = logging.getLogger(__name__)

_LOADED: dict[str, "ModelSource"] = {}  # canonical spec -> what importing it registered


@dataclass(frozen=True)
class ModelSource:
    """A file or module that registered models.

    Attributes
    ----------
    spec : str
        As a config records it: the absolute path of a ``.py`` file, or a dotted module name.
    path : str
        The file that defines the models (the module's own file for a module).
    sha256 : str
        Of that file's bytes when it was imported.
    models : tuple of str
        The names it registered, in registration order.
    """

    spec: str
    path: str
    sha256: str
    models: tuple[str, ...]

    def to_dict(self) -> dict:
        """JSON-ready, as a run's ``model_file.json`` holds it."""
        return {**dataclasses.asdict(self), "models": list(self.models)}


def is_model_file(spec: str) -> bool:
    """True for a path to a ``.py`` file (what ``--model-file`` takes), False for a module name."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def canonical_source(spec: str) -> str:
    """The spec as a config records it: a file's absolute path, or the module name unchanged."""
    return str(Path(spec).expanduser().resolve()) if is_model_file(spec) else spec


def source_file(spec: str) -> Path:
    """The file a source's models are defined in (its own ``.py`` file for a module).

    Raises
    ------
    ConfigError
        No such file, or no importable module of that name.
    """
    if is_model_file(spec):
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"model file {path}: no such file")
        return path
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"model module {spec!r}: {exc}") from None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise ConfigError(f"model module {spec!r}: no such module on the Python path")
    return Path(found.origin)


def load_model_source(spec: str) -> ModelSource:
    """Import the file or module ``spec`` once and return what it registered.

    Importing the same source again in one process returns the first import's result, provided
    the file has not changed since (a changed file cannot be re-imported into a registry that
    already holds its old builders: that is an error, not a silent mix).

    Parameters
    ----------
    spec : str
        A path to a ``.py`` file, or a dotted module name importable from ``sys.path``.

    Returns
    -------
    ModelSource

    Raises
    ------
    ConfigError
        The source is missing, fails to import (the message gives the exception), registers no
        model, clashes with a registered name, or breaks the contract (see the module docstring).
    """
    canon = canonical_source(spec)
    before = set(registry.list_models())  # before find_spec, which imports a module's parent package
    path = source_file(canon)
    digest = sha256_hex(path.read_bytes())
    done = _LOADED.get(canon)
    if done is not None:
        if done.sha256 != digest:
            raise ConfigError(f"{path} changed after it was imported in this process; start again to use the "
                              "new version")
        return done
    try:
        _import(canon, path, digest)
    except ConfigError:
        _unregister(set(registry.list_models()) - before)
        raise
    except Exception as exc:  # noqa: BLE001 - a user's file may raise anything; it is one line here
        _unregister(set(registry.list_models()) - before)
        raise ConfigError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    new = tuple(n for n in registry.list_models() if n not in before)
    if not new and not is_model_file(canon):  # a module imported before (a notebook, its package's __init__)
        new = tuple(n for n in registry.list_models()
                    if not registry.get_model_entry(n).source and _builder_module(n) == canon)
    if not new:
        raise ConfigError(f"{path} registers no model; decorate a builder with "
                          "@cnnlstm.models.register_model(name, description)")
    try:
        for name in new:
            registry.set_source(name, canon)
            data = {k: v for k, v in registry.model_args(name).items() if k in DATA_ARGS}
            check_model_contract(name, **data)  # at the builder's own size; the dataset's is checked before training
    except ConfigError:
        _unregister(set(new))
        sys.modules.pop(canon, None)  # so that a fixed module is imported afresh in this process
        raise
    source = ModelSource(canon, str(path), digest, new)
    _LOADED[canon] = source
    log.info("%s: registered %s", path, ", ".join(new))
    return source


def _builder_module(name: str) -> str | None:
    """The module a registered builder (a class, a function or a partial of one) was defined in."""
    builder = registry.get_model_entry(name).builder
    return getattr(getattr(builder, "func", builder), "__module__", None)


def _import(spec: str, path: Path, digest: str) -> None:
    """Run the file (under a module name of its own) or import the module."""
    def clash(exc: ValueError) -> ConfigError:
        return ConfigError(f"{path}: {exc}; rename the model in your file (`cnnlstm models` lists the names taken)")

    if not is_model_file(spec):
        try:
            importlib.import_module(spec)
        except ValueError as exc:
            if "already registered" in str(exc):
                raise clash(exc) from None
            raise
        return
    # a top-level name (no dot), so that pickle can import the module a class of the file lives in
    name = f"cnnlstm_user_{path.stem}_{digest[:12]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up by module name
    try:
        module_spec.loader.exec_module(module)
    except ValueError as exc:
        del sys.modules[name]
        if "already registered" in str(exc):
            raise clash(exc) from None
        raise
    except BaseException:
        del sys.modules[name]
        raise


def _unregister(names: set[str]) -> None:
    for name in names:
        registry.unregister(name)


def check_model_contract(name: str, *, image_size: int = 28, in_channels: int = 1, num_classes: int = 10,
                         model_args: dict | None = None) -> None:
    """Check that model ``name`` takes the dataset's arguments and has the one interface.

    Built with ``model_args`` (default: its defaults) on the ``meta`` device, it must map a ``(2, in_channels, image_size,
    image_size)`` batch through ``forward_features`` to ``(2, D)`` and ``forward_head`` to
    ``(2, num_classes)``.

    Raises
    ------
    ConfigError
        Naming the model and what it got wrong.
    """
    source = registry.get_model_entry(name).source
    where = f"model {name!r}" + (f" ({source})" if source else "")
    missing = [a for a in DATA_ARGS if a not in registry.model_args(name)]
    if missing:
        raise ConfigError(f"{where}: its builder must take {', '.join(DATA_ARGS)} (the dataset sets them); "
                          f"missing {', '.join(missing)}")
    x = torch.empty(2, in_channels, image_size, image_size, device="meta")
    try:
        with torch.device("meta"):  # the forward passes too: tensors a model makes in forward() stay on meta
            model = registry.create_model(name, num_classes=num_classes, image_size=image_size,
                                          in_channels=in_channels, **(model_args or {}))
            for method in ("forward_features", "forward_head"):
                if not callable(getattr(model, method, None)):
                    raise ConfigError(f"{where}: the model has no {method}(); subclass "
                                      "cnnlstm.models.ImageClassifier and implement forward_features")
            features = model.forward_features(x)
            if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != 2:
                raise ConfigError(f"{where}: forward_features must map (B, C, H, W) to (B, D); for a batch of "
                                  f"{tuple(x.shape)} it returned {_shape(features)}")
            logits = model.forward_head(features)
            if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, num_classes):
                raise ConfigError(f"{where}: forward_head must map (B, D) to (B, num_classes) = (2, {num_classes}); "
                                  f"it returned {_shape(logits)}")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's model may raise anything on a forward pass
        message = (str(exc).splitlines() or [""])[0]
        raise ConfigError(f"{where}: building it or a forward pass on a batch of {tuple(x.shape)} on the meta "
                          f"device (shapes only: a model that reads tensor values cannot be checked) failed: "
                          f"{type(exc).__name__}{': ' + message if message else ''}") from exc


def _shape(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
