"""The shipped presets: each resolves for every kind of model, and the `gpu` preset is the CUDA recipe
(bf16, channels_last, a wider two-convolution stem) whose flagship and twin stay parameter-matched."""

from __future__ import annotations

import pytest

from cnnlstm.config import TrainConfig, preset_names, resolve_train_config
from cnnlstm.models import create_model


@pytest.mark.parametrize("preset", preset_names())
@pytest.mark.parametrize("model", ["cnn_lstm", "model1", "cnn_svm"])
def test_every_shipped_preset_resolves(preset, model):
    cfg = resolve_train_config(model, preset=preset)
    assert isinstance(cfg, TrainConfig) and cfg.model == model


def test_gpu_preset_is_the_cuda_recipe_and_its_model_builds():
    assert "gpu" in preset_names()
    cfg = resolve_train_config("cnn_lstm", preset="gpu", overrides={"seed": 3})
    assert (cfg.amp, cfg.channels_last, cfg.batch_size, cfg.seed) == ("bf16", True, 512, 3)
    assert cfg.model_args == {"channels": [64, 128], "stem_depth": 2}
    flagship = create_model("cnn_lstm", **cfg.model_args)  # the model arguments exist
    # the no-LSTM twin gets the same stem under this preset, and stays parameter-matched
    twin_cfg = resolve_train_config("cnn_twin", preset="gpu")
    twin = create_model("cnn_twin", **twin_cfg.model_args)
    sizes = [sum(p.numel() for p in m.parameters()) for m in (flagship, twin)]
    assert abs(sizes[0] - sizes[1]) / sizes[0] < 0.01, sizes
    assert resolve_train_config("cnn_svm", preset="gpu").label_smoothing == 0.0
