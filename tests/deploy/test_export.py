"""``cnnlstm export``: TorchScript and ONNX files that agree with PyTorch, and their cards."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlstm.cli import main
from cnnlstm.config import TrainConfig
from cnnlstm.data import load_dataset, to_tensor
from cnnlstm.deploy import export as E
from cnnlstm.deploy.images import load_image
from cnnlstm.deploy.predict import load_predictor, predict_files
from cnnlstm.errors import RunError
from cnnlstm.study.experiment import evaluate_run, train_run

from conftest import synthetic_arrays, write_dataset

ARRAYS = synthetic_arrays()
MODELS = ("model1", "cnn_lstm")  # a plain CNN, and the flagship (BatchNorm + BiLSTM)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny run per model in MODELS, 2 epochs on the synthetic set, with metrics.json."""
    root = tmp_path_factory.mktemp("export")
    ds = load_dataset(write_dataset(root / "data", ARRAYS), verify=False, use_cache=False)
    out = {}
    for model in MODELS:
        cfg = TrainConfig(model=model, epochs=2, batch_size=32, val_size=40, verify=False, device="cpu")
        train_run(cfg, root / model, ds, evaluate=False)
        evaluate_run(root / model, ds, figures=False)
        out[model] = root / model
    return out


def test_probability_model_is_softmax_of_the_classifier(runs):
    run = load_predictor(runs["model1"])
    x = to_tensor(ARRAYS["test_images"][:4], norm=run.norm)
    with torch.no_grad():
        probs = E.ProbabilityModel(run.model).eval()(x)
        expected = torch.softmax(run.model(x), dim=1)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(1), torch.ones(4))


@pytest.mark.parametrize("fmt", E.FORMATS)
@pytest.mark.parametrize("model", MODELS)
def test_export_agrees_with_pytorch(runs, tmp_path, model, fmt):
    """On real preprocessed images, batch sizes 1 and 7 (tracing used 2): equal to 1e-5."""
    result = E.export_run(runs[model], fmt, out=tmp_path / f"exported {model}.{fmt}")
    assert result.path.is_file() and result.max_abs_diff <= E.TOLERANCE
    run = load_predictor(runs[model])
    module = E.ProbabilityModel(run.model).eval()
    for n in (1, 7):
        x = to_tensor(ARRAYS["test_images"][10:10 + n], norm=run.norm).numpy()
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        got = E.run_exported(result.path, fmt, x)
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fmt", E.FORMATS)
def test_card_documents_preprocessing_and_is_embedded(runs, tmp_path, fmt):
    result = E.export_run(runs["model1"], fmt, out=tmp_path / "m")
    card = json.loads(result.card.read_text())
    assert result.card == tmp_path / "m.json"
    norm = load_predictor(runs["model1"]).norm  # the training split's, recorded in dataset.json
    assert card["preprocessing"]["mean"] == norm.mean[0] and card["preprocessing"]["std"] == norm.std[0]
    assert card["input"]["shape"] == ["N", 1, 28, 28] and card["output"]["shape"] == ["N", 10]
    assert card["classes"] == [f"class {i}" for i in range(10)]  # from the run's metrics.json
    assert "border" in card["preprocessing"]["invert"] and card["check"]["max_abs_diff"] <= 1e-5
    if fmt == "torchscript":
        extra = {"cnnlstm.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in torch 2.13
            torch.jit.load(str(result.path), _extra_files=extra)
        embedded = json.loads(extra["cnnlstm.json"])
    else:
        import onnx

        proto = onnx.load(str(result.path))
        embedded = json.loads({p.key: p.value for p in proto.metadata_props}["cnnlstm"])
        assert [i.name for i in proto.graph.input] == ["images"]
        assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic batch axis
    assert embedded["classes"] == card["classes"] and embedded["preprocessing"] == card["preprocessing"]


def test_exported_model_on_a_photo_matches_cnnlstm_predict(runs, tmp_path):
    """Card recipe + exported file on a catalogue photo = what `cnnlstm predict` says."""
    raw = ARRAYS["test_images"][7]
    photo = Image.fromarray(255 - raw).resize((224, 224)).convert("RGB")
    canvas = Image.new("RGB", (300, 260), "white")
    canvas.paste(photo, (38, 18))
    canvas.save(tmp_path / "photo.jpg", quality=95)
    result = E.export_run(runs["cnn_lstm"], "torchscript", out=tmp_path / "m.pt")
    card = json.loads(result.card.read_text())
    pixels = load_image(tmp_path / "photo.jpg").astype(np.float32)
    x = ((pixels / 255 - card["preprocessing"]["mean"]) / card["preprocessing"]["std"])[None, None]
    probs = E.run_exported(result.path, "torchscript", x.astype(np.float32))[0]
    top = next(predict_files(load_predictor(runs["cnn_lstm"]), [tmp_path / "photo.jpg"], topk=3)).top
    assert [t["label"] for t in top] == np.argsort(-probs)[:3].tolist()
    np.testing.assert_allclose([t["prob"] for t in top], np.sort(probs)[::-1][:3], atol=1e-5)


def test_a_disagreeing_export_is_not_kept(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(E, "run_exported", lambda path, fmt, x: np.full((len(x), 10), 0.1, np.float32))
    with pytest.raises(RuntimeError, match="disagrees with PyTorch"):
        E.export_run(runs["model1"], "torchscript", out=tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists() and not (tmp_path / "bad.pt.json").exists()


def test_cli_export_writes_beside_the_run_by_default(runs, capsys):
    assert main(["export", str(runs["model1"]), "--format", "torchscript", "--checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    assert (runs["model1"] / "model.torchscript.pt").is_file() and "max |probability difference|" in out
    card = json.loads((runs["model1"] / "model.torchscript.pt.json").read_text())
    assert card["weights"] == "checkpoint.pt"


def test_cli_errors_are_one_line_exit_2(runs, tmp_path, capsys, monkeypatch):
    assert main(["export", str(tmp_path / "nope"), "--format", "onnx"]) == 2
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the onnx extra were not installed
    assert main(["export", str(runs["model1"]), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("cnnlstm export: error: ") for line in lines)
    assert "no such run folder" in lines[0] and "pip install 'cnnlstm[onnx]'" in lines[1]
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(SystemExit) as exc:
        main(["export", str(runs["model1"])])  # --format is required
    assert exc.value.code == 2


def test_missing_weights_are_a_run_error(runs, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.json", "dataset.json"):  # a run interrupted before its first epoch ended
        (partial / name).write_text((runs["model1"] / name).read_text())
    with pytest.raises(RunError, match="best.pt is missing"):
        E.export_run(partial, "torchscript")
