"""Statistics in `cnnlstm report`: intervals on every difference, "beat" only when they exclude 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlstm.fileio import write_history, write_json
from cnnlstm.measure.metrics import compute_metrics
from cnnlstm.reporting import build_report

N = 2000  # crafted test images


def crafted_run(folder: Path, model: str, seed: int, accuracy: float, lr: float = 0.002) -> Path:
    """A finished run whose test predictions have exactly ``accuracy`` (no training)."""
    classes = [f"class {i}" for i in range(10)]
    labels = np.arange(N) % 10
    right = np.zeros(N, bool)
    right[np.random.default_rng(seed).permutation(N)[: round(accuracy * N)]] = True
    preds = np.where(right, labels, (labels + 1) % 10)
    probs = np.full((N, 10), 0.02)
    probs[np.arange(N), preds] = 0.82
    metrics = compute_metrics(labels, probs, classes)
    assert abs(metrics["accuracy"] - accuracy) < 1e-9
    metrics.update(checkpoint="best", tta=False, epochs_trained=2, best_epoch=2, train_seconds=3.0,
                   eval_seconds=0.1, dataset="/data/x", verified=True)
    write_json(folder / "config.json", {"model": model, "epochs": 2, "seed": seed, "lr": lr})
    write_json(folder / "metrics.json", metrics)
    write_history(folder / "history.csv", [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0,
                                            "val_acc": 0.5, "lr": lr, "seconds": 1.0}])
    np.savez(folder / "predictions.npz", labels=labels, preds=preds, probs=probs)
    return folder


def _report(tmp_path: Path, spec: dict[str, list[float]], lr: dict[str, float] | None = None) -> str:
    folders = [crafted_run(tmp_path / f"{m}-s{s}", m, s, acc, (lr or {}).get(m, 0.002))
               for m, accs in spec.items() for s, acc in enumerate(accs)]
    build_report(folders, tmp_path / "report.html")
    return (tmp_path / "report.md").read_text()


def _differences(md: str) -> str:
    return md.split("## Differences between experiments", 1)[1].split("\n## ", 1)[0]


def test_clearly_separated_models_get_a_beat_sentence_with_the_interval(tmp_path):
    text = _differences(_report(tmp_path, {"model1_lstm": [0.910, 0.915, 0.905], "model1": [0.860, 0.870, 0.865]}))
    assert "model1_lstm beat model1 by 4.50 points (95% CI" in text and "3 seeds, p = " in text
    assert "Holm-adjusted in 'every pair of experiments'" in text and "| A better |" in text
    assert "McNemar" in text and "| same |" in text


def test_overlapping_models_get_no_beat_sentence(tmp_path):
    text = _differences(_report(tmp_path, {"cnn_lstm": [0.920, 0.912, 0.925], "cnn_twin": [0.918, 0.917, 0.921]}))
    assert " beat " not in text
    assert "inconclusive at 3 seeds: cnn_lstm - cnn_twin = " in text and "| inconclusive |" in text
    assert "no measurable difference" not in text


def test_single_seed_pairs_are_labelled_and_different_recipes_are_flagged(tmp_path):
    text = _differences(_report(tmp_path, {"a": [0.95], "b": [0.80]}, lr={"a": 0.01}))
    assert "single seed:" in text and " beat " not in text
    assert "not a matched comparison" in text and "DIFFERS: lr" in text
