"""Your own data through the whole tool: image folders (grey and RGB, any size) and .npz files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data.test_folders import rgb_arrays, write_png_folder

from cnnlstm import api
from cnnlstm.cli import main
from cnnlstm.config import resolve_train_config
from cnnlstm.data import load_data, load_dataset
from cnnlstm.models import create_model, list_models
from cnnlstm.study.experiment import train_run

from conftest import synthetic_arrays, write_dataset


def _cfg(model: str, data: str, **kw):
    values = dict(data=data, device="cpu", threads=1, epochs=1, batch_size=16, val_size=10, verify=False,
                  eval_batch_size=64, schedule="constant")
    values.update(kw)
    return resolve_train_config(model, overrides=values)


@pytest.mark.parametrize("size", [32, 48])
def test_every_model_builds_and_steps_on_rgb(size):
    """1- and 3-channel inputs from 28 to 48 px: every registered model runs forward and backward."""
    for name in list_models():
        torch.manual_seed(0)
        model = create_model(name, image_size=size, in_channels=3, num_classes=4)
        x = torch.randn(2, 3, size, size)
        model(x).sum().backward()
        assert model(x).shape == (2, 4), name
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad), name


def test_png_folder_trains_like_the_idx_files(tmp_path):
    """The same images as IDX files or as PNGs: the same history, bit for bit."""
    arrays = synthetic_arrays(n_train=96, n_test=24)
    # class names that sort like their labels, and per-class files in index order, so that the
    # folder's order is the IDX order sorted by label: make the IDX order that already
    order = np.argsort(arrays["train_labels"], kind="stable")
    t_order = np.argsort(arrays["test_labels"], kind="stable")
    arrays = {"train_images": arrays["train_images"][order], "train_labels": arrays["train_labels"][order],
              "test_images": arrays["test_images"][t_order], "test_labels": arrays["test_labels"][t_order]}
    idx_ds = load_dataset(write_dataset(tmp_path / "idx", arrays), verify=False)
    folder_ds = load_data(str(write_png_folder(tmp_path / "png", arrays)))
    a = train_run(_cfg("model1", "fashion-mnist"), tmp_path / "a", idx_ds, evaluate=False)
    b = train_run(_cfg("model1", folder_ds.name), tmp_path / "b", folder_ds, evaluate=False)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in a["state"].history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in b["state"].history]


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    """A cnn_lstm run on a 32 px RGB folder, trained and evaluated through the CLI."""
    root = tmp_path_factory.mktemp("rgb")
    folder = write_png_folder(root / "folder", rgb_arrays(32, n_train=90, n_test=30),
                              classes=["red", "green", "blue"])
    run = root / "run"
    code = main(["train", "cnn_lstm", "--data", str(folder), "--epochs", "2", "--batch-size", "16",
                 "--val-size", "15", "--device", "cpu", "--threads", "1", "--flip-h", "0.5",
                 "--out", str(run), "--quiet"])
    assert code == 0
    return folder, run


def test_a_run_records_its_dataset(rgb_run):
    folder, run = rgb_run
    desc = json.loads((run / "dataset.json").read_text())
    assert desc["name"] == str(folder.resolve()) and desc["channels"] == 3 and desc["image_size"] == 32
    assert desc["classes"] == ["blue", "green", "red"] and len(desc["norm"]["mean"]) == 3
    assert json.loads((run / "config.json").read_text())["data"] == str(folder.resolve())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5  # the colour is the class: learnable in two epochs


def test_evaluate_embed_explain_predict_export_on_rgb(rgb_run, tmp_path, capsys):
    folder, run = rgb_run
    assert main(["evaluate", str(run), "--quiet"]) == 0
    assert main(["embed", str(run), "--samples", "30", "--perplexity", "5", "--quiet"]) == 0
    assert (run / "embed.json").exists() and (run / "figures" / "tsne.png").exists()
    assert main(["explain", str(run), "--per-class", "1", "--quiet"]) == 0
    assert main(["robustness", str(run), "--samples", "12", "--severity", "3", "--quiet"]) == 0
    assert json.loads((run / "robustness.json").read_text())["n_images"] == 12
    images = sorted((folder / "test" / "red").glob("*.png"))[:3]
    capsys.readouterr()
    assert main(["predict", str(run), *map(str, images), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["top"][0]["name"] for r in rows] == ["red"] * 3
    assert main(["export", str(run), "--format", "torchscript", "--quiet"]) == 0
    card = json.loads((run / "model.torchscript.pt.json").read_text())
    assert card["input"]["shape"] == ["N", 3, 32, 32] and card["preprocessing"]["mode"] == "RGB"


def test_a_run_refuses_other_data(rgb_run, tmp_path, capsys):
    folder, run = rgb_run
    assert main(["evaluate", str(run), "--data", "fashion-mnist", "--quiet"]) == 2
    assert "the run was trained on --data" in capsys.readouterr().err
    # the same folder name with one image changed: the recorded checksum catches it
    some = sorted((folder / "test" / "red").glob("*.png"))[0]
    original = some.read_bytes()
    try:
        from PIL import Image

        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(some)
        assert main(["evaluate", str(run), "--quiet"]) == 2
        assert "checksum differs" in capsys.readouterr().err
    finally:
        some.write_bytes(original)


def test_digits_train_without_horizontal_flips(tmp_path, caplog):
    arrays = synthetic_arrays(n_train=60, n_test=20)
    np.savez(tmp_path / "digits.npz", x_train=arrays["train_images"], y_train=arrays["train_labels"],
             x_test=arrays["test_images"], y_test=arrays["test_labels"], flip_preserves_labels=False)
    ds = load_data(str(tmp_path / "digits.npz"))
    result = api.train(_cfg("model1", ds.name, flip_h=0.5), out=tmp_path / "run", data=ds, evaluate=False)
    assert result is not None
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["flip_h"] == 0.0 and "does not preserve its labels" in caplog.text


def test_a_small_dataset_says_its_validation_split_shrank_and_records_it(tmp_path, caplog):
    """val_size 5,000 of 60 images: the run warns and metrics.json records what was used."""
    arrays = synthetic_arrays(n_train=60, n_test=20)
    np.savez(tmp_path / "small.npz", x_train=arrays["train_images"], y_train=arrays["train_labels"],
             x_test=arrays["test_images"], y_test=arrays["test_labels"])
    ds = load_data(str(tmp_path / "small.npz"))
    cfg = _cfg("model1", ds.name, val_size=5000)
    assert api.train(cfg, out=tmp_path / "run", data=ds) is not None
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_val"] == 12 and metrics["n_train"] == 48
    assert "validation split: 12 images, not the 5000 asked for" in caplog.text


def test_report_on_other_data_has_no_fashion_references(rgb_run, tmp_path):
    """Published numbers are Fashion-MNIST's: a report of runs on other data leaves them out."""
    folder, run = rgb_run
    assert main(["report", str(run), "--out", str(tmp_path / "rep.html"), "--quiet"]) == 0
    text = (tmp_path / "rep.md").read_text()
    assert "cnn_lstm" in text and "Published vs measured" not in text


def test_the_study_runs_on_an_image_folder(tmp_path, capsys):
    """`cnnlstm reproduce --data DIR`: the controls, statistics and analyses; no Fashion-MNIST tables."""
    folder = write_png_folder(tmp_path / "folder", rgb_arrays(32, n_train=90, n_test=30), classes=["r", "g", "b"])
    (folder / "dataset.toml").write_text("flip_preserves_labels = false\n")
    out = tmp_path / "study"
    argv = ["reproduce", "--data", str(folder), "--image-size", "28", "--models", "model1,model1_lstm,cnn_lstm",
            "--ablations", "none", "--seeds", "2", "--tsne-samples", "60", "--threads", "1", "--workers", "1",
            "--out", str(out),
            "--quiet"]
    assert main(argv) == 0
    md = (out / "report.md").read_text()
    assert "What the LSTM adds" in md and "model1_lstm" in md and "95% CI over seeds" in md
    assert "## Table I" not in md and "86.55" not in md and str(folder.resolve()) in md
    cfg = json.loads((out / "runs" / "cnn_lstm-s0" / "config.json").read_text())
    assert cfg["data"] == str(folder.resolve()) and cfg["image_size"] == 28 and cfg["flip_h"] == 0.0
    assert json.loads((out / "runs" / "cnn_lstm-s0" / "dataset.json").read_text())["channels"] == 3
    # the sizes are those of the models as trained on this folder (RGB, 3 classes), not Fashion-MNIST's
    sizes = {m: create_model(m, image_size=28, in_channels=3, num_classes=3,
                             **json.loads((out / "runs" / f"{m}-s0" / "config.json").read_text())["model_args"])
             for m in ("model1_lstm", "model1")}
    params = [sum(p.numel() for p in sizes[m].parameters()) for m in ("model1_lstm", "model1")]
    assert f"| {params[0]:,} / {params[1]:,} |" in md
    assert "Exploring Fashion-MNIST" not in md and f"## Exploring {folder.resolve()}" in md
    metrics = out / "runs" / "cnn_lstm-s0" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    assert main(argv) == 0  # resumes: the planned configs match what the folders hold, nothing retrains
    assert metrics.stat().st_mtime_ns == before
