"""Calibration and dedup keys of evaluate, the robustness and explain commands, the explore audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnlstm.cli import main
from cnnlstm.config import TrainConfig
from cnnlstm.data import load_dataset
from cnnlstm.study.experiment import train_run

from conftest import synthetic_arrays, write_dataset

TRUST_KEYS = {"ece", "mce", "brier", "nll", "temperature", "ece_temperature", "mce_temperature",
              "brier_temperature", "nll_temperature", "accuracy_dedup", "n_test_dedup", "n_test_overlap"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny dataset whose test set repeats two training images, and two 1-epoch runs on it."""
    root = tmp_path_factory.mktemp("trust")
    arrays = synthetic_arrays()
    arrays["test_images"][3] = arrays["train_images"][0]
    arrays["test_labels"][3] = arrays["train_labels"][0]
    arrays["test_images"][7] = arrays["train_images"][1]
    arrays["test_labels"][7] = arrays["train_labels"][1]
    data_dir = write_dataset(root / "tiny", arrays)
    ds = load_dataset(data_dir, verify=False, use_cache=False)
    out = {"ds": ds, "data_dir": data_dir}
    for name in ("model1_lstm", "model1"):
        cfg = TrainConfig(model=name, epochs=1, batch_size=32, val_size=40, verify=False, device="cpu", seed=0,
                          data_dir=str(data_dir))
        train_run(cfg, root / name, ds)
        out[name] = root / name
    return out


@pytest.fixture
def copy_run(runs, tmp_path):
    def copy(name):
        return Path(shutil.copytree(runs[name], tmp_path / name))
    return copy


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc, err, command):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cnnlstm {command}: error: ")
    return lines[0]


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_adds_calibration_and_dedup_accuracy(runs, copy_run, capsys):
    run = copy_run("model1_lstm")
    rc, out, _ = cli(capsys, "evaluate", run)
    assert rc == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert TRUST_KEYS <= set(metrics)
    assert metrics["n_val"] == 40 and metrics["temperature"] > 0
    assert metrics["n_test_overlap"] == 2 and metrics["n_test_dedup"] == 48
    preds = np.load(run / "predictions.npz")["preds"]
    labels = runs["ds"].test_labels.astype(np.int64)
    keep = np.ones(50, bool)
    keep[[3, 7]] = False
    assert metrics["accuracy_dedup"] == pytest.approx((preds[keep] == labels[keep]).mean())
    assert (run / "figures" / "reliability.png").stat().st_size > 1000
    assert "calibration: ECE" in out and "duplicate training images" in out


# ----------------------------------------------------------------------------- robustness


def test_robustness_writes_a_deterministic_record(copy_run, capsys):
    run = copy_run("model1_lstm")
    argv = ("robustness", run, "--samples", "20", "--severity", "1,3", "--corruptions", "rotate", "inverse",
            "--seed", "4")
    rc, out, _ = cli(capsys, *argv)
    assert rc == 0
    first = json.loads((run / "robustness.json").read_text())
    assert set(first["accuracy"]) == {"rotate", "inverse"}
    assert set(first["accuracy"]["rotate"]) == {"1", "3"} and set(first["accuracy"]["inverse"]) == {"n/a"}
    assert first["n_images"] == 20 and len(first["indices"]) == 20 and first["mce"] is None
    assert (run / "figures" / "robustness.png").exists()
    assert "mean corrupted" in out
    assert cli(capsys, *argv)[0] == 0
    again = json.loads((run / "robustness.json").read_text())
    assert again["accuracy"] == first["accuracy"] and again["clean_accuracy"] == first["clean_accuracy"]


def test_robustness_against_a_baseline(copy_run, capsys):
    run, base = copy_run("model1_lstm"), copy_run("model1")
    rc, out, _ = cli(capsys, "robustness", run, "--baseline", base, "--samples", "16", "--severity", "2",
                     "--corruptions", "shot_noise", "flip_v")
    assert rc == 0
    record = json.loads((run / "robustness.json").read_text())
    baseline = json.loads((base / "robustness.json").read_text())  # evaluated on the same images first
    assert record["indices"] == baseline["indices"]
    assert record["baseline"]["model"] == "model1"
    for name in ("shot_noise", "flip_v"):
        key = "2" if name == "shot_noise" else "n/a"
        e, b = 1 - record["accuracy"][name][key], 1 - baseline["accuracy"][name][key]
        assert record["ce"][name] == (pytest.approx(e / b) if b > 0 else None)
    assert "mCE" in out or record["mce"] is None


def test_compare_with_itself_is_one_and_refuses_other_images():
    from cnnlstm.errors import RunError
    from cnnlstm.measure.robustness import compare

    rec = {"run": "a", "model": "m", "n_images": 10, "seed": 0, "indices": None, "clean_accuracy": 0.9,
           "accuracy": {"rotate": {"1": 0.8, "2": 0.6}, "inverse": {"n/a": 0.3}}}
    same = compare(rec, rec)
    assert same["ce"] == {"rotate": pytest.approx(1.0), "inverse": pytest.approx(1.0)}
    assert same["mce"] == pytest.approx(1.0) and same["relative_mce"] == pytest.approx(1.0)
    half = dict(rec, accuracy={"rotate": {"1": 0.9, "2": 0.8}, "inverse": {"n/a": 0.65}})
    assert compare(half, rec)["ce"]["rotate"] == pytest.approx(0.3 / 0.6)
    with pytest.raises(RunError, match="other test images"):
        compare(dict(rec, seed=1), rec)


@pytest.mark.parametrize("extra, message", [
    (("--severity", "6"), "--severity must be an integer from 1 to 5"),
    (("--severity", "x"), "--severity takes integers"),
    (("--severity", "3-1"), "is empty"),
    (("--corruptions", "fog"), "unknown corruption 'fog'"),
    (("--samples", "0"), "samples must be >= 1, got 0"),
])
def test_robustness_user_errors_are_one_line(runs, capsys, extra, message):
    rc, _, err = cli(capsys, "robustness", runs["model1"], *extra)
    assert message in one_line_error(rc, err, "robustness")


def test_robustness_and_explain_refuse_a_bad_run_folder(tmp_path, capsys):
    for command in ("robustness", "explain"):
        rc, _, err = cli(capsys, command, tmp_path / "nope")
        assert "no such run folder" in one_line_error(rc, err, command)
        (tmp_path / "empty").mkdir(exist_ok=True)
        rc, _, err = cli(capsys, command, tmp_path / "empty")
        assert "config.json is missing" in one_line_error(rc, err, command)


def test_robustness_baseline_must_be_a_run(runs, tmp_path, capsys):
    rc, _, err = cli(capsys, "robustness", runs["model1"], "--baseline", tmp_path / "nope")
    assert "no such run folder" in one_line_error(rc, err, "robustness")


# ----------------------------------------------------------------------------- explain


def test_explain_an_lstm_run(copy_run, capsys):
    run = copy_run("model1_lstm")
    rc, out, _ = cli(capsys, "explain", run, "--per-class", "2", "--mistakes", "3")
    assert rc == 0
    record = json.loads((run / "explain.json").read_text())
    assert record["steps"]["seq_axis"] == "rows" and record["steps"]["n_steps"] == 4
    assert len(record["per_class"]) == 20 and all(len(r["steps"]) == 4 for r in record["per_class"])
    assert len(record["mistakes"]) <= 3
    assert all(r["label"] == record["worst_class"] and r["pred"] != r["label"] for r in record["mistakes"])
    assert len(record["step_profile"]["all"]) == 4
    for name in ("explain.png", "explain_mistakes.png"):
        assert (run / "figures" / name).stat().st_size > 1000
    assert "step attribution over 4 LSTM steps (one per row of the feature map)" in out


def test_explain_a_cnn_says_there_are_no_steps(copy_run, capsys):
    run = copy_run("model1")
    rc, out, _ = cli(capsys, "explain", run, "--per-class", "1", "--mistakes", "0")
    assert rc == 0
    record = json.loads((run / "explain.json").read_text())
    assert "no LSTM" in record["steps"]["absent"]
    assert record["step_profile"] is None and record["per_class"][0]["steps"] is None
    assert "has no LSTM" in out


def test_explain_per_class_zero_is_a_one_line_error(runs, capsys):
    rc, _, err = cli(capsys, "explain", runs["model1"], "--per-class", "0")
    assert "per_class must be >= 1, got 0" in one_line_error(rc, err, "explain")


def test_help_has_examples(capsys):
    for command in ("robustness", "explain"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert f"cnnlstm {command} runs/" in capsys.readouterr().out


# ----------------------------------------------------------------------------- explore audit


def test_explore_lists_the_duplicates(runs, tmp_path, capsys):
    out_dir = tmp_path / "explore"
    rc, out, _ = cli(capsys, "explore", "--tsne-samples", "0", "--data-dir", runs["data_dir"], "--no-verify",
                     "--out", out_dir)
    assert rc == 0
    stats = json.loads((out_dir / "stats.json").read_text())
    assert stats["audit"]["exact"]["train_test"] == [[0, 3], [1, 7]]
    assert stats["audit"]["test_overlapping_train"] == [3, 7]
    assert (out_dir / "figures" / "duplicates.png").exists()
    assert "2 train/test pairs" in out


# ----------------------------------------------------------------------------- report


def test_the_run_report_shows_calibration_robustness_and_explanations(copy_run, capsys):
    run = copy_run("model1_lstm")
    assert cli(capsys, "-q", "robustness", run, "--samples", "12", "--severity", "1",
               "--corruptions", "contrast", "turn_left")[0] == 0
    assert cli(capsys, "-q", "explain", run, "--per-class", "1", "--mistakes", "2")[0] == 0
    assert cli(capsys, "-q", "report", run)[0] == 0
    html = (run / "report.html").read_text()
    md = (run / "report.md").read_text()
    for heading in ("Calibration", "Robustness to corruptions", "Where the model looks"):
        assert f">{heading}<" in html and f"# {heading}" in md
    for name in ("reliability.png", "robustness.png", "explain.png", "explain_mistakes.png"):
        assert f"figures/{name}" in md
    assert "after temperature scaling" in html and "mean share of |attribution| per LSTM step" in html


def test_robustness_section_compares_runs():
    from cnnlstm.reporting.page import Table
    from cnnlstm.reporting.trust import robustness_section

    base = {"n_images": 10, "clean_accuracy": 0.9, "mean_corrupted_accuracy": 0.6,
            "mean_accuracy": {"rotate": 0.5, "inverse": 0.7}, "accuracy": {"rotate": {}, "inverse": {}}}
    other = dict(base, mce=0.8, relative_mce=0.9, baseline={"model": "model1"})
    section = robustness_section([("model1", base), ("cnn_lstm", other)])
    summary, per = [b for b in section.blocks if isinstance(b, Table)]
    assert [r["model"] for r in summary.rows] == ["model1", "cnn_lstm"]
    assert summary.rows[0]["drop"] == "30.00" and summary.rows[1]["mce"] == 0.8
    assert per.rows[1]["rotate"] == "50.0"
    assert robustness_section([]) is None
