"""GPU paths: data and augmentation on the device, bf16 autocast, channels_last, torch.compile,
cuDNN's LSTM. Every test needs a CUDA GPU and skips without one (this build machine has none)."""

from __future__ import annotations

import math

import pytest
import torch

from cnnlstm.config import TrainConfig
from cnnlstm.fileio import read_history, read_json
from cnnlstm.models import create_model
from cnnlstm.runs import load_checkpoint
from cnnlstm.study.experiment import build_model, configure_runtime, make_splits, train_run
from cnnlstm.training import loop as T

from conftest import Stop, record_conv_dtypes, stop_after

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]


def gpu_cfg(**kw) -> TrainConfig:
    base = dict(model="model1", epochs=1, batch_size=32, val_size=40, lr=3e-3, optimizer="adam",
                schedule="constant", device="cuda", verify=False, seed=0)
    base.update(kw)
    return TrainConfig(**base).validate()


def finite_history(run_dir) -> list[dict]:
    history = read_history(run_dir / "history.csv")
    assert history and all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in history)
    return history


def test_dataset_lives_on_the_gpu_and_augmentation_runs_there(tiny_ds, tmp_path, monkeypatch):
    cfg = gpu_cfg(flip_h=0.5, shift=2, erase=0.5)
    splits = make_splits(tiny_ds, cfg, torch.device("cuda"))
    for t in (splits.fit.train_x, splits.fit.train_y, splits.fit.val_x, splits.test_x):
        assert t.device.type == "cuda"
    seen = []
    real = T.build_augment

    def spying_build_augment(c):
        augment = real(c)

        def apply(x, gen):
            out = augment(x, gen)
            seen.append((x.device.type, gen.device.type, out.device.type))
            return out

        return apply

    monkeypatch.setattr(T, "build_augment", spying_build_augment)
    train_run(cfg, tmp_path / "run", tiny_ds, evaluate=False)
    assert seen and set(seen) == {("cuda", "cuda", "cuda")}  # batch, Generator and result on the GPU
    finite_history(tmp_path / "run")


def test_resume_on_the_gpu_restores_the_device_generator(tiny_ds, tmp_path):
    cfg = gpu_cfg(epochs=2, flip_h=0.5)
    train_run(cfg, tmp_path / "full", tiny_ds, evaluate=False)

    with pytest.raises(Stop):
        train_run(cfg, tmp_path / "cut", tiny_ds, evaluate=False, on_epoch=stop_after(1))
    cut = load_checkpoint(tmp_path / "cut/checkpoint.pt")["rng"]["augment"]
    train_run(None, tmp_path / "cut", tiny_ds, resume=True, evaluate=False)
    full = load_checkpoint(tmp_path / "full/checkpoint.pt")["rng"]["augment"]
    resumed = load_checkpoint(tmp_path / "cut/checkpoint.pt")["rng"]["augment"]
    # The device generator's state (seed, offset) counts its draws: the resumed run drew exactly
    # what the uninterrupted one did. (Weights are only close, not equal: cuDNN autotuning may
    # choose other kernels after a restart.)
    assert torch.equal(full, resumed) and not torch.equal(cut, resumed)
    assert len(finite_history(tmp_path / "cut")) == 2


def test_bf16_autocast_trains_the_flagship(tiny_ds, tmp_path, monkeypatch):
    cfg = gpu_cfg(model="cnn_lstm", amp="bf16", epochs=2)
    dtypes = record_conv_dtypes(monkeypatch)
    train_run(cfg, tmp_path / "run", tiny_ds)
    assert dtypes == {torch.bfloat16}  # the convolutions really ran in bf16
    history = finite_history(tmp_path / "run")
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 1.5
    assert read_json(tmp_path / "run" / "metrics.json")["n_test"] == 50
    weights = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    assert all(w.dtype != torch.bfloat16 for w in weights.values())  # master weights stay fp32


def test_channels_last_model_trains(tiny_ds, tmp_path):
    cfg = gpu_cfg(model="cnn_lstm", channels_last=True, amp="bf16")
    model = build_model(cfg, 10, 28, configure_runtime(cfg))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    train_run(cfg, tmp_path / "run", tiny_ds, evaluate=False)
    finite_history(tmp_path / "run")


@pytest.mark.slow
def test_torch_compile_is_opt_in_and_runs(tiny_ds, tmp_path, monkeypatch):
    calls = []
    real_compile = torch.compile

    def counting_compile(model, *args, **kwargs):
        calls.append(type(model).__name__)
        return real_compile(model, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", counting_compile)
    train_run(gpu_cfg(), tmp_path / "plain", tiny_ds, evaluate=False)
    assert calls == []  # off by default
    train_run(gpu_cfg(compile=True), tmp_path / "compiled", tiny_ds)
    assert len(calls) == 1
    finite_history(tmp_path / "compiled")
    # the checkpoint holds the plain model's weights (no _orig_mod. prefix), so it loads uncompiled
    state = load_checkpoint(tmp_path / "compiled" / "checkpoint.pt")["model"]
    assert not any(k.startswith("_orig_mod.") for k in state)
    create_model("model1").load_state_dict(state)


def test_lstm_runs_on_cudnn(tiny_ds):
    assert torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
    cfg = gpu_cfg(model="cnn_lstm")
    model = build_model(cfg, 10, 28, configure_runtime(cfg)).train()
    lstm = next(m for m in model.modules() if isinstance(m, torch.nn.LSTM))
    assert all(p.is_cuda for p in lstm.parameters())
    x = torch.randn(8, 1, 28, 28, device="cuda")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(x).sum().backward()
    ops = {e.key for e in prof.key_averages()}
    assert "aten::_cudnn_rnn" in ops, sorted(o for o in ops if "rnn" in o or "lstm" in o)


def test_attributions_run_through_cudnns_lstm_and_match_the_cpu():
    """captum's Grad-CAM and integrated gradients need a backward pass through an eval-mode LSTM,
    which cuDNN refuses; explain turns cuDNN off around them. The maps must equal the CPU's."""
    from cnnlstm.measure import explain

    torch.manual_seed(0)
    model = create_model("cnn_lstm", num_classes=10, image_size=28).eval()
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 3, 5, 9])
    heat_cpu, steps_cpu = explain.explain_images(model, x, target, n_steps=8)
    heat_gpu, steps_gpu = explain.explain_images(model.cuda(), x.cuda(), target.cuda(), n_steps=8)
    assert torch.backends.cudnn.enabled  # restored after the attribution
    assert heat_gpu.shape == heat_cpu.shape and steps_gpu.shape == steps_cpu.shape
    # TF32 convolutions on the card: loose tolerances, still far below the maps' [0, 1] range
    assert abs(heat_gpu - heat_cpu).max() < 5e-2
    assert abs(steps_gpu - steps_cpu).max() < 5e-2 * max(1.0, float(abs(steps_cpu).max()))
