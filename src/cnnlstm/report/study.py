"""The study's report: the plan's Tables I and II (published vs measured), hybrids vs baselines,
the ablations, the flagship's figures, the t-SNE comparison and a generated summary.

Numbers are aggregated over seeds as mean +- sample standard deviation, with the number of seeds.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

import numpy as np

from cnnlstm import plots
from cnnlstm.data import Dataset
from cnnlstm.references import REFERENCES
from cnnlstm.report.page import Figure, Figures, Paragraph, Section, Table, write_report
from cnnlstm.reproduce import ABLATIONS, FLAGSHIP, Job, StudyPreset, collect_runs
from cnnlstm.runs import read_json
from cnnlstm.stats import mean_std

log = logging.getLogger(__name__)

PUBLISHED = {r.key: {"name": r.name, "accuracy": r.accuracy, "source": r.source} for r in REFERENCES}

# The plan's Table I rows: (published row, the model that measures it here).
TABLE_ONE = (("human", None), ("ji_cnn_lstm", "ji_cnn_lstm"), ("tf_cnn", "tf_cnn"), ("cnn_svm", "cnn_svm"))
TABLE_TWO = (("model1", "model1"), ("model2", "model2"))
HYBRID_PAIRS = (("model1_lstm", "model1"), ("model2_lstm", "model2"), ("parallel_cnn_lstm", "model1"),
                (FLAGSHIP, "model1"), (FLAGSHIP, "model2"))


def fmt_pct(mean: float, std: float | None, n: int) -> str:
    """``"mean ± std"`` in percent; the mean alone for one seed (whose std is None)."""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if n > 1 else f"{100 * mean:.2f}"


def aggregate(runs: list[dict], group_key) -> dict[str, dict]:
    """Group finished runs by ``group_key(run)`` and summarise accuracy, F1, epochs and time."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    out = {}
    for key, members in groups.items():
        acc = [r["metrics"]["accuracy"] for r in members]
        f1 = [r["metrics"]["f1_macro"] for r in members]
        secs = [r["metrics"].get("train_seconds", 0.0) for r in members]
        epochs = [len(r["history"]) for r in members]
        m, s = mean_std(acc)
        out[key] = {"n": len(members), "acc_mean": m, "acc_std": s, "f1_mean": mean_std(f1)[0],
                    "seconds": statistics.fmean(secs), "epochs": max(epochs), "runs": members}
    return out


def measured_row(label: str, published: dict | None, agg: dict | None) -> dict:
    row = {"model": label,
           "published": f"{published['accuracy']:.2f}" if published else "—",
           "source": published["source"] if published else "",
           "measured (test %)": "not run" if label_is_model(label) else "—",
           "seeds": "", "epochs": "", "train time (s)": "", "Δ vs published": ""}
    if agg:
        row.update({"measured (test %)": fmt_pct(agg["acc_mean"], agg["acc_std"], agg["n"]),
                    "seeds": agg["n"], "epochs": agg["epochs"], "train time (s)": f"{agg['seconds']:.0f}"})
        if published:
            row["Δ vs published"] = f"{100 * agg['acc_mean'] - published['accuracy']:+.2f}"
    return row


def label_is_model(label: str) -> bool:
    return not label.lower().startswith("human")


def published_tables(models: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    """Rows of Table I (reference methods) and Table II (the plan's baselines)."""
    one = [measured_row(PUBLISHED[key]["name"], PUBLISHED[key], models.get(model) if model else None)
           for key, model in TABLE_ONE]
    one += [measured_row(f"{m} (this project)", None, models.get(m)) for m in (FLAGSHIP,) if m in models]
    two = [measured_row(PUBLISHED[key]["name"], PUBLISHED[key], models.get(model)) for key, model in TABLE_TWO]
    return one, two


def hybrid_rows(models: dict[str, dict]) -> list[dict]:
    rows = []
    for hybrid, base in HYBRID_PAIRS:
        if hybrid in models and base in models:
            h, b = models[hybrid], models[base]
            rows.append({"hybrid": hybrid, "test % (hybrid)": fmt_pct(h["acc_mean"], h["acc_std"], h["n"]),
                         "baseline": base, "test % (baseline)": fmt_pct(b["acc_mean"], b["acc_std"], b["n"]),
                         "difference (points)": f"{100 * (h['acc_mean'] - b['acc_mean']):+.2f}",
                         "train time ratio": f"{h['seconds'] / max(b['seconds'], 1e-9):.1f}x"})
    return rows


def ablation_rows(ablations: dict[str, dict]) -> list[dict]:
    ref = ablations.get("all_on")
    rows = []
    for name, (label, _) in ABLATIONS.items():
        agg = ablations.get(name)
        if not agg:
            continue
        delta = f"{100 * (agg['acc_mean'] - ref['acc_mean']):+.2f}" if ref and name != "all_on" else ""
        rows.append({"ablation": name, "change": label,
                     "test %": fmt_pct(agg["acc_mean"], agg["acc_std"], agg["n"]),
                     "Δ vs all on (points)": delta, "seeds": agg["n"], "epochs": agg["epochs"],
                     "train time (s)": f"{agg['seconds']:.0f}"})
    return rows


def summary_text(models: dict[str, dict], ablations: dict[str, dict]) -> list[str]:
    """Plain sentences: which hybrid beat which baseline by how much, and what the ablations show."""
    lines = []
    for hybrid, base in HYBRID_PAIRS:
        if hybrid in models and base in models:
            d = 100 * (models[hybrid]["acc_mean"] - models[base]["acc_mean"])
            verb = "beat" if d > 0 else "trailed"
            lines.append(f"{hybrid} {verb} {base} by {abs(d):.2f} points of test accuracy "
                         f"({100 * models[hybrid]['acc_mean']:.2f}% vs {100 * models[base]['acc_mean']:.2f}%, "
                         f"{_seeds_phrase(models[hybrid]['n'], models[base]['n'])}).")
    if FLAGSHIP in models and "ji_cnn_lstm" in PUBLISHED:
        d = 100 * models[FLAGSHIP]["acc_mean"] - PUBLISHED["ji_cnn_lstm"]["accuracy"]
        side = "above" if d >= 0 else "below"
        lines.append(f"The flagship {FLAGSHIP} scored {100 * models[FLAGSHIP]['acc_mean']:.2f}%, {abs(d):.2f} "
                     f"points {side} Ji's published CNN+LSTM (91.36%).")
    ref = ablations.get("all_on")
    if ref:
        worst = sorted(((a["acc_mean"] - ref["acc_mean"], k) for k, a in ablations.items() if k != "all_on"))
        if worst:
            d, k = worst[0]
            lines.append(f"Of the ablations, {ABLATIONS[k][0]} changed the flagship most: {100 * d:+.2f} points.")
    return lines


def embedding_labels(info: dict, ds: Dataset) -> np.ndarray:
    """The class of every embedded point, from ``embed.json``'s index space and indices."""
    if info.get("index_space") == "test":
        pool = ds.test_labels
    else:  # the raw-pixel t-SNE indexes train then test
        pool = np.concatenate([ds.train_labels, ds.test_labels])
    idx = info.get("indices")
    return pool[np.asarray(idx, dtype=np.int64)] if idx is not None else pool[:info["n"]]


def _seeds_phrase(a: int, b: int) -> str:
    return f"{a} seed{'s' * (a > 1)} each" if a == b else f"{a} and {b} seeds"


def tsne_figure(root: Path, jobs: list[Job], ds: Dataset, out: Path) -> tuple[Path | None, list[dict]]:
    """Raw pixels beside the embedded models' features, with their embedding metrics."""
    sources = [("raw pixels", root / "explore")]
    sources += [(f"{j.label} features", j.folder(root)) for j in jobs if j.kind == "embed"]
    panels, rows = [], []
    for name, folder in sources:
        if not ((folder / "embed.json").exists() and (folder / "embedding.npy").exists()):
            continue
        info = read_json(folder / "embed.json")
        panels.append((np.load(folder / "embedding.npy"), embedding_labels(info, ds), name, info.get("quality")))
        rows.append(_quality_row(name, info))
    if not panels:
        return None, rows
    return plots.plot_embeddings_side_by_side(panels, ds.classes, out), rows


def _quality_row(name: str, info: dict) -> dict:
    q = info.get("quality", {})
    emb, feat = q.get("embedding", {}), q.get("features", {})
    f = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    return {"input": name, "n": info.get("n", ""), "K0": info.get("k0", ""),
            "10-NN acc (original space)": f(feat.get("knn10")), "1-NN acc (t-SNE)": f(emb.get("knn1")),
            "10-NN acc (t-SNE)": f(emb.get("knn10")), "trustworthiness": f(emb.get("trustworthiness")),
            "Spearman (distances)": f(emb.get("spearman"))}


def write_study_report(root: str | Path, jobs: list[Job], preset: StudyPreset, ds: Dataset) -> Path:
    """Compose and write ``root/report.html`` and ``root/report.md``; return the HTML path."""
    root = Path(root)
    runs = collect_runs(root, jobs)
    main_runs = [r for r in runs if r["job"].group != "ablation"]
    models = aggregate(main_runs, lambda r: r["cfg"].model)
    ablations = aggregate([r for r in runs if r["job"].group == "ablation"], lambda r: r["job"].name.rsplit("-s", 1)[0])
    one, two = published_tables(models)
    fig_dir = root / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tsne_png, tsne_rows = tsne_figure(root, jobs, ds, fig_dir / "tsne_comparison.png")
    sections = build_sections(root, preset, models, ablations, one, two, tsne_png, tsne_rows, ds)
    out = root / "report.html"
    write_report(out, f"cnnlstm study ({preset.name})", sections)
    return out


def dataset_warning(ds: Dataset) -> list[Paragraph]:
    if ds.verified:
        return [Paragraph(f"Dataset: Fashion-MNIST, checksums verified ({ds.source}).")]
    return [Paragraph(f"WARNING: the dataset ({ds.source}) is not verified Fashion-MNIST, so the published "
                      "numbers are not comparable with these measurements.")]


def build_sections(root: Path, preset: StudyPreset, models: dict, ablations: dict, one: list[dict],
                   two: list[dict], tsne_png: Path | None, tsne_rows: list[dict], ds: Dataset) -> list[Section]:
    """The report's sections, in reading order."""
    ref_cols = ["model", "published", "measured (test %)", "Δ vs published", "seeds", "epochs",
                "train time (s)", "source"]
    sections = [
        Section("Summary", [Paragraph(t) for t in summary_text(models, ablations)] + [Paragraph(
            f"Study preset '{preset.name}'. Test accuracy in percent, mean ± sample std over the seeds "
            "shown; every best epoch was chosen on a 5,000-image validation split of the training set, "
            "never on the test set. Published numbers are the papers' own; training time is this "
            "machine's training-loop seconds (validation excluded).")] + dataset_warning(ds)),
        Section("Table I: published methods vs measured here", [Table(one, ref_cols)]),
        Section("Table II: the plan's baselines, published vs measured", [Table(two, ref_cols)]),
    ]
    hybrids = hybrid_rows(models)
    if hybrids:
        sections.append(Section("CNN-LSTM hybrids vs the baselines", [Table(hybrids, list(hybrids[0]))]))
    ranked = sorted(models.items(), key=lambda kv: -kv[1]["acc_mean"])
    all_rows = [{"model": m, "test %": fmt_pct(a["acc_mean"], a["acc_std"], a["n"]),
                 "macro F1 %": f"{100 * a['f1_mean']:.2f}", "seeds": a["n"], "epochs": a["epochs"],
                 "train time (s)": f"{a['seconds']:.0f}"} for m, a in ranked]
    if all_rows:
        sections.append(Section("All models, ranked", [Table(all_rows, list(all_rows[0]))]))
    abl = ablation_rows(ablations)
    if abl:
        sections.append(Section("Ablations of the flagship", [
            Paragraph("Each row changes one thing of the flagship under the same (ablation) schedule; "
                      "Δ is against the 'all_on' row."), Table(abl, list(abl[0]))]))
    sections += flagship_sections(models)
    tsne_blocks = []
    if tsne_rows:
        tsne_blocks.append(Table(tsne_rows, list(tsne_rows[0])))
    if tsne_png:
        tsne_blocks.append(Figure(tsne_png, "t-SNE (PCA initialisation, K0 = floor((ln n)^2) exaggeration "
                                            "iterations): raw pixels beside learned features"))
    if tsne_blocks:
        tsne_blocks.insert(0, Paragraph("t-SNE as the plan's assistant metric: kNN accuracy in the "
                                        "embedding, trustworthiness and Spearman correlation of distances "
                                        "make the plots comparable (Gove et al. 2022)."))
        sections.append(Section("t-SNE of raw pixels and learned features", tsne_blocks))
    sections += explore_sections(root)
    return sections


def flagship_sections(models: dict) -> list[Section]:
    """The flagship's confusion matrix and worst-class ROC (seed 0's run)."""
    agg = models.get(FLAGSHIP)
    if not agg:
        return []
    run = agg["runs"][0]
    figs = run["folder"] / "figures"
    worst = run["metrics"]["worst_class"]
    name = run["metrics"]["per_class"][worst]["name"]
    items = [Figure(figs / f, c) for f, c in (
        ("confusion_matrix.png", "confusion matrix (counts; rows true, columns predicted)"),
        ("roc_worst_class.png", f"ROC of the worst class, {name} (the plan's Fig. 6)"),
        ("history.png", "training curves")) if (figs / f).exists()]
    per_class = [{"label": c["label"], "class": c["name"], "precision": f"{c['precision']:.3f}",
                  "recall": f"{c['recall']:.3f}", "F1": f"{c['f1']:.3f}",
                  "_class": "highlight" if c["label"] == worst else ""} for c in run["metrics"]["per_class"]]
    return [Section(f"The flagship {FLAGSHIP} ({run['folder'].name})", [
        Table(per_class, ["label", "class", "precision", "recall", "F1"]), Figures(items)])]


def explore_sections(root: Path) -> list[Section]:
    """The plan's exploration figures (class balance, box plots, raw t-SNE)."""
    figs = root / "explore" / "figures"
    if not figs.is_dir():
        return []
    items = [Figure(p, p.stem.replace("_", " ")) for p in sorted(figs.glob("*.png"))]
    return [Section("Exploring Fashion-MNIST (the plan's Fig. 2-4)", [Figures(items)])] if items else []
