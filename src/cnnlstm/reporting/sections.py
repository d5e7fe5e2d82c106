"""The sections of ``cnnlstm report``: comparison, published vs measured, embeddings, runs,
explorations and sweeps, and :func:`build_report`, which reads the folders and writes the page.

Numbers over the seeds of one experiment are mean ± sample standard deviation
(:func:`cnnlstm.measure.stats.mean_std`).

Why one module of this size: it holds one builder per section of the page, each short and
independent; the page toolkit, run-folder reading and statistics already live elsewhere
(``page.py``, ``records.py``, :mod:`cnnlstm.measure.stats`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from cnnlstm.config import RUNTIME_KEYS
from cnnlstm.errors import RunError
from cnnlstm.fileio import read_json
from cnnlstm.measure.stats import format_mean_std, mean_std
from cnnlstm.reporting import trust
from cnnlstm.reporting.embedding import (
    embed_blocks,
    embedding_comparison_section,
)
from cnnlstm.reporting.folders import explore_section, sweep_section
from cnnlstm.reporting.page import (
    Code,
    Figure,
    Figures,
    Link,
    Paragraph,
    Section,
    Table,
    format_cell,
    plain,
    slug,
    write_report,
)
from cnnlstm.reporting.records import (
    RunRecord,
    check_same_dataset,
    classify_inputs,
    fewest_train_images,
    group_runs,
    load_run,
)

# =========================================================================== numbers


def pm(values: Sequence[float], scale: float = 1.0, digits: int = 4) -> str | None:
    """``"mean ± std"`` (or just the value for one run) of ``values * scale``."""
    mean, std = mean_std(values)
    return None if mean is None else format_mean_std(mean, std, scale=scale, digits=digits)


def _metric_values(group: Sequence[RunRecord], key: str) -> list[float]:
    return [r.metrics[key] for r in group if r.metrics and r.metrics.get(key) is not None]


def _seeds(group: Sequence[RunRecord]) -> str:
    return ", ".join(str(r.config.get("seed", "?")) for r in group)


def _worst_class_name(group: Sequence[RunRecord]) -> str | None:
    names = [r.metrics["per_class"][r.metrics["worst_class"]]["name"] for r in group if r.metrics]
    return max(sorted(set(names)), key=names.count) if names else None


# =========================================================================== overview sections


def comparison_rows(groups: Sequence[Sequence[RunRecord]]) -> list[dict]:
    """One row per experiment: accuracy etc. as mean ± std over its seeds."""
    rows = []
    for g in groups:
        epochs = [r.metrics.get("epochs_trained") for r in g if r.metrics] or [len(r.history) for r in g]
        rows.append({
            "runs": ", ".join(r.name for r in g), "model": g[0].model, "seeds": _seeds(g), "n": len(g),
            "epochs": plain(g[0].config.get("epochs")) + (f" ({pm(epochs, digits=1)} run)" if
                                                         epochs and set(epochs) != {g[0].config.get("epochs")}
                                                         else ""),
            "acc": pm(_metric_values(g, "accuracy"), 100, 2), "f1": pm(_metric_values(g, "f1_macro"), 100, 2),
            "auc": pm(_metric_values(g, "roc_auc_macro"), 1, 4), "worst": _worst_class_name(g),
            "train_s": pm(_metric_values(g, "train_seconds"), 1, 1),
            "eval_s": pm(_metric_values(g, "eval_seconds"), 1, 2),
        })
    return rows


COMPARISON_COLUMNS = (("model", "model"), ("runs", "run folders"), ("seeds", "seeds"), ("n", "n seeds"),
                      ("epochs", "epochs"), ("acc", "test accuracy (%)"), ("f1", "macro F1 (%)"),
                      ("auc", "macro ROC AUC"), ("worst", "worst class"), ("train_s", "training (s)"),
                      ("eval_s", "evaluation (s)"))


#: Beyond this many experiments the pairwise differences table is left out (it grows as k^2).
MAX_EXPERIMENTS_COMPARED = 10


def _group_label(group: Sequence[RunRecord], groups: Sequence[Sequence[RunRecord]]) -> str:
    """The model name, or the run names when two experiments share a model."""
    model = group[0].model
    if sum(g[0].model == model for g in groups) > 1:
        return f"{model} ({', '.join(r.name for r in group)})"
    return model


def differences_section(groups: Sequence[Sequence[RunRecord]]) -> Section | None:
    """Every pair of experiments: Δ accuracy with its 95% interval over seeds, the verdict against the
    margin (Holm over all the pairs, one family), McNemar and the bootstrap per seed pair."""
    from cnnlstm.measure.stats import MARGIN
    from cnnlstm.reporting.compare import SEED_PAIR_NOTE, SeedRun, comparison_cells, match_pairs, seed_pair_rows

    scored = [g for g in groups if all(r.metrics for r in g)]
    if len(scored) < 2 or len(scored) > MAX_EXPERIMENTS_COMPARED:
        return None
    runs = {_group_label(g, scored): [SeedRun(int(r.config.get("seed", i)), r.metrics["accuracy"], r.path, r.config)
                                      for i, r in enumerate(g)] for g in scored}
    names = list(runs)
    pairs = match_pairs(runs, [(a, b) for i, a in enumerate(names) for b in names[i + 1:]],
                        family="every pair of experiments")
    rows = [{"A": p.a, "B": p.b, **comparison_cells(p.comparison),
             "recipe": "same" if not p.differences else "DIFFERS: " + "; ".join(p.differences)} for p in pairs]
    pair_rows = [r for p in pairs for r in seed_pair_rows(p.comparison)]
    return Section("Differences between experiments", [
        Paragraph("Δ = A − B in points of test accuracy. The interval is a 95% t-interval over seeds (seed k "
                  "of A paired with seed k of B where both exist, else Welch's). The verdict is one of four "
                  f"against a margin of ±{100 * MARGIN:.1f} points: A better, B better (the t-test rejects 0), "
                  "equivalent (TOST: the 90% interval lies inside the margin) or inconclusive at this n; the "
                  "p-values are Holm-adjusted over every pair of this report, one family. MDE is the difference "
                  "this n detects with 80% power. McNemar's exact test and the paired bootstrap use the two "
                  "runs' predictions of the same test images, one seed pair at a time, and measure test-set "
                  "noise only."),
        Table(rows, list(rows[0])), *[Paragraph(p.claim()) for p in pairs],
        *([Paragraph(SEED_PAIR_NOTE), Table(pair_rows, list(pair_rows[0]))] if pair_rows else [])])


def comparison_section(groups: Sequence[Sequence[RunRecord]]) -> Section:
    """Side-by-side comparison of every experiment."""
    n_runs = sum(len(g) for g in groups)
    text = (f"{n_runs} run(s) in {len(groups)} experiment(s). Runs whose config.json differs only in "
            f"the seed (and in settings that do not change the measurement: "
            f"{', '.join(sorted(RUNTIME_KEYS))}) are one experiment, shown as mean \u00b1 sample standard "
            "deviation over its n seeds. Accuracy and F1 are on the test set, in percent.")
    return Section("Comparison", [Paragraph(text), Table(comparison_rows(groups), COMPARISON_COLUMNS)])


def reference_rows(groups: Sequence[Sequence[RunRecord]]) -> list[dict]:
    """Measured experiments beside their published number, then published-only context rows."""
    from cnnlstm.reporting.references import REFERENCES, published_for, recipe_status

    rows, matched = [], set()
    for g in groups:
        acc = _metric_values(g, "accuracy")
        if not acc:
            continue
        ref = published_for(g[0].model)
        mean = sum(acc) / len(acc) * 100
        status, comparable = "", False
        if ref:
            matched.add(ref.key)
            status, comparable = recipe_status(
                ref, epochs=min(int(r.config.get("epochs", 0)) for r in g),
                train_images=fewest_train_images((r.config, r.metrics) for r in g))
        rows.append({
            "model": g[0].model + (f" \u2014 {ref.name}" if ref else ""),
            "published": f"{ref.accuracy:.2f}" if ref else None,
            "source": (Link(ref.source, ref.url) if ref.url else ref.source) if ref else "this project",
            "measured": pm(acc, 100, 2), "delta": f"{mean - ref.accuracy:+.2f}" if comparable else None,
            "schedule": status or None, "n": len(acc), "epochs": plain(g[0].config.get("epochs")),
            "train_s": pm(_metric_values(g, "train_seconds"), 1, 1),
        })
    context = sorted((r for r in REFERENCES if r.key not in matched), key=lambda r: r.accuracy)
    rows += [{"model": r.name, "published": f"{r.accuracy:.2f}",
              "source": Link(r.source, r.url) if r.url else r.source, "_class": "context"} for r in context]
    return rows


REFERENCE_COLUMNS = (("model", "model"), ("published", "published (%)"), ("source", "source"),
                     ("measured", "measured (%)"), ("delta", "measured \u2212 published (pp)"),
                     ("schedule", "comparable?"),
                     ("n", "n seeds"), ("epochs", "epochs"), ("train_s", "training (s)"))


def reference_section(groups: Sequence[Sequence[RunRecord]]) -> Section:
    """Published vs measured test accuracy."""
    text = ("Published Fashion-MNIST test accuracies (the research plan's Tables I and II, the "
            "Fashion-MNIST README, Agarap 2017) beside what the runs here measured (mean \u00b1 sample "
            "std over seeds). Rows without a measurement are published results for context.")
    return Section("Published vs measured", [Paragraph(text), Table(reference_rows(groups), REFERENCE_COLUMNS)])


# =========================================================================== one run

CONFIG_SUMMARY_KEYS = ("model", "model_args", "epochs", "batch_size", "optimizer", "lr", "weight_decay",
                       "schedule", "warmup_epochs", "loss", "label_smoothing", "flip_h", "flip_v", "shift",
                       "erase", "patience", "val_size", "limit_train", "limit_test", "amp", "seed")

METRIC_LABELS = (("accuracy", "accuracy"), ("precision_macro", "precision (macro)"),
                 ("recall_macro", "recall (macro)"), ("f1_macro", "F1 (macro)"),
                 ("precision_micro", "precision (micro)"), ("recall_micro", "recall (micro)"),
                 ("f1_micro", "F1 (micro)"), ("roc_auc_macro", "ROC AUC (macro, one-vs-rest)"),
                 ("n_test", "test images"), ("checkpoint", "weights evaluated"), ("tta", "test-time augmentation"),
                 ("epochs_trained", "epochs trained"), ("best_epoch", "best validation epoch"),
                 ("train_seconds", "training time (s)"), ("eval_seconds", "evaluation time (s)"))


def model_description(model: str) -> str:
    """The registry's one-line description of a model ("" for a model not registered here)."""
    from cnnlstm.errors import ConfigError
    from cnnlstm.models import get_model_entry

    try:
        return get_model_entry(model).description
    except (ConfigError, KeyError):  # an unknown or renamed model must not stop a report
        return ""


def config_blocks(run: RunRecord) -> list:
    rows = [{"setting": k, "value": plain(run.config[k])} for k in CONFIG_SUMMARY_KEYS if k in run.config]
    return [Table(rows, ("setting", "value"), "main settings"),
            Code(json.dumps(run.config, indent=2), "full config.json", "json")]


def metrics_blocks(run: RunRecord) -> list:
    """Headline metrics, the per-class table (worst class highlighted) and top confusions."""
    m = run.metrics
    values = [{"metric": label, "value": m[k] if isinstance(m[k], (int, float)) and not isinstance(m[k], bool)
               else format_cell(m[k])} for k, label in METRIC_LABELS if k in m]
    per_class = [{"label": c["label"], "name": c["name"], "precision": c["precision"], "recall": c["recall"],
                  "f1": c["f1"], "support": c["support"], "auc": c.get("roc_auc"),
                  "_class": "highlight" if c["label"] == m["worst_class"] else ""} for c in m["per_class"]]
    support = {c["label"]: c["support"] for c in m["per_class"]}
    confusions = [{"true": c["true_name"], "pred": c["pred_name"], "count": c["count"],
                   "share": f"{100 * c['count'] / support[c['true']]:.1f}" if support.get(c["true"]) else None}
                  for c in m["top_confusions"]]
    worst = m["per_class"][m["worst_class"]]["name"]
    return [Table(values, ("metric", "value")),
            Table(per_class, (("label", "label"), ("name", "class"), ("precision", "precision"),
                              ("recall", "recall"), ("f1", "F1"), ("support", "support"),
                              ("auc", "ROC AUC")), f"per class; the worst class ({worst}, lowest F1) is highlighted"),
            Table(confusions, (("true", "true class"), ("pred", "predicted as"), ("count", "count"),
                               ("share", "% of the true class")), "most frequent confusions")]


def run_figures(run: RunRecord) -> list[Figure]:
    worst = ""
    if run.metrics:
        worst = f" ({run.metrics['per_class'][run.metrics['worst_class']]['name']}, the plan's Fig. 6)"
    wanted = (("confusion_matrix.png", "Confusion matrix (counts; rows true, columns predicted)"),
              ("confusion_matrix_normalized.png", "Confusion matrix, rows normalised to recall"),
              ("roc_worst_class.png", f"ROC curve of the worst class{worst}"),
              ("roc_all.png", "One-vs-rest ROC curves of every class"),
              ("misclassified.png", "Misclassified test images (true -> predicted)"))
    return [Figure(p, cap) for name, cap in wanted if (p := run.figure(name))]


def history_blocks(run: RunRecord) -> list:
    blocks: list = []
    if (p := run.figure("history.png")):
        blocks.append(Figures([Figure(p, "Loss, accuracy and learning rate per epoch")]))
    if run.history:
        rows = [{**{k: h.get(k) for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")},
                 "lr": f"{h['lr']:.2e}" if h.get("lr") is not None else None,
                 "seconds": f"{h['seconds']:.1f}" if h.get("seconds") is not None else None} for h in run.history]
        blocks.append(Table(rows, ("epoch", ("train_loss", "train loss"), ("train_acc", "train acc."),
                                   ("val_loss", "val. loss"), ("val_acc", "val. acc."), ("lr", "LR"),
                                   ("seconds", "seconds")), "history.csv"))
    return blocks


def run_section(run: RunRecord, group_size: int = 1) -> Section:
    """Everything about one run folder."""
    desc = model_description(run.model)
    intro = f"Folder {run.path}. Model {run.model}" + (f": {desc}." if desc else ".")
    if group_size > 1:
        intro += f" One of {group_size} seeds of the same experiment."
    blocks: list = [Paragraph(intro), Section("Configuration", config_blocks(run), slug(f"{run.name}-config"))]
    if run.metrics:
        blocks.append(Section("Test metrics", metrics_blocks(run), slug(f"{run.name}-metrics")))
        figs = run_figures(run)
        if figs:
            blocks.append(Section("Evaluation figures", [Figures(figs)], slug(f"{run.name}-figures")))
        if (cal := trust.calibration_blocks(run.metrics, run.path / "figures")):
            blocks.append(Section("Calibration", cal, slug(f"{run.name}-calibration")))
    else:
        blocks.append(Paragraph(f"Not evaluated yet (no metrics.json): run `cnnlstm evaluate {run.path}`."))
    hist = history_blocks(run)
    if hist:
        blocks.append(Section("Training curves", hist, slug(f"{run.name}-history")))
    if (rob := trust.robustness_blocks(run.path)):
        blocks.append(Section("Robustness to corruptions", rob, slug(f"{run.name}-robustness")))
    if (why := trust.explain_blocks(run.path)):
        blocks.append(Section("Where the model looks", why, slug(f"{run.name}-explain")))
    if run.embed:
        blocks.append(Section("t-SNE of the learned features",
                              embed_blocks(run.embed, run.figure("tsne.png"), f"{run.model} features"),
                              slug(f"{run.name}-tsne")))
    return Section(f"Run {run.name}", blocks, slug(f"run-{run.name}"))


# =========================================================================== exploration and sweeps

def _unique_anchors(sections: Sequence[Section], seen: set | None = None) -> None:
    """Suffix repeated anchors (two run folders may share a name) so every link lands right."""
    seen = set() if seen is None else seen
    for s in sections:
        base, n = s.anchor, 1
        while s.anchor in seen:
            n += 1
            s.anchor = f"{base}-{n}"
        seen.add(s.anchor)
        _unique_anchors([b for b in s.blocks if isinstance(b, Section)], seen)


def report_sections(runs: Sequence[RunRecord], explores: Sequence[tuple[Path, dict]],
                    sweeps: Sequence[tuple[Path, dict]]) -> list[Section]:
    """The standard sections for the given folders, in reading order."""
    groups = group_runs(runs)
    sections: list[Section] = []
    if len(runs) > 1:
        sections.append(comparison_section(groups))
    if (diff := differences_section(groups)) is not None:
        sections.append(diff)
    # the published numbers are Fashion-MNIST's: compared only with runs on Fashion-MNIST
    if any(r.metrics and r.data == "fashion-mnist" for r in runs):
        fashion = [kept for g in groups if (kept := [r for r in g if r.data == "fashion-mnist"])]
        sections.append(reference_section(fashion))
    if (emb := embedding_comparison_section(runs, explores)) is not None:
        sections.append(emb)
    sections += [explore_section(p, s) for p, s in explores]
    sections += [sweep_section(p, s) for p, s in sweeps]
    size = {id(r): len(g) for g in groups for r in g}
    sections += [run_section(r, size[id(r)]) for r in runs]
    return sections


def default_title(runs: Sequence[RunRecord], explores, sweeps) -> str:
    if len(runs) == 1 and not explores and not sweeps:
        return f"cnnlstm report: {runs[0].name} ({runs[0].model})"
    parts = [f"{len(runs)} run{'s' * (len(runs) != 1)}" if runs else "",
             "dataset exploration" if explores else "",
             f"{len(sweeps)} sweep{'s' * (len(sweeps) != 1)}" if sweeps else ""]
    return "cnnlstm report: " + ", ".join(p for p in parts if p)


def training_summary(runs: Sequence[RunRecord]) -> str:
    """What the runs trained on, for a report's header: training images and epochs (their range)."""
    if not runs:
        return ""
    epochs = sorted({int(r.config.get("epochs", 0)) for r in runs})
    span = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"
    fewest = fewest_train_images((r.config, r.metrics) for r in runs)
    images = f"{fewest:,} training images" if fewest is not None else "the full training split"
    return f"trained on {images}, {span} epoch{'s' if epochs[-1] != 1 else ''}"


def build_report(inputs: Iterable[str | Path], out_html: str | Path, *, title: str | None = None,
                 explore_dirs: Iterable[str | Path] = (), extra_sections: Sequence[Section] = (),
                 subtitle: str = "") -> dict:
    """Read run / explore / sweep folders and write the HTML report and its Markdown twin.

    Parameters
    ----------
    inputs : iterable of path
        Folders: runs (``config.json``), explorations (``stats.json``), sweeps (``sweep.json``).
    out_html : path
        The HTML file; the Markdown goes beside it with the ``.md`` suffix.
    title : str, optional
        Default names the run, or counts the inputs.
    explore_dirs : iterable of path
        More exploration folders (the CLI's ``--explore``).
    extra_sections : sequence of Section
        Appended after the standard sections (e.g. ``reproduce``'s own tables and figures).
    subtitle : str, optional

    Returns
    -------
    dict
        ``{"html": Path, "md": Path, "runs": int, "experiments": int, "sections": [titles],
        "dataset": str or None}``.

    Raises
    ------
    RunError
        A folder that is none of those kinds, unreadable JSON, or inputs from different datasets.
    """
    kinds = classify_inputs(list(inputs))
    for p in map(Path, explore_dirs):
        if not (p / "stats.json").is_file():
            raise RunError(f"--explore {p}: no stats.json there (run `cnnlstm explore --out {p}`)")
        kinds["explore"].append(p)
    runs = [load_run(p) for p in kinds["runs"]]
    explores = [(p, read_json(p / "stats.json")) for p in dict.fromkeys(kinds["explore"])]
    sweeps = [(p, read_json(p / "sweep.json")) for p in kinds["sweeps"]]
    dataset = check_same_dataset(runs, explores)
    sections = report_sections(runs, explores, sweeps) + list(extra_sections)
    if not sections:
        raise RunError("nothing to report")
    _unique_anchors(sections)
    title = title or default_title(runs, explores, sweeps)
    sub = subtitle or "; ".join(t for t in (f"Data: {dataset}" if dataset else "", training_summary(runs)) if t)
    html_path, md_path = write_report(out_html, title, sections, sub)
    return {"html": html_path, "md": md_path, "runs": len(runs), "experiments": len(group_runs(runs)),
            "sections": [s.title for s in sections], "dataset": dataset}
