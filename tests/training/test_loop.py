"""The training engine: determinism, exact resume, config reaching components, failures."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch

from cnnlstm.config import resolve_train_config
from cnnlstm.errors import ConfigError, RunError
from cnnlstm.fileio import read_history
from cnnlstm.runs import load_checkpoint
from cnnlstm.study.experiment import build_model, make_splits, train_run
from cnnlstm.training import loop as T

from conftest import Stop, stop_after, tiny_cfg


def weights(path):
    return load_checkpoint(path)["model"]


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_same_history_and_weights(tiny_ds, tmp_path):
    cfg = tiny_cfg(flip_h=0.5, shift=2)
    train_run(cfg, tmp_path / "a", tiny_ds, evaluate=False)
    train_run(cfg, tmp_path / "b", tiny_ds, evaluate=False)
    ha, hb = read_history(tmp_path / "a/history.csv"), read_history(tmp_path / "b/history.csv")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(ha) == strip(hb) and len(ha) == 3
    assert_same_weights(weights(tmp_path / "a/checkpoint.pt"), weights(tmp_path / "b/checkpoint.pt"))
    train_run(tiny_cfg(flip_h=0.5, shift=2, seed=4), tmp_path / "c", tiny_ds, evaluate=False)
    assert strip(read_history(tmp_path / "c/history.csv")) != strip(ha)


@pytest.mark.parametrize("model, model_args", [
    ("model1", {}), ("ji_cnn_lstm", {}),
    ("cnn_lstm", {"channels": [8, 16], "first_stride": 2, "lstm_hidden": 8}),  # the fast preset's stride-2 stem
    # recurrence inside the conv stack (BatchNorm per step, a ConvLSTM cell's state)
    ("spoerer_bl", {"channels": [4, 4], "steps": 3}),
    ("conv_lstm", {"channels": 4, "hidden": 4, "steps": 3}),
])
def test_kill_after_epoch_then_resume_is_bit_identical(tiny_ds, tmp_path, model, model_args):
    """A run that dies right after epoch 1's checkpoint, resumed, equals one never interrupted."""
    cfg = tiny_cfg(model=model, flip_h=0.5, erase=0.3, model_args={"dropout": 0.2, **model_args})
    train_run(cfg, tmp_path / "full", tiny_ds, evaluate=False)

    with pytest.raises(Stop):
        train_run(cfg, tmp_path / "cut", tiny_ds, evaluate=False, on_epoch=stop_after(1))
    assert load_checkpoint(tmp_path / "cut/checkpoint.pt")["train_state"]["epoch"] == 1
    train_run(None, tmp_path / "cut", tiny_ds, resume=True, evaluate=False)
    assert_same_weights(weights(tmp_path / "full/checkpoint.pt"), weights(tmp_path / "cut/checkpoint.pt"))
    assert read_history(tmp_path / "cut/history.csv")[-1]["val_acc"] == \
        read_history(tmp_path / "full/history.csv")[-1]["val_acc"]


def test_sigint_mid_epoch_saves_and_resumes_exactly(tiny_ds, tmp_path):
    cfg = tiny_cfg(flip_v=0.5, model_args={"dropout": 0.3})
    train_run(cfg, tmp_path / "full", tiny_ds, evaluate=False)
    calls = []

    def interrupt(b, n, loss):
        calls.append(b)
        if len(calls) == 7:  # epoch 2, step 2 (5 steps per epoch of 160 images)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(T.TrainingInterrupted) as exc:
        train_run(cfg, tmp_path / "cut", tiny_ds, evaluate=False, on_step=interrupt)
    assert exc.value.signum == signal.SIGINT
    st = load_checkpoint(tmp_path / "cut/checkpoint.pt")["train_state"]
    assert (st["epoch"], st["step"]) == (1, 2)
    train_run(None, tmp_path / "cut", tiny_ds, resume=True, evaluate=False)
    assert_same_weights(weights(tmp_path / "full/checkpoint.pt"), weights(tmp_path / "cut/checkpoint.pt"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_ds, tmp_path, monkeypatch):
    cfg = tiny_cfg()
    real = T.build_loss

    def poisoned(cfg_, model):
        fn = real(cfg_, model)
        count = {"n": 0}

        def loss(logits, y):
            count["n"] += 1
            out = fn(logits, y)
            return out * float("nan") if count["n"] == 8 else out  # epoch 2, step 2 (5 steps + 1 val call per epoch)
        return loss

    monkeypatch.setattr(T, "build_loss", poisoned)
    with pytest.raises(T.NonFiniteLoss, match="epoch 2, step 2"):
        train_run(cfg, tmp_path / "r", tiny_ds, evaluate=False)
    assert load_checkpoint(tmp_path / "r/checkpoint.pt")["train_state"]["epoch"] == 1
    assert issubclass(T.NonFiniteLoss, RunError)


def test_early_stopping_and_best_weights(tiny_ds, tmp_path):
    cfg = tiny_cfg(epochs=8, lr=1e-9, patience=2, schedule="constant")  # nothing improves
    out = train_run(cfg, tmp_path / "r", tiny_ds, evaluate=False)
    assert out["state"].epoch < 8
    best = load_checkpoint(tmp_path / "r/best.pt")
    assert best["epoch"] == out["state"].best_epoch


def test_run_folder_contract_and_overfit(tiny_ds, tmp_path):
    cfg = tiny_cfg(epochs=6, val_size=40)
    out = train_run(cfg, tmp_path / "r", tiny_ds)
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.json", "history.csv", "checkpoint.pt", "best.pt", "metrics.json", "predictions.npz",
            "figures"} <= names
    assert json.loads((tmp_path / "r/config.json").read_text())["model"] == "model1"
    assert out["metrics"]["accuracy"] > 0.5  # the synthetic classes are easy
    preds = np.load(tmp_path / "r/predictions.npz")
    assert preds["probs"].shape == (50, 10)
    with pytest.raises(RunError, match="already holds a run"):
        train_run(cfg, tmp_path / "r", tiny_ds)


# --------------------------------------------------------------------------- config reaches components


def test_augment_config_reaches_the_batches():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    assert T.build_augment(tiny_cfg()) is None
    assert torch.equal(T.build_augment(tiny_cfg(flip_h=1.0))(x, g), torch.flip(x, dims=[3]))
    assert torch.equal(T.build_augment(tiny_cfg(flip_v=1.0))(x, g), torch.flip(x, dims=[2]))


def test_loss_config_reaches_the_loss():
    model = build_model(tiny_cfg(model="cnn_svm"), 10, 28, torch.device("cpu"))
    logits, y = torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
    ce = T.build_loss(tiny_cfg(), model)(logits, y)
    smooth = T.build_loss(tiny_cfg(label_smoothing=0.2), model)(logits, y)
    svm = T.build_loss(tiny_cfg(loss="svm", svm_c=2.0, svm_penalty=0.0), model)(logits, y)
    assert ce != smooth
    hinge = torch.clamp(1 - (torch.nn.functional.one_hot(y, 10) * 2 - 1) * logits, min=0).square().mean()
    assert svm == pytest.approx(float(2.0 * hinge))


def test_model_args_reach_the_model():
    m = build_model(tiny_cfg(model_args={"batch_norm": True}), 10, 28, torch.device("cpu"))
    assert any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())


def test_splits_leave_test_untouched(tiny_ds):
    s = make_splits(tiny_ds, tiny_cfg(val_size=40), torch.device("cpu"))
    assert len(s.fit.train_y) == 160 and len(s.fit.val_y) == 40 and len(s.test_y) == 50


# --------------------------------------------------------------------------- bad config


@pytest.mark.parametrize("overrides,words", [
    ({"epochz": 3}, "unknown config key 'epochz' (did you mean 'epochs'?)"),
    ({"epochs": "many"}, "'epochs' must be int"),
    ({"epochs": -1}, "epochs must be >= 1"),
    ({"flip_h": 1.5}, "flip_h must be in [0, 1]"),
    ({"optimizer": "adagrad"}, "'optimizer' must be one of"),
])
def test_bad_config_is_a_config_error(overrides, words):
    with pytest.raises(ConfigError) as err:
        resolve_train_config("model1", overrides=overrides)
    assert words in str(err.value)


def test_preset_and_file_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 0.5\nepochs: 2\n")
    cfg = resolve_train_config("model1", preset="paper", config_file=f, overrides={"epochs": 7})
    assert (cfg.lr, cfg.epochs, cfg.optimizer) == (0.5, 7, "adam")
    assert resolve_train_config("cnn_svm").loss == "svm"  # the model's own training default


def test_set_and_yaml_read_off_as_a_choice_and_only_true_false_as_booleans(tmp_path):
    from cnnlstm.config import parse_set

    parsed = parse_set(["amp=off", "channels_last=true", "compile=false", "name=yes", "lr=1e-3"])
    assert parsed == {"amp": "off", "channels_last": True, "compile": False, "name": "yes", "lr": 1e-3}
    assert resolve_train_config("cnn_lstm", preset="fast", overrides=parse_set(["amp=off"])).amp == "off"
    f = tmp_path / "c.yaml"
    f.write_text("amp: off\nchannels_last: true\nlr: 1e-3\n")
    cfg = resolve_train_config("cnn_lstm", preset="fast", config_file=f)
    assert (cfg.amp, cfg.channels_last, cfg.lr) == ("off", True, 1e-3)
    assert parse_set(["lr=2E-4", "weight_decay=5.0e4", "momentum=.5e-1"]) == {
        "lr": 2e-4, "weight_decay": 5e4, "momentum": 0.05}


def test_yaml_config_is_loaded_safely(tmp_path):
    f = tmp_path / "evil.yaml"
    f.write_text("lr: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_train_config("model1", config_file=f)


def test_tensorboard_logs_every_epoch(tiny_ds, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'cnnlstm[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_run(tiny_cfg(epochs=2, tensorboard=True), tmp_path / "r", tiny_ds, evaluate=False)
    acc = EventAccumulator(str(tmp_path / "r/tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("val_acc")] == [1, 2]
    assert "train_loss" in acc.Tags()["scalars"]
