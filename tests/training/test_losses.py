"""Behaviour of the training losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnlstm.errors import ConfigError
from cnnlstm.models import create_model
from cnnlstm.training.losses import make_loss


def test_svm_loss_matches_a_hand_computed_value() -> None:
    logits = torch.tensor([[2.0, -0.5, 0.5], [0.0, 0.3, -2.0]])
    targets = torch.tensor([0, 2])
    w = torch.tensor([[1.0, -1.0], [2.0, 0.0], [0.0, 3.0]])
    # y = [[+1, -1, -1], [-1, -1, +1]]; max(0, 1 - y * out):
    #   row 0: max(0, 1 - 2) = 0, 1 - 0.5 = 0.5, 1 + 0.5 = 1.5
    #   row 1: 1 + 0 = 1, 1 + 0.3 = 1.3, 1 + 2 = 3
    hinge = (0 + 0.5**2 + 1.5**2 + 1**2 + 1.3**2 + 3**2) / 6
    penalty = (1 + 1 + 4 + 0 + 0 + 9) / 6
    loss = make_loss("svm", svm_c=2.0, svm_penalty=0.5)(logits, targets, head_weight=w)
    assert loss.item() == pytest.approx(0.5 * penalty + 2.0 * hinge)
    no_penalty = make_loss("svm", svm_penalty=0.0)(logits, targets)
    assert no_penalty.item() == pytest.approx(hinge)


def test_svm_penalty_needs_the_head_weight_and_gets_gradients() -> None:
    model = create_model("model2")
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    loss_fn = make_loss("svm")
    with pytest.raises(ValueError, match="head_weight"):
        loss_fn(model(x), y)
    loss_fn(model(x), y, head_weight=model.head_weight).backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0


def test_nll_is_cross_entropy_and_ignores_head_weight() -> None:
    logits, targets = torch.randn(8, 10, generator=torch.Generator().manual_seed(0)), torch.arange(8)
    ce = make_loss("cross_entropy")(logits, targets)
    assert torch.equal(make_loss("nll")(logits, targets, head_weight=torch.ones(10, 3)), ce)
    torch.testing.assert_close(ce, F.nll_loss(F.log_softmax(logits, dim=1), targets))


def test_label_smoothing_reaches_the_loss() -> None:
    logits, targets = torch.randn(8, 10, generator=torch.Generator().manual_seed(1)), torch.arange(8)
    smoothed = make_loss("cross_entropy", label_smoothing=0.1)(logits, targets)
    expected = 0.9 * F.cross_entropy(logits, targets) - 0.1 * F.log_softmax(logits, dim=1).mean(dim=1).mean()
    torch.testing.assert_close(smoothed, expected)
    assert not torch.equal(smoothed, make_loss("cross_entropy")(logits, targets))


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("hinge", {}, "unknown loss 'hinge'; valid: cross_entropy, nll, svm"),
        ("cross_entropy", {"label_smoothing": 1.0}, "label_smoothing"),
        ("svm", {"label_smoothing": 0.1}, "cross-entropy only"),
        ("svm", {"svm_c": 0.0}, "svm_c"),
        ("svm", {"svm_penalty": -1.0}, "svm_penalty"),
    ],
)
def test_bad_loss_settings_are_config_errors(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_loss(name, **kwargs)
