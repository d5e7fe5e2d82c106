"""The model registry: variants read their arguments from a class signature, model_args are checked early."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch

from cnnlstm.cli import main
from cnnlstm.config import resolve_train_config
from cnnlstm.errors import ConfigError
from cnnlstm.models import ImageClassifier, check_model_args, get_model_entry, list_models, model_args


def class_defaults(cls) -> dict:
    return {k: p.default for k, p in inspect.signature(cls).parameters.items()}


@pytest.mark.parametrize("name", list_models())
def test_every_variant_is_a_class_or_a_partial_of_one(name):
    """No hand-written builder restates arguments: a variant is the class itself or a partial that
    fills in only some arguments, and its arguments are the class's, with the partial's values."""
    builder = get_model_entry(name).builder
    cls = builder.func if isinstance(builder, functools.partial) else builder
    assert inspect.isclass(cls) and issubclass(cls, ImageClassifier), (name, builder)
    keywords = builder.keywords if isinstance(builder, functools.partial) else {}
    assert set(keywords) <= set(class_defaults(cls)), name
    expected = {**{k: v for k, v in class_defaults(cls).items() if v is not inspect.Parameter.empty}, **keywords}
    assert model_args(name) == expected


def test_check_model_args_builds_nothing_real_and_draws_no_random_numbers():
    state = torch.get_rng_state()
    for name in list_models():
        check_model_args(name, {"dropout": 0.25})
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("args,words", [
    ({"seq_axis": "diag"}, "invalid seq_axis 'diag'"),
    ({"dropout": 5}, "invalid dropout"),
    ({"width": 3}, "has no argument 'width'"),
    ({"lstm_hidden": "wide"}, "must be an integer"),
    ({"num_classes": 3}, "model_args.num_classes cannot be set"),
])
def test_bad_model_args_fail_when_the_config_is_resolved(args, words):
    with pytest.raises(ConfigError, match=words):
        resolve_train_config("cnn_lstm", overrides={"model_args": args})


def test_cli_bad_model_arg_is_one_line_and_creates_no_run_folder(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "cnn_lstm", "--set", "model_args.seq_axis=diag", "--data-dir", str(tiny_data_dir),
               "--no-verify", "--epochs", "1", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0] == "cnnlstm train: error: invalid seq_axis 'diag'; valid: rows, cols, spatial"
    assert not out.exists()
