"""Promises the project makes about selection and settings, each checked where it could break.

- the test set never reaches selection (history, best.pt and the chosen epoch ignore it);
- best.pt is the best validation epoch, also when that is not the last one, under either monitor;
- the study embeds the model that is best on validation, not on test;
- openTSNE is called with PCA initialisation and K0 = floor((ln n)^2) (spied on, not read back);
- ``--set lr=...`` reaches the optimizer, through the command line.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
import torch

from cnnlstm.cli import main
from cnnlstm.config import TrainConfig
from cnnlstm.fileio import read_history, read_json, write_history, write_json
from cnnlstm.runs import load_checkpoint
from cnnlstm.study import experiment as E
from cnnlstm.study.engine.jobs import Job
from cnnlstm.study.experiment import make_splits, train_run
from cnnlstm.study.paper.plan import best_run_by_validation
from cnnlstm.training import loop as T


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(model="model1", epochs=3, batch_size=32, val_size=40, lr=3e-3, optimizer="adam",
                schedule="cosine", device="cpu", verify=False, seed=3, threads=1)
    return TrainConfig(**{**base, **kw}).validate()


def selection(run) -> tuple[list[dict], int, dict]:
    """What training selected: the history (without timings), best.pt's epoch and its weights."""
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in read_history(run / "history.csv")]
    best = load_checkpoint(run / "best.pt")
    return history, best["epoch"], best["model"]


def assert_same_selection(a, b) -> None:
    assert a[0] == b[0] and a[1] == b[1]
    assert a[2].keys() == b[2].keys() and all(torch.equal(a[2][k], b[2][k]) for k in a[2])


# --------------------------------------------------------------------------- the test set


def test_the_test_set_never_reaches_selection(tiny_ds, tmp_path, monkeypatch):
    """Shuffled test labels and inverted test images, or NaN test tensors, change nothing training
    chooses: the same history, the same best.pt and the same chosen epoch."""
    cfg = tiny_cfg()
    train_run(cfg, tmp_path / "clean", tiny_ds, evaluate=False)
    clean = selection(tmp_path / "clean")

    rng = np.random.default_rng(0)
    shuffled = dataclasses.replace(tiny_ds, test_images=255 - tiny_ds.test_images,
                                   test_labels=rng.permutation(tiny_ds.test_labels))
    cpu = torch.device("cpu")
    assert not torch.equal(make_splits(shuffled, cfg, cpu).test_y, make_splits(tiny_ds, cfg, cpu).test_y)
    train_run(cfg, tmp_path / "shuffled", shuffled, evaluate=False)
    assert_same_selection(selection(tmp_path / "shuffled"), clean)

    real = E.test_split

    def nan_test_split(ds, cfg_, device):
        splits = real(ds, cfg_, device)
        splits.test_x = torch.full_like(splits.test_x, float("nan"))
        return splits

    monkeypatch.setattr(E, "test_split", nan_test_split)
    assert make_splits(tiny_ds, cfg, cpu).test_x.isnan().all()
    train_run(cfg, tmp_path / "nan", tiny_ds, evaluate=False)
    assert_same_selection(selection(tmp_path / "nan"), clean)


# --------------------------------------------------------------------------- best.pt


def script_validation(monkeypatch, script: list[tuple[float, float]]) -> None:
    """Make epoch e's validation report ``script[e-1]`` = (val_loss, val_acc); the real pass still runs."""
    rows = iter(script)
    real = T.evaluate_loss_acc

    def scripted(model, x, y, loss_fn, batch_size, amp_dtype=None):
        real(model, x, y, loss_fn, batch_size, amp_dtype)
        return next(rows)

    monkeypatch.setattr(T, "evaluate_loss_acc", scripted)


@pytest.mark.parametrize("monitor,script", [
    ("val_acc", [(1.0, 0.5), (0.9, 0.9), (0.8, 0.7), (0.7, 0.6)]),  # accuracy peaks at epoch 2
    ("val_loss", [(1.0, 0.1), (0.5, 0.2), (0.7, 0.3), (0.8, 0.4)]),  # loss is lowest at 2, accuracy at 4
])
def test_best_pt_is_the_best_validation_epoch_not_the_last(tiny_ds, tmp_path, monkeypatch, monitor, script):
    script_validation(monkeypatch, script)
    run = tmp_path / "r"
    weights_after = {}

    def keep(row):  # checkpoint.pt is written before on_epoch runs
        weights_after[row["epoch"]] = load_checkpoint(run / "checkpoint.pt")["model"]

    # a real learning rate: the weights move every epoch, so a wrong epoch's weights would show
    out = train_run(tiny_cfg(epochs=4, lr=3e-3, schedule="constant", monitor=monitor), run, tiny_ds,
                    evaluate=False, on_epoch=keep)
    history, best_epoch, best_weights = selection(run)
    assert [(r["val_loss"], r["val_acc"]) for r in history] == script
    assert best_epoch == out["state"].best_epoch == 2
    assert all(torch.equal(best_weights[k], weights_after[2][k]) for k in best_weights)
    assert not all(torch.equal(weights_after[2][k], weights_after[4][k]) for k in best_weights)


# --------------------------------------------------------------------------- the study's choice


def test_best_run_by_validation_follows_validation_where_test_disagrees(tmp_path):
    """model1 has the best validation accuracy (its best epoch, not its last) but the worst test
    accuracy; model2 the reverse; a hybrid run with the highest numbers of all is another group."""
    histories = {"model1": [0.90, 0.60], "model2": [0.80, 0.85], "cnn_lstm": [0.99, 0.99]}
    test_acc = {"model1": 0.50, "model2": 0.95, "cnn_lstm": 0.99}
    jobs = [Job("train", f"{m}-s{s}", "hybrid" if m == "cnn_lstm" else "baseline", cfg=TrainConfig(model=m, seed=s))
            for m in histories for s in (0, 1)]
    for job in jobs:
        folder = job.folder(tmp_path)
        write_history(folder / "history.csv", [{"epoch": e + 1, "val_acc": v, "val_loss": 1 - v}
                                               for e, v in enumerate(histories[job.cfg.model])])
        write_json(folder / "metrics.json", {"accuracy": test_acc[job.cfg.model]})
    assert best_run_by_validation(tmp_path, jobs, "baseline") == "model1"
    assert best_run_by_validation(tmp_path, jobs, "hybrid") == "cnn_lstm"


# --------------------------------------------------------------------------- t-SNE settings


def test_embed_calls_opentsne_with_pca_init_and_k0_from_ln_n(tiny_ds, tiny_data_dir, tmp_path, monkeypatch):
    """Spy on openTSNE.TSNE itself: embed.json is written by the same code, so it cannot vouch."""
    import openTSNE

    calls = []
    real = openTSNE.TSNE

    class SpyTSNE(real):
        @functools.wraps(real.__init__)  # keeps the signature embed inspects for its keyword names
        def __init__(self, *args, **kwargs):
            calls.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(openTSNE, "TSNE", SpyTSNE)
    run = tmp_path / "run"
    train_run(tiny_cfg(epochs=1), run, tiny_ds, evaluate=False)
    common = ["--data-dir", str(tiny_data_dir), "--no-verify", "--jobs", "1", "--seed", "1", "--quiet"]
    assert main(["embed", str(run), "--samples", "40", *common]) == 0
    assert main(["embed", str(run), "--samples", "40", "--k0", "7", *common]) == 0
    assert len(calls) == 2
    assert all(c["initialization"] == "pca" for c in calls)
    assert calls[0]["early_exaggeration_iter"] == math.floor(math.log(40) ** 2) == 13
    assert calls[1]["early_exaggeration_iter"] == 7
    assert read_json(run / "embed.json")["k0"] == 7


# --------------------------------------------------------------------------- --set reaches the optimizer


def test_set_lr_reaches_the_optimizers_param_groups_through_the_cli(tiny_data_dir, tmp_path):
    """--set lr wins over the preset's lr (paper: 1e-3) and is what the optimizer stepped with."""
    run = tmp_path / "run"
    rc = main(["train", "model1", "--preset", "paper", "--set", "lr=0.0123", "--set", "warmup_epochs=0",
               "--data-dir", str(tiny_data_dir), "--no-verify", "--epochs", "1", "--batch-size", "32",
               "--val-size", "40", "--device", "cpu", "--threads", "1", "--no-eval", "--out", str(run), "--quiet"])
    assert rc == 0
    assert read_json(run / "config.json")["lr"] == 0.0123
    groups = load_checkpoint(run / "checkpoint.pt")["optimizer"]["param_groups"]
    assert groups and all(g["initial_lr"] == 0.0123 and g["lr"] == 0.0123 for g in groups)  # constant schedule


def test_the_published_raw_numbers_recompute():
    """The README's headline intervals come from committed CSVs: each recomputes from its results.csv."""
    from pathlib import Path

    from conftest import assert_raw_numbers_recompute

    folders = sorted(p.parent for p in (Path(__file__).parents[1] / "docs" / "data").glob("*/comparisons.csv"))
    checked = {f.name: assert_raw_numbers_recompute(f) for f in folders}
    assert len(checked) >= 5 and all(n >= 1 for n in checked.values()), checked  # a compare of two models has one


def test_the_readme_table_one_rows_recompute_from_their_seeds():
    """Ji's and CNN-SVM's README rows: mean ± std over the committed seeds, and the one-sample 95%
    interval of Δ against the published figure (scipy), as the report's Table I prints them."""
    from pathlib import Path

    from scipy import stats as sps

    from cnnlstm.reporting.raw import read_csv
    from cnnlstm.study.paper.tables import PUBLISHED

    root = Path(__file__).parents[1]
    rows = read_csv(root / "docs" / "data" / "table1-2026-12-03" / "results.csv")
    readme = (root / "README.md").read_text()

    def signed(x: float) -> str:
        return f"{x:+.2f}".replace("-", "−")

    for model in ("ji_cnn_lstm", "cnn_svm"):
        acc = np.array([float(r["value"]) * 100 for r in rows if r["model"] == model and r["metric"] == "accuracy"])
        assert len(acc) >= 3, model
        published = PUBLISHED[model].accuracy
        ci = sps.ttest_1samp(acc, published).confidence_interval(0.95)  # around the mean
        claim = (f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f} ({len(acc)}); Δ {signed(acc.mean() - published)}, "
                 f"95% CI {signed(ci.low - published)} to {signed(ci.high - published)}")
        assert claim in readme, claim
