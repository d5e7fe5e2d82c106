"""The regime study: its plan pairs models at one recipe, subset and seeds; subsets nest; occlusion is
deterministic and level 0 is the clean accuracy; the map's sentence claims only what an interval shows."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from cnnlstm.config import config_differences, config_to_dict
from cnnlstm.data.occlusion import occlude, perturb, translate
from cnnlstm.data.splits import nested_subset
from cnnlstm.errors import ConfigError
from cnnlstm.reporting.compare import PAIR_KEYS
from cnnlstm.study import regimes as R

from conftest import assert_raw_numbers_recompute

GRID = R.RegimeGrid(sizes=(40, 80, R.ALL), widths=((4, 8), (8, 16)), seeds=3, steps_full=6)
COMMON = {"verify": False, "device": "cpu", "threads": 1, "val_size": 40}


def test_every_cell_pairs_its_models_at_one_recipe_subset_and_seeds(tiny_ds):
    from cnnlstm.models import model_summary

    jobs = R.plan_regimes(GRID, tiny_ds, common=COMMON)
    cells = R.grid_cells(GRID)
    assert len(cells) == 3 * 2 + 3  # size x width for the wide pair, size alone for model1_lstm/model1
    for cell in cells:
        runs = {m: {j.cfg.seed: j.cfg for j in R.cell_jobs(jobs, cell, m)} for m in (cell.hybrid, cell.control)}
        assert set(runs[cell.hybrid]) == set(runs[cell.control]) == {0, 1, 2}
        for seed in range(3):
            a, b = runs[cell.hybrid][seed], runs[cell.control][seed]
            assert config_differences(config_to_dict(a), config_to_dict(b), PAIR_KEYS) == []
            assert a.train_size == b.train_size == cell.size and a.epochs == b.epochs
            if cell.width is not None:
                assert a.model_args["channels"] == b.model_args["channels"] == list(cell.width)
        if cell.width is not None:  # the twin stays parameter-matched at every width
            pa = model_summary(cell.hybrid, **runs[cell.hybrid][0].model_args)["params"]
            pb = model_summary(cell.control, **runs[cell.control][0].model_args)["params"]
            assert abs(pa - pb) / pa < 0.02
    occluded = [j for j in jobs if j.kind == "occlusion"]
    assert {j.cfg.train_size for j in occluded} == {R.ALL} and len(occluded) == (2 + 1) * 2 * 3


def test_the_schedule_rule_and_its_refusals(tiny_ds):
    assert R.regime_epochs(55000, 55000, 256, 1000) == 5  # 1,000 steps of 256 on 55,000 images
    assert R.regime_epochs(6000, 55000, 256, 1000) == 14
    assert R.regime_epochs(1000, 55000, 256, 1000) == 35
    with pytest.raises(ConfigError, match="exceeds the 160 images"):
        R.plan_regimes(replace(GRID, sizes=(1000,)), tiny_ds, common=COMMON)
    for key in ("epochs", "limit_train"):
        with pytest.raises(ConfigError, match="set by the regime grid"):
            R.plan_regimes(GRID, tiny_ds, common={**COMMON, key: 3})
    with pytest.raises(ConfigError, match="must include 0"):
        replace(GRID, erase=(0.1, 0.2)).check()


def test_subsets_are_stratified_seeded_and_nested():
    labels = np.repeat(np.arange(10), [500, 300, 200, 100, 100, 100, 100, 100, 50, 450])
    share = np.bincount(labels) / len(labels)
    small, large = nested_subset(labels, 100, seed=4), nested_subset(labels, 600, seed=4)
    assert set(small) <= set(large)  # 100 inside 600
    for subset, n in ((small, 100), (large, 600)):
        assert len(subset) == n and len(set(subset)) == n
        assert np.all(np.abs(np.bincount(labels[subset], minlength=10) - n * share) <= 1)
    assert np.array_equal(nested_subset(labels, 100, seed=4), small)
    assert not np.array_equal(nested_subset(labels, 100, seed=5), small)
    with pytest.raises(Exception, match="needs 1 to 2000"):
        nested_subset(labels, 2001, seed=0)


def test_occlusion_and_shift_are_deterministic_and_zero_is_clean():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(50, 28, 28), dtype=np.uint8)
    for kind, level in (("erase", 0.25), ("shift", 3)):
        assert np.array_equal(perturb(images, kind, level, seed=7), perturb(images, kind, level, seed=7))
        assert not np.array_equal(perturb(images, kind, level, seed=7), perturb(images, kind, level, seed=8))
        assert np.array_equal(perturb(images, kind, 0, seed=7), images)
    erased = occlude(images, 0.25, np.random.default_rng(1))
    assert np.all((erased == 0).reshape(50, -1).sum(1) == 14 * 14)  # a 14x14 square: 25% of 28x28
    moved = translate(images, 3, np.random.default_rng(1))
    assert np.all((moved == 0).reshape(50, -1).sum(1) == 3 * 28)  # one 3-px edge comes in black
    colour = rng.integers(1, 256, size=(4, 28, 28, 3), dtype=np.uint8)
    assert perturb(colour, "erase", 0.1, seed=0).shape == colour.shape
    with pytest.raises(ConfigError):
        occlude(images, 1.0, rng)


def _fake_runs(root, jobs, accuracy):
    """Run folders with known accuracies (and predictions that reach them) for every training job."""
    labels = np.arange(200) % 10
    for job in jobs:
        if job.kind != "train":
            continue
        folder = job.folder(root)
        folder.mkdir(parents=True)
        acc = accuracy(job)
        preds = labels.copy()
        wrong = int(round((1 - acc) * len(labels)))
        preds[:wrong] = (preds[:wrong] + 1) % 10
        np.savez(folder / "predictions.npz", labels=labels, preds=preds)
        (folder / "metrics.json").write_text(json.dumps({"accuracy": acc}))
        (folder / "config.json").write_text(json.dumps(config_to_dict(job.cfg)))


def test_the_sentence_names_only_cells_whose_interval_excludes_zero(tiny_ds, tmp_path):
    grid = replace(GRID, sizes=(40, R.ALL), widths=((4, 8),), size_pairs=())
    jobs = R.plan_regimes(grid, tiny_ds, common=COMMON)

    def accuracy(job):  # the hybrid helps only on 40 images: +3 points with little spread
        noise = [0.0, 0.005, -0.004][job.cfg.seed]
        bonus = 0.03 + [0.001, -0.002, 0.0015][job.cfg.seed] if job.cfg.model == "cnn_lstm" and job.cfg.train_size == 40 else 0.0
        wobble = [0.01, -0.02, 0.012][job.cfg.seed] if job.cfg.model == "cnn_lstm" else 0.0
        return 0.80 + noise + bonus + (0 if job.cfg.train_size == 40 else wobble)

    _fake_runs(tmp_path, jobs, accuracy)
    results = R.cell_results(tmp_path, grid, jobs, tiny_ds)
    verdicts = {r.cell.size: r.verdict() for r in results}
    assert verdicts == {40: "hybrid better", R.ALL: "inconclusive"}
    # the two cells are one family (clean accuracy of the pair): Holm doubles the smaller p-value
    small = next(r for r in results if r.cell.size == 40).pair.comparison
    assert small.verdict.family == "clean: cnn_lstm vs cnn_twin" and small.verdict.method == "holm"
    assert small.verdict.pvalue == pytest.approx(min(1.0, 2 * small.seeds.pvalue))
    lines = R.summary_lines(results, 160)
    assert lines[0].startswith("40 images, stem 4/8: cnn_lstm beat cnn_twin by 3.02 points (95% CI")
    assert lines[1].startswith("Of 2 per-cell comparisons") and "1 show a difference" in lines[1]
    assert "1 are inconclusive at 3 seeds" in lines[1]
    assert not any("measurable" in line for line in lines)
    flat = R.summary_lines([r for r in results if r.cell.size == R.ALL], 160)
    assert flat[0].startswith("Of 1 per-cell comparisons") and "0 show a difference" in flat[0]
    # the primary endpoint pools the widths (one here) and is its own family
    pooled = R.pooled_endpoints(results)
    assert [(h, c, size, p.seeds.n) for h, c, size, p in pooled] == [("cnn_lstm", "cnn_twin", 40, 3),
                                                                       ("cnn_lstm", "cnn_twin", R.ALL, 3)]
    assert R.summary_lines(results, 160, pooled)[0].startswith(
        "Primary endpoint, cnn_lstm vs cnn_twin at 40 images, widths pooled: cnn_lstm beat cnn_twin by 3.02")


def test_pooled_endpoint_pairs_every_width_and_seed(tiny_ds, tmp_path):
    """Two widths x 3 seeds: the primary endpoint is one paired t over the 6 (width, seed) pairs."""
    from scipy import stats as sps

    grid = replace(GRID, sizes=(40,), widths=((4, 8), (6, 12)), size_pairs=())
    jobs = R.plan_regimes(grid, tiny_ds, common=COMMON)

    def accuracy(job):
        wide = job.cfg.model_args["channels"][0] == 6
        return 0.80 + [0.0, 0.006, -0.003][job.cfg.seed] + (0.01 if job.cfg.model == "cnn_lstm" else 0) * (
            1 + wide) + 0.002 * wide * job.cfg.seed

    _fake_runs(tmp_path, jobs, accuracy)
    ((_, _, _, pooled),) = R.pooled_endpoints(R.cell_results(tmp_path, grid, jobs, tiny_ds))
    diffs = [0.01, 0.01, 0.01, 0.02, 0.02, 0.02]
    ci = sps.ttest_1samp(diffs, 0).confidence_interval(0.95)
    assert pooled.seeds.n == 6 and pooled.seeds.diff == pytest.approx(np.mean(diffs))
    assert (pooled.seeds.low, pooled.seeds.high) == pytest.approx((ci.low, ci.high))


def test_a_small_grid_end_to_end(tiny_data_dir, tmp_path):
    from cnnlstm import api

    out = tmp_path / "regimes"
    kwargs = dict(out=out, seeds=2, sizes=(40, 0), widths=((4, 8),), steps=4, size_pairs=False,
                  settings={"data_dir": str(tiny_data_dir), **COMMON})
    assert api.regimes(dry_run=True, **kwargs)["cost"]["train_runs"] == 8
    assert not out.exists()  # a dry run trains nothing
    summary = api.regimes(**kwargs)
    assert not summary["failed"] and summary["ran"] == 8 + 4
    for report in ("report.html", "report.md", "regimes.json", "figures/regime_map.png", "figures/occlusion.png"):
        assert (out / report).is_file(), report
    run = out / "runs" / "cnn_lstm-4x8-nall-s0"
    occlusion = json.loads((run / "occlusion.json").read_text())
    assert occlusion["erase"]["0.0"] == occlusion["shift"]["0"] == json.loads((run / "metrics.json").read_text())[
        "accuracy"]
    record = json.loads((out / "regimes.json").read_text())
    full = next(c for c in record["cells"] if c["size"] == 0)
    assert full["occlusion"]["erase"]["0.0"]["hybrid"][0] == pytest.approx(
        np.mean([json.loads((out / "runs" / f"cnn_lstm-4x8-nall-s{s}" / "metrics.json").read_text())["accuracy"]
                 for s in (0, 1)]))
    assert set(full["occlusion"]["shift"]["4"]["delta"]) >= {"diff", "low", "high", "pvalue", "n", "verdict",
                                                             "p_adjusted", "mde", "family"}
    assert full["occlusion"]["shift"]["4"]["delta"]["family"] == "translation: cnn_lstm vs cnn_twin"
    assert {"verdict", "best_epoch_last", "mde", "family"} <= set(full) and len(record["primary"]) == 2
    assert assert_raw_numbers_recompute(out) >= 2  # every interval in comparisons.csv, from results.csv
    html = (out / "report.html").read_text()
    assert "<ul>" in html[html.index('id="summary"'):html.index('id="the-map"')]  # the summary is a list
    again = api.regimes(**kwargs)  # resumes: nothing left to do, nor to cost
    assert again["ran"] == 0 and again["skipped"] == 12
    assert again["cost"]["left"]["train_runs"] == 0 and again["cost"]["gflops"] is None
    assert again["cost"]["train_runs"] == 8 and again["cost"]["minutes"] == 0
    (out / "runs" / "cnn_lstm-4x8-nall-s0" / "metrics.json").unlink()  # one run to redo (its occlusion.json stays)
    left = api.regimes(dry_run=True, **kwargs)["cost"]["left"]
    assert (left["train_runs"], left["occlusion_runs"]) == (1, 0)


def test_a_training_subset_resumes_exactly(tiny_ds, tmp_path):
    """``train_size`` is drawn from the seed alone, so a run killed after epoch 1 resumes bit for bit."""
    import torch

    from cnnlstm.config import resolve_train_config
    from cnnlstm.fileio import read_history
    from cnnlstm.runs import load_checkpoint
    from cnnlstm.study.experiment import train_run

    from conftest import Stop, stop_after

    cfg = resolve_train_config("cnn_lstm", overrides={**COMMON, "train_size": 60, "epochs": 2, "batch_size": 16,
                                                      "model_args": {"channels": [4, 8]}})
    train_run(cfg, tmp_path / "full", tiny_ds, evaluate=False)
    with pytest.raises(Stop):
        train_run(cfg, tmp_path / "cut", tiny_ds, evaluate=False, on_epoch=stop_after(1))
    train_run(None, tmp_path / "cut", tiny_ds, resume=True, evaluate=False)
    full, cut = (load_checkpoint(tmp_path / f"{r}/checkpoint.pt")["model"] for r in ("full", "cut"))
    assert all(torch.equal(full[k], cut[k]) for k in full)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_history(tmp_path / "full/history.csv")) == strip(read_history(tmp_path / "cut/history.csv"))


def test_the_dry_run_estimate_is_never_about_0_min():
    """A grid that takes a minute says so in seconds; longer ones in minutes, then hours."""
    assert R.duration_text(64) == "64 s" and R.duration_text(0.4) == "0 s"
    assert R.duration_text(12 * 60) == "12 min" and R.duration_text(3.5 * 3600) == "3.5 h"


def test_seeds_auto_grows_the_grid_until_the_primary_endpoints_decide_or_the_cap(tiny_data_dir, tmp_path):
    from cnnlstm import api

    out = tmp_path / "regimes"
    summary = api.regimes(out=out, seeds="auto", max_seeds=4, sizes=(40,), widths=((4, 8),), steps=4,
                          size_pairs=False, settings={"data_dir": str(tiny_data_dir), **COMMON})
    assert summary["seeds"] in (3, 4) and summary["stopped"]
    seeds = sorted({p.name.rsplit("-s", 1)[1] for p in (out / "runs").iterdir()})
    assert seeds == [str(s) for s in range(summary["seeds"])]
    assert len(json.loads((out / "regimes.json").read_text())["primary"]) == 1
    with pytest.raises(ConfigError):
        api.regimes(out=out, seeds="many", dry_run=True, settings={"data_dir": str(tiny_data_dir), **COMMON})


def test_pairs_put_recurrence_inside_the_stack_through_the_same_cells_and_curves(tiny_ds):
    grid = R.make_grid(seeds=2, sizes=(40, R.ALL), widths=[], steps=6,
                       pairs=[("spoerer_bl", "spoerer_bk"), ("conv_lstm", "conv_lstm_ff")])
    cells = R.grid_cells(grid)
    assert [(c.hybrid, c.control, c.size, c.width) for c in cells] == [
        ("spoerer_bl", "spoerer_bk", 40, None), ("spoerer_bl", "spoerer_bk", R.ALL, None),
        ("conv_lstm", "conv_lstm_ff", 40, None), ("conv_lstm", "conv_lstm_ff", R.ALL, None)]
    jobs = R.plan_regimes(grid, tiny_ds, common=COMMON)
    assert {j.cfg.model for j in jobs} == {"spoerer_bl", "spoerer_bk", "conv_lstm", "conv_lstm_ff"}
    for cell in cells:
        a, b = (R.cell_jobs(jobs, cell, m) for m in (cell.hybrid, cell.control))
        assert [j.cfg.seed for j in a] == [j.cfg.seed for j in b] == [0, 1]
        for x, y in zip(a, b):
            assert config_differences(config_to_dict(x.cfg), config_to_dict(y.cfg), PAIR_KEYS) == []
    occluded = [j for j in jobs if j.kind == "occlusion"]
    assert {j.cfg.train_size for j in occluded} == {R.ALL} and len(occluded) == 2 * 2 * 2
    assert R.make_grid(pairs=[("a", "b")]).size_pairs == (("a", "b"),)  # the flagship's widths stay by default
    for bad in ([("a", "a")], [], [("a", "b"), ("a", "b")]):
        with pytest.raises(ConfigError, match="pairs are distinct"):
            R.make_grid(pairs=bad)
    with pytest.raises(ConfigError, match="contradict"):
        R.make_grid(pairs=[("a", "b")], size_pairs=False)
    with pytest.raises(ConfigError, match="no pair to compare"):
        R.make_grid(widths=[], size_pairs=False)


def test_the_pairs_and_widths_flags(capsys):
    from cnnlstm.cli.regimes_cmd import parse_pairs, parse_widths

    assert parse_pairs("spoerer_bl:spoerer_bk, conv_lstm:conv_lstm_ff") == [
        ("spoerer_bl", "spoerer_bk"), ("conv_lstm", "conv_lstm_ff")]
    assert parse_widths("none") == []
    for bad in ("spoerer_bl", "a:b:c", "a:"):
        with pytest.raises(ConfigError, match="hybrid:control"):
            parse_pairs(bad)
