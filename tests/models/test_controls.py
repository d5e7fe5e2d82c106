"""The flagship's no-LSTM controls: same stem, matched size, every gradient flows."""

from __future__ import annotations

import pytest
import torch

from cnnlstm.models import create_model, model_summary
from cnnlstm.models.controls import matched_hidden


@pytest.mark.parametrize("first_stride", [1, 2])
@pytest.mark.parametrize("channels", [(32, 64), (24, 48), (16, 32)])
def test_twin_matches_the_flagships_parameters_within_one_percent(channels, first_stride):
    lstm = create_model("cnn_lstm", channels=channels, first_stride=first_stride)
    twin = create_model("cnn_twin", channels=channels, first_stride=first_stride)
    p_lstm = sum(p.numel() for p in lstm.parameters())
    p_twin = sum(p.numel() for p in twin.parameters())
    assert abs(p_twin - p_lstm) / p_lstm < 0.01
    # the stems are the same layers: only the head differs
    assert [tuple(p.shape) for p in lstm.stem.parameters()] == [tuple(p.shape) for p in twin.stem.parameters()]


def test_twin_flops_are_stated_not_hidden():
    """The twin reads each weight once per image, the LSTM once per step: fewer FLOPs, same size."""
    lstm, twin = model_summary("cnn_lstm"), model_summary("cnn_twin")
    assert abs(twin["params"] - lstm["params"]) / lstm["params"] < 0.01
    assert 0.6 < twin["mflops"] / lstm["mflops"] < 0.9
    assert model_summary("cnn_gap")["params"] < lstm["params"] / 10


def test_matched_hidden_and_an_explicit_width():
    assert matched_hidden((64, 7, 7)) == 84
    assert matched_hidden((48, 7, 7)) == 88
    assert create_model("cnn_twin", hidden=17).feature_dim == 17


@pytest.mark.parametrize("name", ["cnn_twin", "cnn_gap"])
def test_controls_train_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name, channels=(8, 16)).train()
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    assert model.forward_features(x).shape == (6, model.feature_dim)


def test_bad_twin_width_is_a_config_error():
    from cnnlstm.errors import ConfigError

    with pytest.raises(ConfigError):
        create_model("cnn_twin", hidden=-3)


def test_the_fast_preset_gives_the_flagship_and_its_controls_one_stem():
    """A matched comparison needs the same stem on both sides: the preset must not drift apart."""
    from cnnlstm.config import resolve_train_config

    args = {m: resolve_train_config(m, preset="fast").model_args for m in ("cnn_lstm", "cnn_twin", "cnn_gap")}
    assert args["cnn_lstm"] == args["cnn_twin"] == args["cnn_gap"]
    stems = [create_model(m, **a).stem for m, a in args.items()]
    assert all(str(stem) == str(stems[0]) for stem in stems)
