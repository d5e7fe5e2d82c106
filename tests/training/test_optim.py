"""Tests for cnnlstm.training.optim: each optimizer name builds its optimizer; the LR schedules' shapes."""

from __future__ import annotations

import pytest
import torch

from cnnlstm.training import optim as T

from conftest import tiny_cfg


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW), ("nadam", torch.optim.NAdam),
                                      ("rmsprop", torch.optim.RMSprop)])
def test_optimizer_from_config(name, cls):
    cfg = tiny_cfg(optimizer=name, lr=0.05, weight_decay=0.01, momentum=0.7, nesterov=name == "sgd")
    opt = T.build_optimizer(torch.nn.Linear(2, 2).parameters(), cfg)
    group = opt.param_groups[0]
    assert isinstance(opt, cls) and group["lr"] == 0.05 and group["weight_decay"] == 0.01
    if name in ("sgd", "rmsprop"):
        assert group["momentum"] == 0.7


def test_schedules():
    spe = 10
    const = tiny_cfg(schedule="constant", warmup_epochs=1, epochs=4)
    assert T.lr_factor(0, 40, spe, const) == pytest.approx(0.1) and T.lr_factor(20, 40, spe, const) == 1
    step = tiny_cfg(schedule="step", step_epochs=2, gamma=0.5, epochs=4)
    assert [T.lr_factor(s, 40, spe, step) for s in (0, 19, 20, 39)] == [1, 1, 0.5, 0.5]
    cos = tiny_cfg(schedule="cosine", epochs=4)
    assert T.lr_factor(0, 40, spe, cos) == 1 and T.lr_factor(40, 40, spe, cos) == pytest.approx(0)
    one = tiny_cfg(schedule="onecycle", epochs=4)
    vals = [T.lr_factor(s, 40, spe, one) for s in range(40)]
    assert vals[0] == pytest.approx(0.04) and max(vals) == pytest.approx(1, abs=0.01) and vals[-1] < 0.01
