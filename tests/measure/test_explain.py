"""Grad-CAM and the LSTM step attribution on every registered model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlstm.measure import explain
from cnnlstm.models import create_model, list_models

MODELS = [getattr(m, "name", m) for m in list_models()]


def build(name: str):
    torch.manual_seed(0)
    return create_model(name, num_classes=10, image_size=28).eval()


@pytest.mark.parametrize("name", MODELS)
def test_grad_cam_and_steps_have_the_right_shapes_and_are_finite(name):
    model = build(name)
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([1, 7])
    heat, steps = explain.explain_images(model, x, target, n_steps=4)
    assert heat.shape == (2, 28, 28) and np.isfinite(heat).all()
    assert heat.min() >= 0 and heat.max() <= 1
    reader = explain.lstm_reader(model)
    if reader is None:
        assert steps is None
        return
    grid = explain.sequence_grid(model, 28)
    n_steps = {"rows": grid[0], "cols": grid[1], "spatial": grid[0] * grid[1]}[model.seq_axis]
    assert steps.shape == (2, n_steps) and np.isfinite(steps).all()
    maps = explain.step_maps(steps, model.seq_axis, grid, 28)
    assert maps.shape == (2, 28, 28) and np.abs(maps).max() <= 1 + 1e-6


@pytest.mark.parametrize("name", [n for n in MODELS if n in ("model1_lstm", "ji_cnn_lstm", "cnn_lstm")])
def test_step_scores_add_up_to_the_logit_change(name):
    """Completeness of integrated gradients: the steps sum to logit(x) - logit(black image)."""
    model = build(name)
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 4, 9])
    steps = explain.step_attribution(explain.attribution_copy(model), x, target, n_steps=16)
    with torch.no_grad():
        black = torch.full_like(x, explain._black_value())
        change = (model(x) - model(black)).gather(1, target[:, None])[:, 0].numpy()
    np.testing.assert_allclose(steps.sum(axis=1), change, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("seq_axis, grid", [("rows", (7, 7)), ("cols", (4, 4)), ("spatial", (2, 3))])
def test_step_maps_cover_the_pixels_each_step_reads(seq_axis, grid):
    h, w = grid
    t = {"rows": h, "cols": w, "spatial": h * w}[seq_axis]
    scores = np.zeros((1, t), np.float32)
    scores[0, 0] = -2.0  # only the first step counts, against the class
    m = explain.step_maps(scores, seq_axis, grid, 28)
    assert m.min() == -1.0 and m.max() == 0.0
    lit = m[0] != 0
    if seq_axis == "rows":
        assert lit[: 28 // h].all() and not lit[28 // h + 1:].any()
    elif seq_axis == "cols":
        assert lit[:, : 28 // w].all() and not lit[:, 28 // w + 1:].any()
    else:
        assert lit[0, 0] and not lit[-1, -1]


def test_the_attribution_copy_leaves_the_model_alone():
    model = build("cnn_lstm")
    inplace = [m for m in model.modules() if getattr(m, "inplace", False)]
    clone = explain.attribution_copy(model)
    assert inplace and all(m.inplace for m in inplace)
    assert not any(getattr(m, "inplace", False) for m in clone.modules())
    assert not clone.training


def test_confident_mistakes_are_sorted_by_confidence():
    labels = np.array([2, 2, 2, 1, 2])
    probs = np.full((5, 3), 0.1)
    probs[[0, 1, 2, 3, 4], [0, 1, 2, 0, 0]] = [0.5, 0.9, 0.95, 0.99, 0.7]
    np.testing.assert_array_equal(explain.confident_mistakes(labels, probs, 2, 5), [1, 4, 0])
