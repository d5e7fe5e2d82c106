"""The evaluate / explore / embed / report commands on tiny synthetic runs."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cnnlstm.cli import main
from cnnlstm.config import TrainConfig
from cnnlstm.data import load_dataset
from cnnlstm.errors import RunError
from cnnlstm.study.experiment import train_run

from conftest import write_dataset

ISSUE_KEYS = {"accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_micro", "recall_micro",
              "f1_micro", "roc_auc_macro", "per_class", "confusion_matrix", "worst_class", "top_confusions",
              "n_test", "checkpoint", "tta"}
RUN_EXTRAS = {"epochs_trained", "best_epoch", "train_seconds", "eval_seconds", "dataset", "verified", "n_train"}
CALIBRATION_KEYS = {"ece", "mce", "brier", "nll", "calibration_bins", "temperature", "ece_temperature",
                    "mce_temperature", "brier_temperature", "nll_temperature", "n_val", "accuracy_dedup",
                    "n_test_dedup", "n_test_overlap"}
RUN_FIGURES = {"confusion_matrix.png", "confusion_matrix_normalized.png", "roc_worst_class.png", "roc_all.png",
               "misclassified.png", "history.png", "reliability.png"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny synthetic dataset and two trained model1 runs (seeds 0 and 1) on it."""
    root = tmp_path_factory.mktemp("study")
    data_dir = write_dataset(root / "tiny")
    ds = load_dataset(data_dir, verify=False, use_cache=False)
    runs = []
    for seed in (0, 1):
        cfg = TrainConfig(model="model1", epochs=1, batch_size=32, val_size=40, verify=False, device="cpu",
                          seed=seed, data_dir=str(data_dir))
        train_run(cfg, root / f"m1-s{seed}", ds)
        runs.append(root / f"m1-s{seed}")
    return {"data_dir": data_dir, "runs": runs, "ds": ds}


@pytest.fixture
def run_copy(study, tmp_path):
    """A private copy of the seed-0 run (commands rewrite files in it)."""
    def copy(i=0, name=None):
        src = study["runs"][i]
        return Path(shutil.copytree(src, tmp_path / (name or src.name)))
    return copy


def cli(capsys, *argv):
    """Run the CLI; return (exit code, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, command):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cnnlstm {command}: error: ")
    return lines[0]


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_writes_metrics_with_the_issue_keys(run_copy, capsys):
    run = run_copy()
    for name in ("metrics.json", "predictions.npz"):
        (run / name).unlink()
    shutil.rmtree(run / "figures")
    rc, out, _ = cli(capsys, "evaluate", run)  # data location comes from the run's config.json
    assert rc == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m) == ISSUE_KEYS | RUN_EXTRAS | CALIBRATION_KEYS
    assert m["n_test"] == 50 and m["checkpoint"] == "best" and m["tta"] is False
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == m["n_test"]
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    pred = np.load(run / "predictions.npz")
    assert pred["probs"].shape == (50, 10)
    assert np.allclose(pred["probs"].sum(1), 1, atol=1e-5)
    assert m["accuracy"] == pytest.approx(np.mean(pred["probs"].argmax(1) == pred["labels"]))
    assert {p.name for p in (run / "figures").iterdir()} >= RUN_FIGURES
    worst = m["per_class"][m["worst_class"]]["name"]
    assert f"accuracy {m['accuracy']:.4f}" in out and f"worst class: {worst}" in out
    assert "top confusions:" in out
    rc, out, _ = cli(capsys, "evaluate", run, "--checkpoint", "last", "--device", "cpu")
    assert rc == 0
    assert json.loads((run / "metrics.json").read_text())["checkpoint"] == "last"
    assert "last weights" in out


def _interrupted(run):
    (run / "best.pt").unlink()
    (run / "checkpoint.pt").unlink()


def _mismatched(run):
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"] = "model2"  # model1's weights do not fit model2
    (run / "config.json").write_text(json.dumps(cfg))


def _damaged(run):
    (run / "best.pt").write_bytes(b"not a checkpoint")


def _bad_json(run):
    (run / "config.json").write_text("{ nope")


@pytest.mark.parametrize("damage, message", [
    (_interrupted, "best.pt is missing"),
    (_mismatched, "do not fit model2 as configured in config.json"),
    (_damaged, "damaged or not a checkpoint"),
    (_bad_json, "not JSON"),
])
def test_evaluate_bad_run_dirs_are_one_line_errors(run_copy, capsys, damage, message):
    run = run_copy()
    damage(run)
    rc, _, err = cli(capsys, "-q", "evaluate", run)
    assert message in assert_one_line_error(rc, err, "evaluate")


def test_evaluate_missing_and_empty_folders(tmp_path, capsys):
    rc, _, err = cli(capsys, "evaluate", tmp_path / "nope")
    assert "no such run folder" in assert_one_line_error(rc, err, "evaluate")
    assert not (tmp_path / "nope").exists()  # nothing is created for a typo
    (tmp_path / "empty").mkdir()
    rc, _, err = cli(capsys, "evaluate", tmp_path / "empty")
    assert "config.json is missing" in assert_one_line_error(rc, err, "evaluate")


def test_evaluate_vanished_data_dir_and_bad_device(run_copy, tmp_path, capsys):
    run = run_copy()
    cfg = json.loads((run / "config.json").read_text())
    cfg["data_dir"] = str(tmp_path / "gone")
    (run / "config.json").write_text(json.dumps(cfg))
    rc, _, err = cli(capsys, "-q", "evaluate", run)
    assert "config.json" in assert_one_line_error(rc, err, "evaluate")
    rc, _, err = cli(capsys, "-q", "evaluate", run, "--device", "gpu0")
    assert "device must be auto, cpu, cuda or cuda:N" in assert_one_line_error(rc, err, "evaluate")


# ----------------------------------------------------------------------------- explore


@pytest.fixture(scope="module")
def explored(study, tmp_path_factory):
    """``cnnlstm explore`` with a 150-image t-SNE, run once: (folder, its stdout)."""
    out = tmp_path_factory.mktemp("explore") / "explore"
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()) as text:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        rc = main(["explore", "--out", str(out), "--tsne-samples", "150", "--data-dir", str(study["data_dir"]),
                   "--no-verify", "--seed", "1"])
    assert rc == 0
    return out, text.getvalue()


def test_explore_writes_stats_figures_and_raw_tsne(study, explored):
    out, text = explored
    stats = json.loads((out / "stats.json").read_text())
    assert stats["splits"]["all"]["n"] == 250 and len(stats["per_class"]) == 10
    assert stats["dataset"]["verified"] is False and str(study["data_dir"]) in stats["dataset"]["source"]
    emb = stats["embedding"]
    assert emb == json.loads((out / "embed.json").read_text())
    assert emb["n"] == 150 and emb["k0"] == math.floor(math.log(150) ** 2) == 25
    assert "natural log" in emb["k0_rule"] and len(emb["indices"]) == 150 and emb["seed"] == 1
    assert emb["quality"]["n"] == 150
    assert set(emb["quality"]["embedding"]) == {"knn1", "knn10", "trustworthiness", "spearman"}
    assert set(emb["quality"]["features"]) == {"knn1", "knn10"}
    assert emb["quality"]["embedding"]["knn10"] > 0.5  # the synthetic classes are separable
    assert np.load(out / "embedding.npy").shape == (150, 2)
    figs = {p.name for p in (out / "figures").iterdir()}
    assert figs == {"class_distribution.png", "boxplot_means.png", "boxplot_variances.png", "sample_grid.png",
                    "mean_images.png", "duplicates.png", "tsne_raw.png"}
    assert "K0 = 25" in text and "natural log" in text


def test_explore_without_tsne(study, tmp_path, capsys):
    rc, _, _ = cli(capsys, "-q", "explore", "--out", tmp_path / "a", "--tsne-samples", 0,
                   "--data-dir", study["data_dir"], "--no-verify")
    assert rc == 0
    assert json.loads((tmp_path / "a" / "stats.json").read_text())["embedding"] is None
    assert not (tmp_path / "a" / "embed.json").exists()
    assert not (tmp_path / "a" / "figures" / "tsne_raw.png").exists()
    rc, _, err = cli(capsys, "-q", "explore", "--out", tmp_path / "b", "--tsne-samples", 3,
                     "--data-dir", study["data_dir"], "--no-verify")
    assert "tsne_samples must be 0 (skip) or >= 5" in assert_one_line_error(rc, err, "explore")


# ----------------------------------------------------------------------------- embed


def test_embed_writes_embedding_and_features_and_is_seeded(run_copy, study, capsys):
    a, b, c = run_copy(name="a"), run_copy(name="b"), run_copy(name="c")
    for run, seed in ((a, 3), (b, 3), (c, 4)):
        rc, _, _ = cli(capsys, "-q", "embed", run, "--samples", 40, "--k0", 10, "--seed", seed)
        assert rc == 0
    ea, eb, ec = (np.load(r / "embedding.npy") for r in (a, b, c))
    assert ea.shape == (40, 2)
    assert np.array_equal(ea, eb)  # same seed -> identical embedding
    assert not np.array_equal(ea, ec)
    rec = json.loads((a / "embed.json").read_text())
    assert rec["k0"] == 10 and rec["k0_default"] == math.floor(math.log(40) ** 2)
    assert rec["k0_rule"] == "set by the user (--k0)"
    assert rec["n"] == 40 and len(rec["indices"]) == 40 and rec["index_space"] == "test"
    assert rec["seed"] == 3 and rec["perplexity"] == 30 and rec["perplexity_used"] == 13
    assert rec["features_in_predictions"] is True and rec["model"] == "model1"
    assert (a / "figures" / "tsne.png").is_file()
    # predictions.npz keeps its arrays and gains the features of every test image
    pred = np.load(a / "predictions.npz")
    assert {"labels", "preds", "probs", "features"} <= set(pred.files)
    assert pred["features"].dtype == np.float16 and pred["features"].shape == (50, rec["feature_dim"])
    from cnnlstm.data import to_tensor
    from cnnlstm.runs import load_run_model

    model, _ = load_run_model(a, "best", "cpu")
    feats = model.forward_features(to_tensor(study["ds"].test_images, norm=study["ds"].norm)).detach().numpy()
    assert np.allclose(pred["features"], feats, rtol=1e-2, atol=1e-2)


def test_embed_of_an_unfinished_run_is_an_error(run_copy, capsys):
    run = run_copy()
    _interrupted(run)
    rc, _, err = cli(capsys, "-q", "embed", run, "--samples", 20)
    assert "best.pt is missing" in assert_one_line_error(rc, err, "embed")


# ----------------------------------------------------------------------------- report


class Page(HTMLParser):
    """Collects what a report page holds: image sources, tables, headings, links, scripts."""

    def __init__(self):
        super().__init__()
        self.images, self.tables, self.headings, self.scripts, self.links = [], 0, [], 0, []
        self._in_h = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        elif tag == "table":
            self.tables += 1
        elif tag in ("script", "link", "iframe", "object", "embed"):
            self.scripts += 1
        elif tag == "a":
            self.links.append(a.get("href", ""))
        self._in_h = tag in ("h2", "h3")

    def handle_data(self, data):
        if self._in_h:
            self.headings.append(data)
            self._in_h = False


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def inlined_files(page: Page) -> list[bytes]:
    out = []
    for src in page.images:
        assert src.startswith("data:image/png;base64,"), src[:40]
        out.append(base64.b64decode(src.split(",", 1)[1]))
    return out


def test_report_of_one_run_inlines_every_figure_and_writes_markdown(run_copy, capsys):
    run = run_copy()
    assert cli(capsys, "-q", "embed", run, "--samples", 30, "--k0", 5)[0] == 0
    rc, out, _ = cli(capsys, "report", run)
    assert rc == 0 and "self-contained" in out
    html_path, md_path = run / "report.html", run / "report.md"
    page = parse(html_path)
    figures = sorted((run / "figures").glob("*.png"))
    assert {p.name for p in figures} == RUN_FIGURES | {"tsne.png"}
    assert sorted(inlined_files(page)) == sorted(p.read_bytes() for p in figures)  # each exactly once
    assert page.scripts == 0
    assert all(h.startswith(("https://", "#")) for h in page.links)
    text = html_path.read_text()
    assert 'http-equiv="Content-Security-Policy"' in text and "default-src 'none'" in text
    # tables: published-vs-measured, config, metrics, per-class, confusions, calibration, history, t-SNE quality
    assert page.tables == 8
    assert {"Published vs measured", f"Run {run.name}", "Test metrics", "Training curves",
            "t-SNE of the learned features"} <= set(page.headings)
    m = json.loads((run / "metrics.json").read_text())
    assert f"{m['accuracy']:.4f}" in text and "86.55" in text
    # a short smoke run is never set against the published number: no difference, and the header says why
    cfg = json.loads((run / "config.json").read_text())
    assert "not comparable" in text and f"{m['accuracy'] * 100 - 86.55:+.2f}" not in text
    assert f"trained on {m['n_train']:,} training images, {cfg['epochs']} epoch" in text
    md = md_path.read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(linked) == sorted(f"figures/{p.name}" for p in figures)
    assert all((run / p).is_file() for p in linked)
    assert md.count("\n| ---") + md.count("\n|---") == 8


def test_report_groups_seeds_and_compares_with_references(study, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, _ = cli(capsys, "-q", "report", *study["runs"], "--title", "Two seeds")
    assert rc == 0
    html_path = tmp_path / "runs" / "report.html"
    assert html_path.is_file() and (tmp_path / "runs" / "report.md").is_file()
    text = html_path.read_text()
    accs = [json.loads((r / "metrics.json").read_text())["accuracy"] * 100 for r in study["runs"]]
    mean, std = np.mean(accs), np.std(accs, ddof=1)
    assert f"{mean:.2f} \u00b1 {std:.2f}" in text  # one experiment, two seeds
    assert "<title>Two seeds</title>" in text
    page = parse(html_path)
    assert {"Comparison", "Published vs measured", "Run m1-s0", "Run m1-s1"} <= set(page.headings)
    assert len(page.images) == 2 * len(RUN_FIGURES)


def test_report_refuses_runs_from_different_datasets(run_copy, capsys):
    a, b = run_copy(name="a"), run_copy(name="b")
    m = json.loads((b / "metrics.json").read_text())
    m["dataset"], m["verified"] = "/somewhere/else", False
    (b / "metrics.json").write_text(json.dumps(m))
    rc, _, err = cli(capsys, "report", a, b)
    assert "different datasets" in assert_one_line_error(rc, err, "report")


def test_report_with_explore_and_sweep_folders(run_copy, explored, tmp_path, capsys):
    run = run_copy()
    assert cli(capsys, "-q", "embed", run, "--samples", 30, "--k0", 5)[0] == 0
    explore = explored[0]
    sweep = tmp_path / "sweep"
    (sweep / "figures").mkdir(parents=True)
    shutil.copy(run / "figures" / "history.png", sweep / "figures" / "optimization_history.png")
    (sweep / "sweep.json").write_text(json.dumps({
        "study": "flagship-lr", "direction": "maximize",
        "best": {"value": 0.91, "params": {"lr": 0.003}, "number": 1},
        "trials": [{"number": 0, "value": 0.88, "state": "COMPLETE", "params": {"lr": 0.01}},
                   {"number": 1, "value": 0.91, "state": "COMPLETE", "params": {"lr": 0.003}},
                   {"number": 2, "value": None, "state": "PRUNED", "params": {"lr": 0.1}}],
        "importances": {"lr": 1.0}}))
    out = tmp_path / "all.html"
    rc, _, _ = cli(capsys, "-q", "report", run, sweep, "--explore", explore, "--out", out)
    assert rc == 0
    page = parse(out)
    assert {"Embedding quality: raw pixels vs learned features", "Dataset exploration (explore)",
            "Sweep flagship-lr", "t-SNE of the raw pixels"} <= set(page.headings)
    text = out.read_text()
    assert text.index("0.9100") < text.index("0.8800")  # trials best first
    assert "PRUNED" in text
    explore_figs = sorted((explore / "figures").glob("*.png"))
    inlined = inlined_files(page)
    for f in explore_figs + [sweep / "figures" / "optimization_history.png"]:
        assert f.read_bytes() in inlined, f.name


def test_report_rejects_folders_that_are_not_runs(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    rc, _, err = cli(capsys, "report", tmp_path / "junk")
    assert "not a run, explore or sweep folder" in assert_one_line_error(rc, err, "report")
    rc, _, err = cli(capsys, "report", tmp_path / "missing")
    assert "no such folder" in assert_one_line_error(rc, err, "report")


# ----------------------------------------------------------------------------- report building blocks


def test_building_blocks_escape_and_write_both_files(run_copy, tmp_path):
    from cnnlstm import reporting as report

    html = report.html_table([{"a": "<script>x</script>", "b": 1.5}, {"a": "|", "b": None}], ["a", ("b", "B")])
    assert "<script>" not in html and "&lt;script&gt;" in html and "\u2014" in html
    assert "<td class=num>1.5000</td>" in html
    md = report.markdown_table([{"a": "x|y", "b": 2}], ["a", "b"])
    assert "x\\|y" in md and "---:" in md
    fig = run_copy() / "figures" / "history.png"
    sections = [report.Section("Numbers", [report.Paragraph("p < q"), report.Table([{"k": 1}], ["k"])]),
                report.Section("Pictures", [report.Figures([report.Figure(fig, "curves")])])]
    html_path, md_path = report.write_report(tmp_path / "out" / "r.html", "T & U", sections)
    text = html_path.read_text()
    assert "<h1>T &amp; U</h1>" in text and "p &lt; q" in text
    assert base64.b64encode(fig.read_bytes()).decode() in text
    assert md_path == tmp_path / "out" / "r.md"
    assert "![curves](../" in md_path.read_text()
    with pytest.raises(RunError):
        report.figure_html(tmp_path / "nope.png")
