"""The search space of a sweep: :class:`Param` entries, read from a file or built in.

:func:`default_space` gives the built-in space and :func:`load_space` reads a TOML/YAML/JSON file
(format in ``docs/scaling.md``)::

    lr = {type = "float", low = 1e-4, high = 1e-2, log = true}
    batch_size = {type = "categorical", choices = [64, 128, 256]}
    epochs = {type = "int", low = 2, high = 8, step = 2}
    [model_args]
    dropout = {type = "float", low = 0.0, high = 0.5}
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlstm.config import TrainConfig, load_config_file, set_dotted
from cnnlstm.errors import ConfigError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

PARAM_TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    """One searched config key.

    Attributes
    ----------
    name : str
        A TrainConfig key, or ``model_args.<arg>`` for a model argument.
    type : str
        ``float``, ``int`` or ``categorical``.
    low, high : float or int
        Inclusive range (float and int).
    log : bool
        Sample on a log scale (float and int; ``low`` must be > 0).
    step : float or int, optional
        Grid step (float and int; not with ``log``).
    choices : tuple
        The values of a categorical (numbers, strings, booleans).
    """

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def suggest(self, trial: "optuna.trial.Trial") -> Any:
        """Draw this parameter's value for ``trial``."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1),
                                     log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def to_dict(self) -> dict:
        """The space-file form of this parameter (inverse of :func:`parse_param`)."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        return out


def parse_param(name: str, spec: Any, where: str = "space") -> Param:
    """Check one space entry (``{type=..., ...}``) and return it as a :class:`Param`.

    Raises
    ------
    ConfigError
        Naming the entry: unknown type or key, empty choices, low >= high, log with low <= 0.
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where}: '{name}' must be a table with a type ({', '.join(PARAM_TYPES)})")
    kind = spec["type"]
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{where}: '{name}' has type {kind!r}; valid: {', '.join(PARAM_TYPES)}")
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ConfigError(f"{where}: '{name}' ({kind}) does not take {', '.join(extra)}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices or not all(
                isinstance(c, (bool, int, float, str)) for c in choices):
            raise ConfigError(f"{where}: '{name}' needs choices = "
                              "[a non-empty list of numbers, strings or booleans]")
        return Param(name, kind, choices=tuple(choices))
    return _numeric_param(name, kind, spec, where)


def _numeric_param(name: str, kind: str, spec: dict, where: str) -> Param:
    number = int if kind == "int" else (int, float)
    low, high, step, log_ = spec.get("low"), spec.get("high"), spec.get("step"), spec.get("log", False)
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, number):
            raise ConfigError(f"{where}: '{name}' needs {key} = a{'n integer' if kind == 'int' else ' number'}")
    if not low < high:
        raise ConfigError(f"{where}: '{name}' needs low < high, got {low} and {high}")
    if not isinstance(log_, bool):
        raise ConfigError(f"{where}: '{name}': log must be true or false")
    if log_ and low <= 0:
        raise ConfigError(f"{where}: '{name}': a log scale needs low > 0")
    if step is not None and (log_ or isinstance(step, bool) or not isinstance(step, number) or step <= 0):
        raise ConfigError(f"{where}: '{name}': step must be a positive number, and not with log")
    return Param(name, kind, low=low, high=high, log=log_, step=step)


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"model_args": {"dropout": x}}`` -> ``{"model_args.dropout": x}`` (tables of params excepted)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "type" not in value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def nest(flat: dict) -> dict:
    """Inverse of :func:`flatten`: dotted keys become nested tables."""
    out: dict = {}
    for key, value in flat.items():
        set_dotted(out, key, value, where="search space")
    return out


def parse_space(data: dict, where: str = "space") -> list[Param]:
    """A whole space (a table of entries, ``model_args`` entries nested or dotted)."""
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{where}: expected a table of parameters")
    return [parse_param(name, spec, where) for name, spec in flatten(data).items()]


def load_space(path: str | Path) -> list[Param]:
    """Read a search-space file (``.toml``, ``.yaml``/``.yml`` or ``.json``)."""
    return parse_space(load_config_file(path), where=str(path))


def default_space(model: str) -> list[Param]:
    """The built-in space: optimiser, LR, weight decay, batch, flips, and the model's dropout and
    LSTM width where it has them (see :func:`cnnlstm.models.model_args`)."""
    from cnnlstm.models import model_args

    args = model_args(model)
    space = [
        Param("lr", "float", low=1e-4, high=1e-2, log=True),
        Param("weight_decay", "float", low=1e-6, high=1e-2, log=True),
        Param("batch_size", "categorical", choices=(64, 128, 256)),
        Param("optimizer", "categorical", choices=("adamw", "adam", "nadam", "sgd")),
        Param("flip_h", "categorical", choices=(0.0, 0.5)),
        Param("flip_v", "categorical", choices=(0.0, 0.5)),
    ]
    if "dropout" in args:
        space.append(Param("model_args.dropout", "float", low=0.0, high=0.5))
    if "lstm_hidden" in args:
        space.append(Param("model_args.lstm_hidden", "categorical", choices=(32, 64, 128, 256)))
    return space


def check_space(space: list[Param], model: str, fixed: dict) -> list[Param]:
    """Drop parameters ``fixed`` (``--set``) already pins; reject keys the config or model lacks."""
    from cnnlstm.models import model_args

    keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "model_args"}
    margs = set(model_args(model)) - {"num_classes", "image_size"}
    pinned = set(flatten(fixed))
    out = []
    for p in space:
        head, _, arg = p.name.partition(".")
        ok = (head == "model_args" and arg in margs) if arg else head in keys
        if not ok:
            valid = sorted(keys) if not arg else [f"model_args.{a}" for a in sorted(margs)]
            raise ConfigError(f"search space: '{p.name}' is not a config key of {model}; "
                              f"valid: {', '.join(valid)}")
        if p.name in pinned:
            log.info("%s is fixed by --set; not searched", p.name)
            continue
        out.append(p)
    return out
