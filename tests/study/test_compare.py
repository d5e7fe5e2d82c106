"""cnnlstm compare: the matched comparison on known numbers, the same answer as the study's, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from cnnlstm.cli import main
from cnnlstm.errors import ConfigError
from cnnlstm.reporting.compare import SeedRun, match_pairs
from cnnlstm.study.compare import plan_compare
from cnnlstm.study.paper.tables import LSTM_FAMILY, control_comparisons

from conftest import assert_raw_numbers_recompute


def _runs(tmp_path, model, accs, config=None):
    """Seed runs with known accuracies and predictions that reach exactly those accuracies."""
    out = []
    labels = np.arange(200) % 10
    for seed, acc in enumerate(accs):
        folder = tmp_path / f"{model}-s{seed}"
        folder.mkdir()
        preds = labels.copy()
        wrong = int(round((1 - acc) * len(labels)))
        preds[:wrong] = (preds[:wrong] + 1) % 10
        np.savez(folder / "predictions.npz", labels=labels, preds=preds)
        out.append(SeedRun(seed, acc, folder, {"model": model, "seed": seed, "epochs": 3, **(config or {})}))
    return out


def test_sentence_and_interval_on_known_numbers(tmp_path):
    a = _runs(tmp_path, "mine", [0.90, 0.91, 0.905])
    b = _runs(tmp_path, "theirs", [0.88, 0.885, 0.885])
    (pair,) = match_pairs({"mine": a, "theirs": b}, [("mine", "theirs")])
    diffs = np.array([0.02, 0.025, 0.02])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
    s = pair.comparison.seeds
    assert s.n == 3 and s.paired
    assert s.low == pytest.approx(diffs.mean() - half) and s.high == pytest.approx(diffs.mean() + half)
    assert pair.claim().startswith("mine beat theirs by 2.17 points (95% CI")
    assert pair.differences == []
    row = pair.forest_row()
    assert row["diff"] == pytest.approx(100 * diffs.mean()) and row["low"] > 0


def test_no_difference_and_recipe_differences_are_said(tmp_path):
    a = _runs(tmp_path, "a", [0.90, 0.88, 0.91])
    b = _runs(tmp_path, "b", [0.89, 0.90, 0.895], config={"epochs": 5})
    (pair,) = match_pairs({"a": a, "b": b}, [("a", "b")])
    assert pair.claim().startswith("inconclusive at 3 seeds: a - b = ") and "allows a up to" in pair.claim()
    assert "not a matched comparison (epochs 3 vs 5)" in pair.claim()


def test_the_study_asks_the_same_function(tmp_path):
    h = _runs(tmp_path, "model1_lstm", [0.86, 0.87, 0.865])
    c = _runs(tmp_path, "model1", [0.85, 0.86, 0.87])
    models = {"model1_lstm": {"seed_runs": h}, "model1": {"seed_runs": c}}
    (study_pair,) = control_comparisons(models)
    (compare_pair,) = match_pairs({"model1_lstm": h, "model1": c}, [("model1_lstm", "model1")],
                                  family=LSTM_FAMILY)
    assert study_pair == compare_pair and study_pair.claim() == compare_pair.claim()


def test_plan_rejects_what_compare_sets_itself():
    with pytest.raises(ConfigError, match="at least two models"):
        plan_compare(["cnn_lstm"])
    with pytest.raises(ConfigError, match="seed is set by compare"):
        plan_compare(["model1", "model2"], common={"seed": 4})
    jobs = plan_compare(["model1", "model2"], seeds=2, preset="paper", common={"epochs": 1})
    assert [j.name for j in jobs] == ["model1-s0", "model1-s1", "model2-s0", "model2-s1"]
    assert {j.cfg.epochs for j in jobs} == {1} and {j.cfg.optimizer for j in jobs} == {"adam"}


def test_compare_end_to_end_and_resume(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "model1", "model2", "--seeds", "2", "--workers", "1", "--preset", "paper", "--set", "epochs=1",
            "--set", "val_size=40", "--threads", "1", "--data-dir", str(tiny_data_dir), "--no-verify",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "at 2 seeds" in printed or "beat" in printed
    assert "Holm-adjusted in 'every pair compared'" in printed
    report = (out / "report.md").read_text()
    assert "| model1 | model2 |" in report and "figures/forest.png" in report
    assert (out / "figures" / "forest.png").is_file()
    assert assert_raw_numbers_recompute(out) == 1  # model1 vs model2 at 2 paired seeds
    before = json.loads((out / "runs" / "model1-s0" / "metrics.json").read_text())
    assert main(argv) == 0  # everything done: nothing retrains, the report is rewritten
    after = json.loads((out / "runs" / "model1-s0" / "metrics.json").read_text())
    assert before == after


@pytest.mark.parametrize("hybrid, control, spec", [
    ("spoerer_bl", "spoerer_bk", "debris:10"),
    ("conv_lstm", "conv_lstm_ff", "pathfinder:6"),
])
def test_the_positive_control_compares_end_to_end_on_each_task(monkeypatch, tmp_path, capsys, hybrid, control, spec):
    """The positive control's command at tiny sizes: recurrence inside the stack vs its matched control."""
    from cnnlstm.data import synthetic

    monkeypatch.setattr(synthetic, "DEFAULT_SIZES", {"train": 80, "test": 200})
    out = tmp_path / "pc"
    assert main(["compare", hybrid, control, "--data", spec, "--seeds", "2", "--workers", "1", "--set", "epochs=1",
                 "--set", "batch_size=16", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    # one epoch on 64 images may leave both at chance alike: then the pair has no interval and no claim
    assert "Holm-adjusted in 'every pair compared'" in printed or "no interval and no claim" in printed, printed
    assert json.loads((out / "runs" / f"{hybrid}-s1" / "dataset.json").read_text())["name"] == spec
    from cnnlstm.reporting.raw import read_csv

    (row,) = read_csv(out / "comparisons.csv")
    assert (row["a"], row["b"], row["n"]) == (hybrid, control, "2")
    assert_raw_numbers_recompute(out)  # the difference (and any interval) from results.csv
    report = (out / "report.md").read_text()
    assert f"| {hybrid} | {control} |" in report
