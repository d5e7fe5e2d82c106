"""CPU runtime set-up: glibc's allocation thresholds are fixed before training starts."""

from __future__ import annotations

import platform

import pytest

from cnnlstm import device, experiment
from cnnlstm.config import resolve_train_config


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_thresholds_are_set():
    assert device.keep_cpu_allocations_warm() is True


def test_cpu_training_runtime_keeps_allocations_warm(monkeypatch):
    calls = []
    monkeypatch.setattr(experiment, "keep_cpu_allocations_warm", lambda: calls.append(1) or True)
    dev = experiment.configure_runtime(resolve_train_config("model1", overrides={"device": "cpu"}))
    assert dev.type == "cpu" and calls == [1]
