"""A researcher's own model file: it joins the registry, trains, is compared and resumes; each broken
promise (the contract, a name clash, an edited or missing file) is one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from cnnlstm.cli import main
from cnnlstm.config import resolve_train_config
from cnnlstm.errors import ConfigError
from cnnlstm.models import registry, user
from cnnlstm.runs import load_checkpoint

from conftest import Stop, stop_after

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gru_hybrid.py"

BROKEN_FEATURES = """
import torch
from cnnlstm.models import ImageClassifier, register_model

class Maps(ImageClassifier):
    def __init__(self, num_classes=10, image_size=28, in_channels=1):
        super().__init__(num_classes, 8)
        self.conv = torch.nn.Conv2d(in_channels, 8, 3)

    def forward_features(self, x):
        return self.conv(x)  # (B, 8, H-2, W-2): not (B, D)

register_model("maps_not_features", "a broken contract")(Maps)
"""

NO_DEFAULT = """
from cnnlstm.models import register_model
from cnnlstm.models.cnn import TwoConvCNN

def builder(hidden, num_classes=10, image_size=28, in_channels=1):
    return TwoConvCNN(num_classes=num_classes, image_size=image_size, in_channels=in_channels)

register_model("no_default", "an argument without a default")(builder)
"""

NO_DATA_ARGS = """
from functools import partial
import torch
from cnnlstm.models import ImageClassifier, register_model

class Fixed(ImageClassifier):
    def __init__(self, num_classes=10):
        super().__init__(num_classes, 4)
        self.lin = torch.nn.Linear(784, 4)

    def forward_features(self, x):
        return self.lin(x.flatten(1))

register_model("fixed_size", "takes no image_size or in_channels")(Fixed)
"""

CLASH = """
from cnnlstm.models import register_model
from cnnlstm.models.cnn import TwoConvCNN

register_model("model1", "my own model1")(TwoConvCNN)
"""


@pytest.fixture(autouse=True)
def _forget_user_models():
    """The registry is per process: take back every model a test's file registered."""
    yield
    for name in registry.list_models():
        if registry.get_model_entry(name).source:
            registry.unregister(name)
    user._LOADED.clear()


@pytest.fixture
def gru_file(tmp_path) -> Path:
    """The docs' GRU hybrid example, copied so a test may edit or remove it."""
    path = tmp_path / "my_models" / "gru_hybrid.py"
    path.parent.mkdir()
    shutil.copy(EXAMPLE, path)
    return path


def _write(tmp_path, name, text) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _train_args(data_dir, out, *extra):
    return ["train", *extra, "--data-dir", str(data_dir), "--no-verify", "--device", "cpu", "--threads", "1",
            "--epochs", "1", "--batch-size", "32", "--val-size", "40", "--out", str(out), "--quiet"]


def test_the_example_registers_both_models_and_keeps_the_contract(gru_file):
    source = user.load_model_source(str(gru_file))
    assert source.models == ("gru_hybrid", "gru_control")
    assert source.path == str(gru_file) and len(source.sha256) == 64
    assert registry.get_model_entry("gru_hybrid").source == str(gru_file)
    assert user.load_model_source(str(gru_file)) is source  # imported once per process
    for size, channels in ((28, 1), (32, 3), (64, 3)):
        user.check_model_contract("gru_hybrid", image_size=size, in_channels=channels, num_classes=7)
    cfg = resolve_train_config("gru_hybrid", overrides={"model_file": str(gru_file)})
    assert cfg.model_file == str(gru_file)
    # a built-in model trained beside the file records no file
    assert resolve_train_config("model1", overrides={"model_file": str(gru_file)}).model_file == ""


def test_a_module_by_name(gru_file, monkeypatch):
    monkeypatch.syspath_prepend(str(gru_file.parent))
    cfg = resolve_train_config("gru_hybrid:gru_control")
    assert (cfg.model, cfg.model_file) == ("gru_control", "gru_hybrid")
    assert user.source_file("gru_hybrid") == gru_file


def test_a_module_imported_before_is_claimed(gru_file, monkeypatch):
    """A notebook that ran ``import gru_hybrid`` first: its models are still the module's."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(gru_file.parent))
    monkeypatch.delitem(sys.modules, "gru_hybrid", raising=False)
    importlib.import_module("gru_hybrid")
    assert registry.get_model_entry("gru_hybrid").source == ""
    source = user.load_model_source("gru_hybrid")
    assert source.models == ("gru_hybrid", "gru_control")
    assert registry.get_model_entry("gru_control").source == "gru_hybrid"
    monkeypatch.delitem(sys.modules, "gru_hybrid", raising=False)


def test_the_user_model_trains_resumes_exactly_and_records_its_file(gru_file, tiny_ds, tmp_path):
    from cnnlstm.study.experiment import train_run

    cfg = resolve_train_config("gru_hybrid", overrides=dict(
        model_file=str(gru_file), epochs=2, batch_size=32, val_size=40, device="cpu", verify=False, flip_h=0.5))
    train_run(cfg, tmp_path / "full", tiny_ds, evaluate=False)
    with pytest.raises(Stop):
        train_run(cfg, tmp_path / "cut", tiny_ds, evaluate=False, on_epoch=stop_after(1))
    train_run(None, tmp_path / "cut", tiny_ds, resume=True, evaluate=False)
    full, cut = (load_checkpoint(tmp_path / f"{r}/checkpoint.pt")["model"] for r in ("full", "cut"))
    assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)
    record = json.loads((tmp_path / "cut" / "model_file.json").read_text())
    assert record["path"] == str(gru_file) and record["models"] == ["gru_hybrid", "gru_control"]


def test_cli_train_evaluate_then_an_edited_or_missing_file_is_one_line(gru_file, tiny_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(tiny_data_dir, run, "gru_hybrid", "--model-file", str(gru_file))) == 0
    assert json.loads((run / "config.json").read_text())["model_file"] == str(gru_file)
    assert main(["evaluate", str(run), "--data-dir", str(tiny_data_dir), "--no-verify", "--quiet"]) == 0
    capsys.readouterr()

    gru_file.write_text(gru_file.read_text() + "\n# tuned the hidden size\n")
    assert main(["evaluate", str(run), "--data-dir", str(tiny_data_dir), "--no-verify"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has changed since the run trained" in err and str(gru_file) in err and "\n" not in err
    assert "Traceback" not in err

    gru_file.unlink()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is gone; restore it" in err and "\n" not in err


SILENT_ASSERT = """
import torch
from cnnlstm.models import ImageClassifier, register_model

class Picky(ImageClassifier):
    def __init__(self, num_classes=10, image_size=28, in_channels=1):
        super().__init__(num_classes, 4)
        self.lin = torch.nn.Linear(in_channels * image_size * image_size, 4)

    def forward_features(self, x):
        assert x.shape[1] == 3
        return self.lin(x.flatten(1))

register_model("picky", "asserts without a message")(Picky)
"""


@pytest.mark.parametrize("text, expected", [
    (SILENT_ASSERT, "failed: AssertionError"),
    (BROKEN_FEATURES, "forward_features must map (B, C, H, W) to (B, D)"),
    (NO_DEFAULT, "argument 'hidden' needs a default"),
    (NO_DATA_ARGS, "must take num_classes, image_size, in_channels"),
    (CLASH, "model 'model1' is already registered (a built-in model); rename the model in your file"),
    ("x = 1\n", "registers no model"),
    ("import no_such_module_here\n", "ModuleNotFoundError"),
])
def test_broken_files_are_one_line_and_register_nothing(tmp_path, capsys, text, expected):
    path = _write(tmp_path, "mine.py", text)
    before = registry.list_models()
    with pytest.raises(ConfigError) as exc:
        user.load_model_source(str(path))
    assert expected in str(exc.value) and "\n" not in str(exc.value)
    assert registry.list_models() == before and registry.get_model_entry("model1").source == ""
    assert main(["train", "model1", "--model-file", str(path), "--epochs", "1"]) == 2
    assert expected in capsys.readouterr().err


def test_a_missing_file_or_module_and_two_sources(tmp_path, gru_file):
    with pytest.raises(ConfigError, match="no such file"):
        user.load_model_source(str(tmp_path / "nope.py"))
    with pytest.raises(ConfigError, match="no such module"):
        resolve_train_config("no_such_pkg_xyz:net")
    with pytest.raises(ConfigError, match="give one source"):
        resolve_train_config("gru_hybrid:gru_control", overrides={"model_file": str(gru_file)})


def test_compare_trains_the_user_models_and_refuses_an_edited_file(gru_file, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "gru_hybrid", "gru_control", "--model-file", str(gru_file), "--seeds", "2", "--workers", "1",
            "--preset", "none", "--set", "epochs=1", "--set", "batch_size=32", "--set", "val_size=40",
            "--data-dir", str(tiny_data_dir), "--no-verify", "--device", "cpu", "--threads", "1",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    assert "gru_hybrid" in report and "gru_control" in report
    printed = capsys.readouterr().out
    assert "gru_hybrid" in printed and "at 2 seeds" in printed and "no measurable difference" not in printed
    for run in (out / "runs").iterdir():
        assert json.loads((run / "config.json").read_text())["model_file"] == str(gru_file)
    gru_file.write_text(gru_file.read_text().replace("hidden=64", "hidden=32"))
    registry.unregister("gru_hybrid"), registry.unregister("gru_control"), user._LOADED.clear()  # a new process
    assert main(args) == 2
    assert "has changed since the run trained" in capsys.readouterr().err


def test_reproduce_puts_the_user_models_beside_the_flagship(gru_file, tiny_data_dir, tmp_path):
    from cnnlstm import api

    out = tmp_path / "study"
    summary = api.reproduce("quick", out=out, seeds=2, models=("cnn_lstm", "cnn_twin", "gru_hybrid"), ablations=(),
                            tsne_samples=0, model_file=str(gru_file),
                            settings={"data_dir": str(tiny_data_dir), "verify": False, "device": "cpu",
                                      "threads": 1, "limit_train": 120})
    assert not summary["failed"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "cnn_lstm-s0", "cnn_lstm-s1", "cnn_twin-s0", "cnn_twin-s1", "gru_hybrid-s0", "gru_hybrid-s1"]
    flagship = json.loads((out / "runs" / "cnn_lstm-s0" / "config.json").read_text())
    mine = json.loads((out / "runs" / "gru_hybrid-s0" / "config.json").read_text())
    assert mine["epochs"] == flagship["epochs"] and mine["lr"] == flagship["lr"]  # the flagship's recipe
    report = (out / "report.md").read_text()
    assert "## Your models" in report and "figures/forest_yours.png" in report
    assert (out / "figures" / "forest_yours.png").is_file()
