"""Behaviour of the model registry and every registered model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlstm.errors import ConfigError
from cnnlstm.models import (
    ImageClassifier,
    create_model,
    get_model_entry,
    list_models,
    model_args,
    model_summary,
)
from cnnlstm.models.registry import lstm_flops


@pytest.fixture(autouse=True)
def _one_thread():
    # the build machine has 2 shared cores; tiny batches gain nothing from more threads
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_parameter_gets_a_finite_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    assert isinstance(model, ImageClassifier)
    x = _images(4)
    features = model.forward_features(x)
    logits = model.forward_head(features)
    assert features.shape == (4, model.feature_dim)
    assert logits.shape == (4, model.num_classes) == (4, 10)
    if not _has_dropout(model):  # forward == forward_head(forward_features)
        torch.testing.assert_close(model(x), logits, rtol=0, atol=0)
    logits.logsumexp(dim=1).mean().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {pname} has a non-finite gradient"


def _has_dropout(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())


@pytest.mark.parametrize("name", list_models())
def test_eval_mode_is_deterministic_and_other_sizes_work(name: str) -> None:
    model = create_model(name, num_classes=3, image_size=32).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 3)
        torch.testing.assert_close(model(x), out)


def test_model1_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = create_model("model1")
    x, y = _images(16, seed=1), torch.arange(16) % 10
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert (model(x).argmax(1) == y).all()


def _table_ii_params(c1: int, c2: int, fc: int) -> int:
    conv1 = c1 * 1 * 5 * 5 + c1
    conv2 = c2 * c1 * 5 * 5 + c2
    return conv1 + conv2 + (512 * fc + fc) + (fc * 10 + 10)


@pytest.mark.parametrize(("name", "c1", "c2", "fc"), [("model1", 8, 32, 64), ("model2", 16, 32, 32)])
def test_table_ii_parameter_counts(name: str, c1: int, c2: int, fc: int) -> None:
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == _table_ii_params(c1, c2, fc)
    assert model.feature_dim == fc
    assert _table_ii_params(8, 32, 64) == 40_122 and _table_ii_params(16, 32, 32) == 29_994


def test_tf_cnn_matches_the_published_layer_sizes() -> None:
    model = create_model("tf_cnn")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert sorted((m.in_features, m.out_features) for m in linears) == [(1024, 10), (3136, 1024)]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.4]
    assert [m.p for m in create_model("cnn_svm").modules() if isinstance(m, nn.Dropout)] == [0.5]


def test_ji_wiring_is_9_rows_of_180() -> None:
    model = create_model("ji_cnn_lstm")
    lstm = next(m for m in model.modules() if isinstance(m, nn.LSTM))
    assert (lstm.input_size, lstm.hidden_size) == (180, 128)
    assert model.steps == 9


def test_batch_norm_and_dropout_reach_the_model() -> None:
    for name in list_models():
        args = model_args(name)
        assert "batch_norm" in args and "dropout" in args, name
        with_bn = create_model(name, batch_norm=True, dropout=0.3)
        without = create_model(name, batch_norm=False)
        assert any(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules()), name
        assert not any(isinstance(m, nn.BatchNorm2d) for m in without.modules()), name
        assert 0.3 in [m.p for m in with_bn.modules() if isinstance(m, nn.Dropout)], name


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_twin", "cnn_gap"])
def test_stem_depth_stacks_convolutions_in_each_flagship_block(name: str) -> None:
    shallow, deep = create_model(name), create_model(name, stem_depth=3)
    convs = [m for m in deep.stem.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 * len([m for m in shallow.stem.modules() if isinstance(m, nn.Conv2d)])
    assert [c.out_channels for c in convs] == [32, 32, 32, 64, 64, 64]
    assert sum(isinstance(m, nn.MaxPool2d) for m in deep.stem.modules()) == 2  # still 28 -> 7x7
    assert deep(_images(2)).shape == (2, 10)
    if name == "cnn_lstm":
        assert deep.steps == shallow.steps == 7
    # depth 1 keeps the layer names, so checkpoints written before the option still load
    assert list(create_model(name, stem_depth=1).state_dict()) == list(shallow.state_dict())


@pytest.mark.parametrize("name", ["model1_lstm", "ji_cnn_lstm"])
def test_stem_depth_is_the_flagship_stems_alone(name: str) -> None:
    with pytest.raises(ConfigError, match="stem_depth 2"):
        create_model(name, stem_depth=2)
    with pytest.raises(ConfigError, match="first_stride 2"):
        create_model(name, first_stride=2)


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_twin", "cnn_gap"])
def test_first_stride_downsamples_the_first_block_by_a_strided_conv(name: str) -> None:
    pooled, strided = create_model(name), create_model(name, first_stride=2)
    convs = [m for m in strided.stem.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in strided.stem.modules()) == 1  # the second block's
    assert strided.stem(_images(2)).shape == pooled.stem(_images(2)).shape == (2, 64, 7, 7)
    assert strided(_images(2)).shape == (2, 10)
    # the same parameters (hence a matched twin), fewer FLOPs: no full-resolution output map
    assert [p.shape for p in strided.parameters()] == [p.shape for p in pooled.parameters()]
    assert model_summary(name, first_stride=2)["mflops"] < model_summary(name)["mflops"]
    with pytest.raises(ConfigError, match="first_stride 3"):
        create_model(name, first_stride=3)
    deep = create_model(name, first_stride=2, stem_depth=2)  # the stride is in the first block's last conv
    assert [c.stride[0] for c in deep.stem.modules() if isinstance(c, nn.Conv2d)] == [1, 2, 1, 1]
    assert deep.stem(_images(2)).shape == (2, 64, 7, 7)


@pytest.mark.parametrize(
    ("seq_axis", "input_size"), [("rows", 64 * 7), ("cols", 64 * 7), ("spatial", 64)]
)
def test_seq_axis_changes_the_lstm_input(seq_axis: str, input_size: int) -> None:
    model = create_model("cnn_lstm", seq_axis=seq_axis)
    lstm = next(m for m in model.modules() if isinstance(m, nn.LSTM))
    assert lstm.input_size == input_size
    assert model.steps == (49 if seq_axis == "spatial" else 7)
    assert model(_images(2)).shape == (2, 10)


def test_lstm_arguments_reach_the_lstm() -> None:
    model = create_model(
        "model1_lstm", lstm_hidden=20, lstm_layers=2, bidirectional=True, seq_axis="cols"
    )
    lstm = next(m for m in model.modules() if isinstance(m, nn.LSTM))
    assert (lstm.hidden_size, lstm.num_layers, lstm.bidirectional, lstm.input_size) == (20, 2, True, 128)
    assert model.feature_dim == 40
    model = create_model("cnn_lstm", channels=[16, 24, 48], lstm_hidden=8, bidirectional=False)
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [16, 24, 48] and model.feature_dim == 8 and model.steps == 3


@pytest.mark.parametrize("pool", ["last", "mean", "attention"])
def test_pool_argument_reaches_the_reader(pool: str) -> None:
    model = create_model("cnn_lstm", pool=pool, dropout=0.0).eval()
    assert model.reader.pool == pool
    assert model(_images(2)).shape == (2, 10)
    assert (model.reader.score is not None) == (pool == "attention")


def test_mean_pool_and_uniform_attention_average_the_steps() -> None:
    from cnnlstm.models.hybrid import LSTMReader

    torch.manual_seed(0)
    seq = torch.randn(3, 5, 6)
    mean = LSTMReader(6, 4, pool="mean")
    out, _ = mean.lstm(seq)
    torch.testing.assert_close(mean(seq), out.mean(dim=1))
    attention = LSTMReader(6, 4, pool="attention")
    attention.lstm.load_state_dict(mean.lstm.state_dict())
    nn.init.zeros_(attention.score.weight)  # equal scores -> softmax weights 1/T
    torch.testing.assert_close(attention(seq), out.mean(dim=1))


def test_last_pool_of_a_bilstm_reads_both_directions_fully() -> None:
    torch.manual_seed(0)
    model = create_model("ji_cnn_lstm", bidirectional=True).eval()
    seq = torch.randn(2, 9, 180)
    out, _ = model.reader.lstm(seq)  # (B, T, 2h)
    pooled = model.reader(seq)
    h = model.reader.lstm.hidden_size
    torch.testing.assert_close(pooled[:, :h], out[:, -1, :h])  # forward direction ends at the last step
    torch.testing.assert_close(pooled[:, h:], out[:, 0, h:])  # backward direction ends at the first


def test_unknown_model_and_argument_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown model 'nope'; valid: model1, model2"):
        create_model("nope")
    no_arg = "model 'model1' has no argument 'lstm_hidden'; valid: .*batch_norm"
    with pytest.raises(ConfigError, match=no_arg):
        create_model("model1", lstm_hidden=3)
    with pytest.raises(ConfigError, match="seq_axis 'diag'; valid: rows, cols, spatial"):
        create_model("cnn_lstm", seq_axis="diag")
    with pytest.raises(ConfigError, match="pool"):
        create_model("cnn_lstm", pool="max")
    with pytest.raises(ConfigError, match="dropout"):
        create_model("model2", dropout=1.5)
    with pytest.raises(ConfigError, match="batch_norm"):
        create_model("model2", batch_norm="yes")
    with pytest.raises(ConfigError, match="lstm_hidden"):
        create_model("cnn_lstm", lstm_hidden=0)
    with pytest.raises(ConfigError, match="image_size"):
        create_model("model1", image_size=8)


def test_entries_and_train_defaults() -> None:
    names = list_models()
    assert names[:2] == ["model1", "model2"]
    assert set(names) >= {"tf_cnn", "cnn_svm", "model1_lstm", "model2_lstm", "ji_cnn_lstm",
                          "parallel_cnn_lstm", "cnn_lstm"}
    assert get_model_entry("cnn_svm").train_defaults["loss"] == "svm"
    assert dict(get_model_entry("model1").train_defaults) == {}
    assert get_model_entry("cnn_lstm").description


def test_model_summary_counts_flops_including_lstms() -> None:
    s = model_summary("model1")
    assert s["params"] == 40_122
    # conv1 24*24*8*25 MACs, conv2 8*8*32*200, fc 512*64 + 64*10; 2 FLOPs per MAC
    macs = 24 * 24 * 8 * 25 + 8 * 8 * 32 * 200 + 512 * 64 + 64 * 10
    assert math.isclose(s["mflops"], 2 * macs / 1e6, abs_tol=1e-3)
    ji, ji_cnn_only = model_summary("ji_cnn_lstm"), 2 * (26 * 26 * 20 * 9 + 9 * 9 * 20 * 500 + 128 * 10)
    lstm = next(m for m in create_model("ji_cnn_lstm").modules() if isinstance(m, nn.LSTM))
    assert lstm_flops(lstm, 9) == 9 * 4 * (2 * 180 * 128 + 2 * 128 * 128)
    assert math.isclose(ji["mflops"], (ji_cnn_only + lstm_flops(lstm, 9)) / 1e6, abs_tol=1e-3)


def test_every_model_runs_under_cpu_bf16_autocast() -> None:
    for name in list_models():
        model = create_model(name)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(_images(2))
        out.float().sum().backward()
        assert out.shape == (2, 10), name


def test_state_dict_round_trip_reproduces_outputs() -> None:
    torch.manual_seed(0)
    a = create_model("cnn_lstm").eval()
    torch.manual_seed(1)
    b = create_model("cnn_lstm").eval()
    b.load_state_dict(a.state_dict())
    x = _images(3)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
