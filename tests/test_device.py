"""CPU runtime set-up: glibc's allocation thresholds are fixed before training starts, and
mixed precision is used where the device runs it natively."""

from __future__ import annotations

import platform

import pytest
import torch

from cnnlstm import device
from cnnlstm.config import TrainConfig, resolve_train_config
from cnnlstm.study import experiment
from cnnlstm.study.experiment import train_run

from conftest import record_conv_dtypes


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_thresholds_are_set():
    assert device.keep_cpu_allocations_warm() is True


def test_cpu_training_runtime_keeps_allocations_warm(monkeypatch):
    calls = []
    monkeypatch.setattr(experiment, "keep_cpu_allocations_warm", lambda: calls.append(1) or True)
    dev = experiment.configure_runtime(resolve_train_config("model1", overrides={"device": "cpu"}))
    assert dev.type == "cpu" and calls == [1]


@pytest.mark.parametrize("native", [True, False])
def test_autocast_dtype_per_device(monkeypatch, native):
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native)
    assert device.autocast_dtype("off", "cpu") is None
    assert device.autocast_dtype("off", "cuda") is None
    assert device.autocast_dtype("bf16", "cuda") is torch.bfloat16
    assert device.autocast_dtype("fp16", "cuda") is torch.float16
    assert device.autocast_dtype("fp16", "cpu") is None  # CPU fp16 autocast is not worth it
    assert device.autocast_dtype("bf16", "cpu") is (torch.bfloat16 if native else None)


def _conv_dtypes_during_training(monkeypatch, tmp_path, tiny_ds, amp: str) -> set:
    """Train one epoch on the CPU and return the dtypes the first convolution produced."""
    dtypes = record_conv_dtypes(monkeypatch)
    cfg = TrainConfig(model="cnn_lstm", epochs=1, batch_size=32, val_size=40, device="cpu", verify=False,
                      amp=amp, model_args={"channels": [8, 16]}).validate()
    train_run(cfg, tmp_path / amp, tiny_ds)
    return dtypes


def test_bf16_autocast_trains_on_a_cpu_with_native_bf16(monkeypatch, tmp_path, tiny_ds):
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert _conv_dtypes_during_training(monkeypatch, tmp_path, tiny_ds, "bf16") == {torch.bfloat16}
    assert _conv_dtypes_during_training(monkeypatch, tmp_path, tiny_ds, "off") == {torch.float32}


def test_bf16_falls_back_to_fp32_without_native_support(monkeypatch, tmp_path, tiny_ds, caplog):
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("INFO", logger="cnnlstm.device"):
        assert _conv_dtypes_during_training(monkeypatch, tmp_path, tiny_ds, "bf16") == {torch.float32}
    assert "no native bf16" in caplog.text
