"""The GPU check's CPU-side parts: the `gpu` preset loads, the check script parses, and its summary
turns a check's outputs into the right figures. (The check itself needs a GPU or a minutes-long
dry run: `GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh`.)"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cnnlstm.config import TrainConfig, preset_names, resolve_train_config
from cnnlstm.models import create_model

ROOT = Path(__file__).resolve().parents[1]


def load_summary_module():
    spec = importlib.util.spec_from_file_location("gpu_summary", ROOT / "benchmarks" / "gpu_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_check_scripts_parse():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    for script in ("gpu_check.sh", "gpu_carry.sh"):
        subprocess.run([bash, "-n", str(ROOT / "benchmarks" / script)], check=True)
    out = subprocess.run([bash, str(ROOT / "benchmarks" / "gpu_check.sh"), "--help"], check=True,
                         capture_output=True, text=True).stdout
    assert "GPU_CHECK_DRY" in out and "GPU_CHECK_BUDGET" in out


def write_run(folder: Path, acc: float, epoch_seconds: list[float], val_accs: list[float]) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"val_size": 5000, "limit_train": 0, "epochs": 3,
                                                    "batch_size": 512, "amp": "bf16"}))
    (folder / "metrics.json").write_text(json.dumps({"accuracy": acc, "n_test": 10000, "best_epoch": 3}))
    rows = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds"]
    rows += [f"{i + 1},0.5,0.9,0.3,{v},0.001,{s}" for i, (s, v) in enumerate(zip(epoch_seconds, val_accs))]
    (folder / "history.csv").write_text("\n".join(rows) + "\n")


def test_summary_collects_the_figures(tmp_path):
    gs = load_summary_module()
    work = tmp_path / "work"
    (work / "recipe").mkdir(parents=True)
    (work / "logs").mkdir()
    (work / "steps.tsv").write_text("step\tstatus\trc\tseconds\tlimit_s\n"
                                    "tests\tok\t0\t40\t119\nrecipe\tok\t0\t90\t300\n"
                                    "paper\ttimeout\t124\t100\t100\npaper\tok\t0\t50\t200\n")
    (work / "junit-cuda.xml").write_text(
        '<testsuites><testsuite><testcase classname="t" name="a" time="1.5"/>'
        '<testcase classname="t" name="b" time="0.5"><failure message="x"/></testcase>'
        '<testcase classname="t" name="c" time="0"><skipped/></testcase></testsuite></testsuites>')
    (work / "recipe" / "seeds.tsv").write_text(
        "seed\ttrain_rc\ttrain_wall_s\teval_rc\teval_wall_s\tflags\n0\t0\t30\t0\t5\t\n1\t0\t31\t0\t5\t\n")
    # seed 0: 3 epochs of 2, 1, 1 s; validation 0.90, 0.93, 0.95 -> 92% after 3 s, 94.5% after 4 s
    write_run(work / "recipe" / "cnn_lstm-gpu-s0", 0.95, [2.0, 1.0, 1.0], [0.90, 0.93, 0.95])
    write_run(work / "recipe" / "cnn_lstm-gpu-s1", 0.93, [2.0, 1.0, 1.0], [0.90, 0.91, 0.92])
    study = work / "paper"
    (study / "runs" / "model1-s0").mkdir(parents=True)
    (study / "runs" / "model1-s0" / "metrics.json").write_text("{}")
    (work / "logs" / "paper.log").write_text("INFO [1/51] exploring\nINFO [2/51] baseline model1-s0\n")

    data = gs.collect(work)
    assert data["tests"]["passed"] == 1 and data["tests"]["failed"] == 1 and data["tests"]["skipped"] == 1
    s0, s1 = data["recipe"]["seeds"]
    assert s0["train_seconds"] == pytest.approx(4.0) and s0["val_0.92"] == pytest.approx(3.0)
    assert s0["val_0.945"] == pytest.approx(4.0) and s1["val_0.945"] is None
    assert s0["images_per_s"] == pytest.approx(55000 / 1.0)  # the median epoch, not the warm-up one
    mean, sd = data["recipe"]["test_acc"]
    assert mean == pytest.approx(0.94) and sd == pytest.approx(0.0141421, rel=1e-4)
    assert data["paper"]["planned_jobs"] == 51 and data["paper"]["jobs_started"] == 2
    assert data["paper"]["done"]["train"] == 1 and data["paper"]["done"]["explore"] == 0
    assert not data["paper"]["completed"]

    text = gs.render(data, budget=540, dry=False)
    assert "**1 passed, 1 failed, 0 errors, 1 skipped**" in text and "`t::b`" in text
    assert "**94.00 ± 1.41% test accuracy**" in text
    assert "**not met**" in text  # 2 seeds, and one of them below 95%
    assert "wall time 150 s over 2 command(s)" in text and "started: 2 of 51 planned" in text
    assert "DRY RUN" not in text and "DRY RUN" in gs.render(data, budget=300, dry=True)
