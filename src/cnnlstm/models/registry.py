"""Models by name: register builders, create models from config values, summarise them.

A builder is anything callable whose signature lists every argument with a default and returns
an :class:`~cnnlstm.models.base.ImageClassifier`: a model class whose ``__init__`` has defaults
for everything, or a :func:`functools.partial` of one that fills in only the arguments a variant
changes (timm's ``@register_model`` style, without a hand-written function restating the rest)::

    model1 = register_model("model1", "Table II Model I")(
        partial(TwoConvCNN, channels=(8, 32), kernel_size=5, padding=0, fc_hidden=64))

The registry reads a model's arguments and defaults from that signature (:func:`model_args`), so
a new argument of a class reaches every variant of it without being restated anywhere.
:func:`create_model` checks keyword arguments against the signature before calling the builder,
so a typo in a config file is a one-line :class:`~cnnlstm.errors.ConfigError`, not a
``TypeError`` traceback; :func:`check_model_args` also runs the model's own value checks without
allocating weights.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlstm.errors import ConfigError
from cnnlstm.models.base import ImageClassifier

__all__ = [
    "ModelEntry",
    "check_model_args",
    "DATA_ARGS",
    "create_model",
    "get_model_entry",
    "list_models",
    "lstm_flops",
    "model_args",
    "model_summary",
    "register_model",
]

log = logging.getLogger(__name__)

Builder = Callable[..., ImageClassifier]


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"model1"``.
    description : str
        One line for ``cnnlstm models`` listings and reports.
    builder : Callable[..., ImageClassifier]
        The function that builds the model from keyword arguments.
    train_defaults : Mapping[str, Any]
        Training-config overrides the model needs (e.g. ``{"loss": "svm"}``); read-only.
    source : str
        ``""`` for a built-in model; else the file or module that registered it
        (:func:`cnnlstm.models.user.load_model_source`).
    """

    name: str
    description: str
    builder: Builder = field(repr=False)
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


_REGISTRY: dict[str, ModelEntry] = {}  # insertion order = registration order


def register_model(
    name: str, description: str, train_defaults: Mapping[str, Any] | None = None
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder ``fn(**kwargs) -> ImageClassifier`` under ``name``.

    ``fn`` is a function, a model class or a :func:`functools.partial` of one, whose every
    argument has a default (see the module docstring).

    Parameters
    ----------
    name : str
        Registry key; registering a name twice is a programming error (``ValueError``).
    description : str
        One-line description.
    train_defaults : Mapping[str, Any], optional
        Training-config overrides this model needs, exposed as
        ``get_model_entry(name).train_defaults``.

    Returns
    -------
    Callable
        The decorator; it returns the builder unchanged.
    """

    def decorate(fn: Builder) -> Builder:
        if name in _REGISTRY:
            taken = _REGISTRY[name].source
            raise ValueError(f"model {name!r} is already registered "
                             f"({'by ' + taken if taken else 'a built-in model'})")
        _check_builder_signature(name, fn)
        defaults = MappingProxyType(dict(train_defaults or {}))
        _REGISTRY[name] = ModelEntry(name, description, fn, defaults)
        return fn

    return decorate


def _check_builder_signature(name: str, fn: Builder) -> None:
    """Builders take arguments with defaults only, so that every argument is listable."""
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is param.empty:
            raise ValueError(
                f"builder of model {name!r}: argument {param.name!r} needs a default and no *args/**kwargs"
            )


def set_source(name: str, source: str) -> None:
    """Record that model ``name`` came from ``source`` (a user's file or module)."""
    _REGISTRY[name] = replace(_REGISTRY[name], source=source)


def unregister(name: str) -> None:
    """Remove model ``name`` (a user's source that failed its checks takes its models back)."""
    _REGISTRY.pop(name, None)


def list_models() -> list[str]:
    """Names of all registered models, in registration order."""
    return list(_REGISTRY)


def get_model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` registered as ``name``; unknown name -> :class:`ConfigError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; valid: {', '.join(_REGISTRY)}") from None


def model_args(name: str) -> dict[str, Any]:
    """The keyword arguments model ``name`` accepts, with their defaults."""
    params = inspect.signature(get_model_entry(name).builder).parameters
    return {key: p.default for key, p in params.items()}


def create_model(name: str, **kwargs: Any) -> ImageClassifier:
    """Build the registered model ``name`` with keyword arguments ``kwargs``.

    Values are checked against the type of each argument's default: a bool default takes only
    bools, an int default only ints, a float default ints or floats, a tuple default a list or
    tuple (JSON configs give lists). Range checks are the model's own.

    Raises
    ------
    ConfigError
        Unknown model, unknown argument, or a value of the wrong type or out of range.
    """
    entry = get_model_entry(name)
    valid = model_args(name)
    clean = {}
    for key, value in kwargs.items():
        if key not in valid:
            raise ConfigError(f"model {name!r} has no argument {key!r}; valid: {', '.join(valid)}")
        clean[key] = _coerce(name, key, value, valid[key])
    model = entry.builder(**clean)
    log.debug("created model %s with %s", name, clean)
    return model


#: The builder arguments that come from the dataset, never from ``model_args``.
DATA_ARGS = ("num_classes", "image_size", "in_channels")


def check_model_args(name: str, args: Mapping[str, Any], *, image_size: int = 28, in_channels: int = 1,
                     num_classes: int = 10) -> None:
    """Check ``args`` for model ``name`` as :func:`create_model` would, without allocating weights.

    The model is built on PyTorch's ``meta`` device (shapes only: no memory, no random numbers
    drawn), so unknown arguments, wrong types and the model's own value checks (a ``seq_axis``
    that does not exist, a dropout of 5) all fail here, before a run folder is written.

    Raises
    ------
    ConfigError
        Unknown model or argument, a value of the wrong type or out of range, one of
        :data:`DATA_ARGS`, which come from the dataset, or a model that cannot read images of
        this size and channel count.
    """
    for key in DATA_ARGS:
        if key in args:
            raise ConfigError(f"model_args.{key} cannot be set: it comes from the dataset")
    with torch.device("meta"):
        create_model(name, image_size=image_size, in_channels=in_channels, num_classes=num_classes, **args)


def _coerce(model: str, key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default`` (see :func:`create_model`)."""
    def bad(kind: str) -> ConfigError:
        return ConfigError(f"model {model!r} argument {key!r} must be {kind}, got {value!r}")

    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise bad("a list of integers")
        return tuple(value)
    return value


# ---------------------------------------------------------------------------------------------
# summaries


def lstm_flops(lstm: nn.LSTM, steps: int) -> int:
    """Forward FLOPs of ``lstm`` for one sequence of ``steps`` steps.

    Per step, layer and direction the four gates cost ``4 * (2*in*h + 2*h*h)`` FLOPs
    (a multiply-add counts 2); biases and the gate nonlinearities are not counted, like
    ``FlopCounterMode`` leaves out elementwise work elsewhere. Layers after the first read
    ``h * directions`` features.
    """
    h = lstm.hidden_size
    dirs = 2 if lstm.bidirectional else 1
    total = 0
    for layer in range(lstm.num_layers):
        in_size = lstm.input_size if layer == 0 else h * dirs
        total += steps * dirs * 4 * (2 * in_size * h + 2 * h * h)
    return total


def _count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs of ``model(x)``: ``FlopCounterMode`` plus LSTMs it does not count.

    ``FlopCounterMode`` (torch 2.x) sees matmuls and convolutions but not the fused LSTM kernel,
    so each ``nn.LSTM`` that it reports no FLOPs for is added analytically by :func:`lstm_flops`.
    """
    lstm_steps: dict[str, int] = {}
    names = {mod: name for name, mod in model.named_modules()}
    hooks = []
    for mod in names:
        if isinstance(mod, nn.LSTM):
            def hook(m: nn.Module, args: tuple, _out: Any) -> None:
                seq = args[0]  # batch_first=True: (B, T, in)
                lstm_steps[names[m]] = seq.shape[1] if m.batch_first else seq.shape[0]
            hooks.append(mod.register_forward_hook(hook))
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for handle in hooks:
            handle.remove()
    total = counter.get_total_flops()
    counted = counter.get_flop_counts()
    root = type(model).__name__
    for name, steps in lstm_steps.items():
        if sum(counted.get(f"{root}.{name}", {}).values()) == 0:
            total += lstm_flops(model.get_submodule(name), steps) * x.shape[0]
    return total


@torch.no_grad()
def model_summary(name: str, image_size: int = 28, in_channels: int = 1, num_classes: int = 10,
                  **model_args: Any) -> dict[str, Any]:
    """Size and cost of model ``name`` built with its defaults, or with ``model_args``.

    Returns
    -------
    dict
        ``name``; ``params`` (trainable parameter count); ``mflops`` (forward FLOPs per image in
        millions, measured with ``torch.utils.flop_counter.FlopCounterMode`` on a batch of 1 in
        eval mode, LSTMs added analytically, see :func:`lstm_flops`); ``description``.
    """
    entry = get_model_entry(name)
    model = create_model(name, image_size=image_size, in_channels=in_channels, num_classes=num_classes,
                         **model_args).eval()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    flops = _count_flops(model, torch.zeros(1, in_channels, image_size, image_size))
    return {
        "name": name,
        "params": params,
        "mflops": round(flops / 1e6, 3),
        "description": entry.description,
    }
