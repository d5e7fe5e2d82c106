"""Configuration: dataclasses with defaults, strict loading, presets and ``--set`` overrides.

Precedence, lowest first: the dataclass defaults, the model's own ``train_defaults`` (e.g. the
SVM loss for ``cnn_svm``), the preset, the ``--config`` file, then ``--set key=value`` and the
CLI flags. Unknown keys and values of the wrong type are a :class:`~cnnlstm.errors.ConfigError`
that names the key. The fully resolved config is saved as ``config.json`` in every run folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from cnnlstm.device import check_device_name
from cnnlstm.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The one home of each set of names: the dataclass's types below, and whoever needs the list
# (the loss factory, the help texts) reads it with ``typing.get_args``.
OptimizerName = Literal["sgd", "adam", "adamw", "nadam", "rmsprop"]
LossName = Literal["cross_entropy", "nll", "svm"]  # nll = the plan's "maximum likelihood"
ScheduleName = Literal["constant", "step", "cosine", "onecycle"]

#: Config keys that say where and how fast a run trains, not what it learns. Runs that differ only
#: in these (and the seed) are repeats of one experiment; a matched comparison and a resumed study
#: accept them differing. ``amp`` is not among them: bf16 and fp32 runs are different recipes.
RUNTIME_KEYS = frozenset({"data_dir", "download", "verify", "device", "threads", "compile", "channels_last",
                          "eval_batch_size", "tensorboard"})


@dataclass
class TrainConfig:
    """Everything one training run needs; saved as ``config.json`` to re-run it exactly."""

    model: str = "cnn_lstm"  # a name from `cnnlstm models`
    model_args: dict = field(default_factory=dict)  # keyword arguments of the model builder
    model_file: str = ""  # a .py file (or module name) registering `model` with @register_model; "" = built in
    # -- data
    data: str = "fashion-mnist"  # fashion-mnist | mnist | kmnist | debris[:N] | pathfinder[:L] | an .npz file | a folder of class folders
    image_size: int = 0  # image folders: resize every image to this square side (0 = their own size)
    data_dir: str | None = None  # IDX datasets: folder with the four files; None = search the usual places
    download: bool = True  # download an IDX dataset when no local copy is found
    verify: bool = True  # require an IDX dataset's published checksums (off for other IDX files)
    val_size: int = 5000  # images held out of train (stratified) for validation and early stopping
    limit_train: int = 0  # use only the first N training images after the split (0 = all)
    train_size: int = 0  # train on a stratified subset of N images, seeded by `seed`, nested across N (0 = all)
    limit_test: int = 0  # evaluate on only the first N test images (0 = all)
    # -- optimisation
    epochs: int = 10
    batch_size: int = 128  # images per step (global batch under data-parallel training)
    optimizer: OptimizerName = "adamw"
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 5e-4
    momentum: float = 0.9  # sgd and rmsprop
    nesterov: bool = False  # sgd
    loss: LossName = "cross_entropy"  # nll = the plan's "maximum likelihood"
    label_smoothing: float = 0.0  # cross-entropy only
    svm_c: float = 1.0  # weight of the squared-hinge term of the L2-SVM loss
    svm_penalty: float = 1.0  # weight of mean(W^2) of the SVM head in the L2-SVM loss
    schedule: ScheduleName = "onecycle"
    warmup_epochs: float = 0.0  # linear warm-up before constant/step/cosine (one-cycle has its own)
    step_epochs: int = 5  # step schedule: multiply the LR by `gamma` every this many epochs
    gamma: float = 0.1
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    # -- augmentation (training batches only, on the training device)
    flip_h: float = 0.0  # probability of a horizontal flip per image
    flip_v: float = 0.0  # probability of a vertical flip per image
    shift: int = 0  # random translation by up to this many pixels
    erase: float = 0.0  # probability of random erasing per image
    # -- early stopping
    patience: int = 0  # stop after this many epochs without improvement (0 = off)
    monitor: Literal["val_acc", "val_loss"] = "val_acc"
    # -- runtime
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # CPU threads (0 = torch's default)
    amp: Literal["off", "bf16", "fp16"] = "off"  # mixed precision: CUDA; bf16 also on CPUs with native bf16
    channels_last: bool = False  # CUDA memory format
    compile: bool = False  # torch.compile the model
    eval_batch_size: int = 1000
    tensorboard: bool = False  # also log to runs/<name>/tensorboard (needs the tensorboard extra)

    def validate(self) -> "TrainConfig":
        """Check ranges and combinations the types alone cannot; return self."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value}")
        if not 0 <= self.seed < 2 ** 63:
            raise ConfigError(f"seed must be in [0, 2**63), got {self.seed}")
        positive = ("epochs", "batch_size", "eval_batch_size", "step_epochs")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        non_negative = ("image_size", "val_size", "limit_train", "train_size", "limit_test", "weight_decay", "shift", "patience",
                        "threads", "warmup_epochs", "grad_clip", "svm_c", "svm_penalty", "momentum")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        for name in ("flip_h", "flip_v", "erase", "label_smoothing", "gamma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        check_device_name(self.device)
        return self


# --------------------------------------------------------------------------- generic loading


def _type_matches(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, converted value) for ``value`` against a (simple) type annotation."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, conv = _type_matches(value, arg)
            if ok:
                return True, conv
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:  # ints are fine where floats are expected
        return isinstance(value, (int, float)) and not isinstance(value, bool), float(value) if isinstance(
            value, (int, float)) else value
    if tp is str:
        return isinstance(value, str), value
    if tp is dict or origin is dict:
        return isinstance(value, dict), value
    if tp in (list, tuple) or origin in (list, tuple):
        return isinstance(value, (list, tuple)), list(value) if isinstance(value, (list, tuple)) else value
    return True, value


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def from_dict(cls: type, values: dict, where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``values``, rejecting unknown keys and wrong types.

    Parameters
    ----------
    cls : dataclass type
    values : dict
        Keys are field names; missing fields keep their defaults.
    where : str
        Names the source in error messages (a file name, ``--set`` ...).

    Raises
    ------
    ConfigError
        Naming the first unknown key (with a close match if there is one) or mistyped value.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table of key = value, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown config key '{key}'{hint}")
        ok, conv = _type_matches(value, hints[key])
        if not ok:
            raise ConfigError(f"{where}: '{key}' must be {_describe(hints[key])}, got {value!r}")
        kwargs[key] = conv
    return cls(**kwargs)


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (dicts merge, other values replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class _ConfigYamlLoader(yaml.SafeLoader):
    """The safe loader with YAML 1.2's booleans and floats.

    YAML 1.1 also reads ``on``, ``off``, ``yes`` and ``no`` as booleans, so ``amp: off`` (or
    ``--set amp=off``) would reach the config as ``False`` instead of naming the choice ``"off"``;
    and it reads ``1e-3`` (no dot, or an unsigned exponent) as a string, so ``lr: 1e-3`` would be
    refused as not a float.
    """


_BOOL = "tag:yaml.org,2002:bool"
_ConfigYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_ConfigYamlLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_ConfigYamlLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                        re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                        list("-+.0123456789"))


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_ConfigYamlLoader)  # noqa: S506 (a SafeLoader subclass)


def load_config_file(path: str | Path) -> dict:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``, safe loader) or JSON config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = _load_yaml(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: config files must end in .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {first}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of key = value at the top level")
    return data


def dump_config(cfg: dict, fmt: str, header: str = "") -> str:
    """``cfg`` as a ``toml``, ``yaml`` or ``json`` text that ``cnnlstm train --config`` reads.

    TOML has no null: keys whose value is None (their default, e.g. ``data_dir``) are left out.
    """
    if fmt == "json":
        return json.dumps(cfg, indent=2) + "\n"
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    if fmt in ("yaml", "yml"):
        return comment + yaml.safe_dump(cfg, sort_keys=False)
    if fmt != "toml":
        raise ConfigError(f"unknown config format {fmt!r}; use toml, yaml or json")
    lines = [f"{k} = {_toml_value(v)}" for k, v in cfg.items() if v is not None and not isinstance(v, dict)]
    for key, table in cfg.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return comment + "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} as TOML")


def parse_set(items: list[str]) -> dict:
    """``["lr=3e-3", "model_args.dropout=0.2", "model_args.channels=[32,64]"]`` -> nested dict.

    Values are parsed as YAML scalars or lists (``true``, ``1e-3``, ``[32, 64]``); anything else
    stays a string. Only ``true``/``false`` are booleans: ``amp=off`` names a choice.
    """
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            value = _load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        set_dotted(out, key.strip(), value, where=f"--set {item!r}")
    return out


def set_dotted(tree: dict, key: str, value: Any, where: str = "config") -> None:
    """Set ``tree["a"]["b"] = value`` for ``key = "a.b"``, creating the tables on the way.

    Raises
    ------
    ConfigError
        ``"<where>: 'a' is not a table"`` when a parent key already holds a value.
    """
    node = tree
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: '{part}' is not a table")
    node[leaf] = value


# --------------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    """Names of the shipped presets (``src/cnnlstm/presets/*.toml``)."""
    folder = resources.files("cnnlstm") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str, model: str) -> dict:
    """The overrides preset ``name`` makes for ``model``: its ``[defaults]`` then ``[models.<model>]``."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}'; choose from {', '.join(preset_names())}")
    text = (resources.files("cnnlstm") / "presets" / f"{name}.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return deep_merge(data.get("defaults", {}), data.get("models", {}).get(model, {}))


def resolve_train_config(model: str | None = None, *, preset: str | None = None,
                         config_file: str | Path | None = None, overrides: dict | None = None,
                         model_defaults: dict | None = None) -> TrainConfig:
    """Merge defaults, model defaults, preset, config file and overrides into a valid config.

    Parameters
    ----------
    model : str, optional
        The model name (a positional CLI argument); the file or overrides may also set it.
    preset : str, optional
        A shipped preset name.
    config_file : path, optional
        A TOML/YAML/JSON file of config keys.
    overrides : dict, optional
        ``--set`` values and explicit CLI flags, highest precedence.
    model_defaults : dict, optional
        The model registry's ``train_defaults`` for ``model``.

    Returns
    -------
    TrainConfig
        Validated, ``model_args`` included: they are checked against the model's signature and
        its own value checks here, so a bad one fails before a run folder exists.
    """
    file_values = load_config_file(config_file) if config_file else {}
    from_dict(TrainConfig, file_values, where=str(config_file))  # name the file on errors
    overrides = overrides or {}
    from_dict(TrainConfig, overrides, where="--set/flags")
    name = overrides.get("model") or model or file_values.get("model") or TrainConfig.model
    name, model_file = resolve_model_source(name, overrides.get("model_file") or file_values.get("model_file") or "")
    if model_defaults is None:
        model_defaults = registry_defaults(name)
    merged: dict = {"model": name}
    merged = deep_merge(merged, model_defaults)
    if preset:
        merged = deep_merge(merged, load_preset(preset, name))
    merged = deep_merge(merged, file_values)
    merged = deep_merge(merged, overrides)
    merged.update(model=name, model_file=model_file)
    cfg = from_dict(TrainConfig, merged, where="config").validate()
    check_model_args(cfg.model, cfg.model_args)  # before anything is written or any data is moved
    return cfg


def resolve_model_source(model: str, model_file: str = "") -> tuple[str, str]:
    """``(model, model_file)`` with the model's own source imported, so that its name is registered.

    ``model`` may be ``module:name`` (``--model my_pkg.nets:gru_hybrid``), which is ``name`` from
    the module ``my_pkg.nets``. ``model_file`` is kept, as an absolute path or a module name, only
    when that source defines ``model``: a built-in model trained beside a user's file records none.

    Raises
    ------
    ConfigError
        Two sources named, or the source fails to load (see :mod:`cnnlstm.models.user`), or no
        model of that name.
    """
    from cnnlstm.models import get_model_entry
    from cnnlstm.models.user import load_model_source

    if ":" in model:
        module, _, model = model.rpartition(":")
        if model_file and model_file != module:
            raise ConfigError(f"the model is named as {module}:{model} and model_file is {model_file}; give one source")
        model_file = module
    if not model_file:
        return model, ""
    source = load_model_source(model_file)
    entry = get_model_entry(model)
    return model, (source.spec if entry.source == source.spec else "")


def check_model_args(model: str, args: dict) -> None:
    """``args`` fit ``model``'s signature and pass its own checks (see :func:`cnnlstm.models.check_model_args`)."""
    from cnnlstm.models import check_model_args as check

    check(model, args)


def registry_defaults(model: str) -> dict:
    """The model registry's ``train_defaults`` for ``model`` (an unknown name is a ConfigError)."""
    from cnnlstm.models import get_model_entry

    return dict(get_model_entry(model).train_defaults or {})


def config_to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def config_differences(a: dict, b: dict, ignore: frozenset[str] = frozenset()) -> list[str]:
    """The keys two config dicts disagree on, outside ``ignore``: ``["key a_value vs b_value", ...]``
    in key order. A key one side lacks reads as its :class:`TrainConfig` default there (a config
    saved before the key existed meant the default), else as None."""
    defaults = dataclasses.asdict(TrainConfig())
    keys = sorted((set(a) | set(b)) - ignore)
    va = {k: a.get(k, defaults.get(k)) for k in keys}
    vb = {k: b.get(k, defaults.get(k)) for k in keys}
    return [f"{k} {va[k]!r} vs {vb[k]!r}" for k in keys if va[k] != vb[k]]
