"""The fp32 speed benchmarks' own tools: the cheaper-stem lever models and the AVX2 cap.

Both run in a child process: the lever models register themselves in the model registry, and the
cap works through environment variables read when torch loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LEVERS = """
import json, sys, torch
sys.path.insert(0, "benchmarks")
import lever_models
from torch import nn
from cnnlstm.models import create_model, model_summary
out = {}
for name in ("cnn_lstm_s2", "cnn_lstm_s4"):
    model = create_model(name, channels=[16, 32]).eval()
    with torch.no_grad():
        logits = model(torch.zeros(3, 1, 28, 28))
        fmap = model.stem(torch.zeros(1, 1, 28, 28))
    first_block = list(model.stem)[:3]
    out[name] = {"logits": list(logits.shape), "fmap": list(fmap.shape[1:]),
                 "pools": sum(isinstance(m, nn.MaxPool2d) for m in model.stem),
                 "first_stride": first_block[0].stride[0],
                 "mflops": model_summary(name, channels=[16, 32])["mflops"]}
out["flagship_mflops"] = model_summary("cnn_lstm", channels=[16, 32])["mflops"]
print(json.dumps(out))
"""


def run_python(code: str, env: dict | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_lever_models_downsample_early_to_the_flagships_map_and_cost_less():
    out = json.loads(run_python(LEVERS).strip().splitlines()[-1])
    s2, s4 = out["cnn_lstm_s2"], out["cnn_lstm_s4"]
    for model in (s2, s4):
        assert model["logits"] == [3, 10]
        assert model["fmap"] == [32, 7, 7]  # the LSTM reads 7 rows, as the flagship's does
        assert model["first_stride"] == 2
        assert model["mflops"] < out["flagship_mflops"]
    assert (s2["pools"], s4["pools"]) == (1, 0)  # s2: the second block still pools; s4: neither does
    assert s4["mflops"] < s2["mflops"]


def test_as_avx2_caps_torch_and_turns_native_bf16_off():
    probe = ("import torch; from cnnlstm.device import cpu_has_native_bf16; "
             "print(torch.backends.cpu.get_cpu_capability(), cpu_has_native_bf16())")
    done = subprocess.run([str(ROOT / "benchmarks" / "as_avx2.sh"), sys.executable, "-c", probe], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    capability, bf16 = done.stdout.split()
    assert capability in ("AVX2", "DEFAULT")  # DEFAULT on a CPU without AVX2 at all; never AVX512
    assert bf16 == "False"


def test_as_avx2_without_a_command_is_a_usage_error():
    done = subprocess.run([str(ROOT / "benchmarks" / "as_avx2.sh")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("usage:")
