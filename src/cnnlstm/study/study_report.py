"""The study's report: the plan's question answered with matched controls and intervals.

Sections, in reading order: a summary whose every claim is a verdict of :mod:`cnnlstm.measure.stats`
(A better, B better, equivalent within the margin, or inconclusive at this n; or that it rests on one seed); "What the LSTM adds" (each hybrid beside
its no-LSTM control, trained under the same recipe); the plan's Tables I and II, published vs
measured, where a run shorter than its published recipe is marked not comparable; the ablations;
the flagship's figures; the t-SNE comparison; the exploration; where the time went (the job log).

Numbers are aggregated over seeds as mean +- sample standard deviation, with n; intervals and
tests come from :mod:`cnnlstm.measure.stats` (scipy.stats).

Why one module of this size: the study report is one document whose sections read the same
aggregated runs; its comparison logic lives in ``compare.py`` and its statistics in
:mod:`cnnlstm.measure.stats`, so what remains here is the wording and layout of each section.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

import numpy as np

from cnnlstm.config import config_to_dict
from cnnlstm.data import Dataset
from cnnlstm.measure.stats import MARGIN, Comparison, adjust, format_mean_std, mean_std, one_sample_interval
from cnnlstm.reporting import figures as plots
from cnnlstm.reporting.compare import (
    SEED_PAIR_NOTE,
    MatchedPair,
    SeedRun,
    compare_groups,
    comparison_cells,
    match_pairs,
    seed_pair_rows,
)
from cnnlstm.reporting.page import BulletList, Figure, Figures, Paragraph, Section, Table, write_report
from cnnlstm.reporting.raw import comparison_row, run_rows, write_raw_numbers
from cnnlstm.reporting.records import dataset_title, fewest_train_images, trained_size
from cnnlstm.reporting.references import REFERENCES, Reference, recipe_status
from cnnlstm.runs import read_json
from cnnlstm.study.reproduce import (
    ABLATIONS,
    CONTROL_PAIRS,
    FLAGSHIP,
    FLAGSHIP_FAMILY,
    USER_GROUP,
    Job,
    StudyPreset,
    collect_runs,
)

log = logging.getLogger(__name__)

PUBLISHED: dict[str, Reference] = {r.key: r for r in REFERENCES}

# The plan's Table I rows: (published row, the model that measures it here).
TABLE_ONE = (("human", None), ("ji_cnn_lstm", "ji_cnn_lstm"), ("tf_cnn", "tf_cnn"), ("cnn_svm", "cnn_svm"))
TABLE_TWO = (("model1", "model1"), ("model2", "model2"))


def fmt_pct(mean: float, std: float | None, n: int) -> str:
    """``"mean ± std"`` in percent; the mean alone for one seed (whose std is None)."""
    return format_mean_std(mean, std if n > 1 else None, scale=100, digits=2)


def aggregate(runs: list[dict], group_key) -> dict[str, dict]:
    """Group finished runs by ``group_key(run)``: accuracy over seeds, F1, epochs, time, the runs."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    out = {}
    for key, members in groups.items():
        acc = [r["metrics"]["accuracy"] for r in members]
        m, s = mean_std(acc)
        out[key] = {"n": len(members), "acc_mean": m, "acc_std": s,
                    "f1_mean": mean_std(r["metrics"]["f1_macro"] for r in members)[0],
                    "seconds": statistics.fmean(r["metrics"].get("train_seconds", 0.0) for r in members),
                    "epochs": max(r["cfg"].epochs for r in members), "runs": members,
                    "train_images": fewest_train_images((config_to_dict(r["cfg"]), r["metrics"]) for r in members),
                    "seed_runs": [SeedRun(r["cfg"].seed, r["metrics"]["accuracy"], r["folder"],
                                          config_to_dict(r["cfg"])) for r in members]}
    return out


# --------------------------------------------------------------------------- Tables I and II


def measured_row(ref: Reference, agg: dict | None) -> dict:
    """One row of Table I or II: published beside measured, with the difference where it means something."""
    row = {"model": ref.name, "published": f"{ref.accuracy:.2f}", "source": ref.source,
           "measured (test %)": "—" if ref.model is None else "not run in this preset",
           "seeds": "", "epochs": "", "schedule": "", "Δ vs published": "", "95% CI of Δ": "",
           "train time (s)": ""}
    if ref.model is None or agg is None:
        return row
    status, comparable = recipe_status(ref, epochs=agg["epochs"], train_images=agg["train_images"])
    row.update({"measured (test %)": fmt_pct(agg["acc_mean"], agg["acc_std"], agg["n"]), "seeds": agg["n"],
                "epochs": agg["epochs"], "schedule": status, "train time (s)": f"{agg['seconds']:.0f}"})
    if comparable:
        row["Δ vs published"] = f"{100 * agg['acc_mean'] - ref.accuracy:+.2f}"
        ci = one_sample_interval([r.accuracy * 100 for r in agg["seed_runs"]], ref.accuracy)
        row["95% CI of Δ"] = f"{ci[0]:+.2f} to {ci[1]:+.2f}" if ci else "— (1 seed)"
    return row


def published_tables(models: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    """Rows of Table I (reference methods) and Table II (the plan's baselines)."""
    one = [measured_row(PUBLISHED[key], models.get(model) if model else None) for key, model in TABLE_ONE]
    two = [measured_row(PUBLISHED[key], models.get(model)) for key, model in TABLE_TWO]
    return one, two


# --------------------------------------------------------------------------- what the LSTM adds


#: The study's families of hypotheses, each adjusted within itself (Holm).
LSTM_FAMILY = "hybrid vs control"
ABLATION_FAMILY = "ablations vs all_on"


def control_comparisons(models: dict[str, dict]) -> list[MatchedPair]:
    """Every hybrid against its control, for the pairs the study trained (:func:`match_pairs`): one
    family, :data:`LSTM_FAMILY`, adjusted together."""
    return match_pairs({name: agg["seed_runs"] for name, agg in models.items()}, CONTROL_PAIRS, family=LSTM_FAMILY)


def forest_figure(pairs: list[MatchedPair], path: Path) -> Figure:
    """The forest plot of ``pairs`` (Δ and its interval over seeds, a zero line) as a report block."""
    from cnnlstm.reporting import figures as plots

    plots.plot_forest([p.forest_row() for p in pairs], path)
    return Figure(path, "Δ test accuracy of each pair with its 95% t-interval over paired seeds; an interval "
                        "that crosses the dashed zero line claims no difference (the table gives each verdict)")


def control_rows(models: dict[str, dict], comparisons: list[MatchedPair], ds: Dataset) -> list[dict]:
    """The table of "What the LSTM adds": each hybrid beside its control, sized as trained on ``ds``."""
    shape = {"image_size": ds.image_size, "channels": ds.channels, "num_classes": ds.num_classes}
    rows = []
    for pair in comparisons:
        h, c = models[pair.a], models[pair.b]
        ph, fh = trained_size(pair.a, h["seed_runs"][0].config, **shape)
        pc, fc = trained_size(pair.b, c["seed_runs"][0].config, **shape)
        rows.append({"hybrid": pair.a, "control": pair.b, "params": f"{ph:,} / {pc:,}",
                     "MFLOPs/image": f"{fh:.2f} / {fc:.2f}", "epochs": f"{h['epochs']} / {c['epochs']}",
                     "train s": f"{h['seconds']:.0f} / {c['seconds']:.0f}",
                     "test % (hybrid)": fmt_pct(h["acc_mean"], h["acc_std"], h["n"]),
                     "test % (control)": fmt_pct(c["acc_mean"], c["acc_std"], c["n"]),
                     **comparison_cells(pair.comparison),
                     "recipe": "same" if not pair.differences else "DIFFERS: " + "; ".join(pair.differences)})
    return rows


# --------------------------------------------------------------------------- ablations


def ablation_comparisons(ablations: dict[str, dict]) -> dict[str, Comparison]:
    """Each ablation against the flagship under the same schedule (the ``all_on`` row)."""
    ref = ablations.get("all_on")
    if not ref:
        return {}
    names = [name for name in ablations if name != "all_on"]
    raw = [compare_groups(name, ablations[name]["seed_runs"], "all_on", ref["seed_runs"]) for name in names]
    return dict(zip(names, adjust(raw, ABLATION_FAMILY)))


def ablation_rows(ablations: dict[str, dict], comparisons: dict[str, Comparison]) -> list[dict]:
    rows = []
    for name, (label, _) in ABLATIONS.items():
        agg = ablations.get(name)
        if not agg:
            continue
        cells = comparison_cells(comparisons[name]) if name in comparisons else {}
        rows.append({"ablation": name, "change": label,
                     "test %": fmt_pct(agg["acc_mean"], agg["acc_std"], agg["n"]),
                     "Δ vs all on (points)": cells.get("Δ (points)", ""),
                     "95% CI over seeds": cells.get("95% CI over seeds", ""),
                     "verdict": cells.get("verdict", ""), "seeds": agg["n"], "epochs": agg["epochs"], "train time (s)": f"{agg['seconds']:.0f}"})
    return rows


# --------------------------------------------------------------------------- summary


def flagship_vs_published(models: dict[str, dict]) -> str | None:
    """The flagship's mean beside Ji's published CNN+LSTM, without a claim the data cannot carry."""
    agg, ji = models.get(FLAGSHIP), PUBLISHED.get("ji_cnn_lstm")
    if not agg or not ji:
        return None
    ci = one_sample_interval([r.accuracy * 100 for r in agg["seed_runs"]], ji.accuracy)
    where = (f"95% CI of the difference {ci[0]:+.2f} to {ci[1]:+.2f} points" if ci
             else "one seed, so no interval")
    return (f"The flagship {FLAGSHIP} scored {fmt_pct(agg['acc_mean'], agg['acc_std'], agg['n'])}% over "
            f"{agg['n']} seed{'s' * (agg['n'] > 1)} ({agg['epochs']} epochs); {ji.name} published {ji.accuracy:.2f}% "
            f"from one run of an unpublished recipe ({where}). These are different models, so this places "
            "the flagship, it does not reproduce Ji.")


def summary_text(models: dict[str, dict], comparisons, ablation_cmp: dict[str, Comparison],
                 preset: StudyPreset, fashion: bool = True) -> list[str | list[str]]:
    """Plain sentences, each backed by an interval: what the LSTM adds, the flagship, the ablations.

    A list among them is a bulleted list (one claim per control pair).
    """
    lines: list[str | list[str]] = []
    if comparisons:
        margin = 100 * comparisons[0].comparison.verdict.margin
        short = preset.overrides.get("epochs") or preset.flagship_overrides.get("epochs")
        when = (f" after {short} epochs, this preset's short schedule: a statement about how fast each model "
                "learns, not where it ends" if short else "")
        lines.append(f"What the LSTM adds, each hybrid against its control at the same recipe and schedule{when} "
                     f"(margin ±{margin:.1f} points; p-values Holm-adjusted over the {len(comparisons)} pairs):")
        lines.append([pair.claim() for pair in comparisons])
    if fashion and (text := flagship_vs_published(models)) is not None:
        lines.append(text)
    if ablation_cmp:
        claimed = [(abs(c.seeds.diff), name, c) for name, c in ablation_cmp.items()
                   if c.kind in ("A better", "B better")]
        if claimed:
            _, name, c = max(claimed)
            lines.append(f"Of the ablations, the largest change that survives Holm over the {len(ablation_cmp)} "
                         f"ablations was {ABLATIONS[name][0]}: {c.sentence()}.")
        else:
            n = min(c.seeds.n for c in ablation_cmp.values())
            kinds = [c.kind for c in ablation_cmp.values()]
            lines.append("The ablations ran at one seed each, so none can show a change of the flagship (an "
                         "interval needs at least two seeds); their single-seed differences are in the table."
                         if n < 2 else
                         f"No ablation changed the flagship at {n} seeds after Holm over the {len(kinds)} "
                         f"ablations: {kinds.count('equivalent')} equivalent within the margin, "
                         f"{kinds.count('inconclusive')} inconclusive (each row's interval is in the table).")
    if preset.note:
        lines.append(f"This preset ({preset.name}): {preset.note}.")
    return lines


def embedding_labels(info: dict, ds: Dataset) -> np.ndarray:
    """The class of every embedded point, from ``embed.json``'s index space and indices."""
    if info.get("index_space") == "test":
        pool = ds.test_labels
    else:  # the raw-pixel t-SNE indexes train then test
        pool = np.concatenate([ds.train_labels, ds.test_labels])
    idx = info.get("indices")
    return pool[np.asarray(idx, dtype=np.int64)] if idx is not None else pool[:info["n"]]


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


def write_study_report(root: str | Path, jobs: list[Job], preset: StudyPreset, ds: Dataset, *,
                       failed: dict[str, str] | None = None) -> Path:
    """Compose and write ``root/report.html`` and ``root/report.md``; return the HTML path.

    ``failed`` (job name -> error, as :func:`cnnlstm.study.reproduce.run_study` returns it) and
    every planned run without its ``metrics.json`` are listed in the summary as missing.
    """
    root = Path(root)
    runs = collect_runs(root, jobs)
    main_runs = [r for r in runs if r["job"].group != "ablation"]
    models = aggregate(main_runs, lambda r: r["cfg"].model)
    ablations = aggregate([r for r in runs if r["job"].group == "ablation"], lambda r: r["job"].name.rsplit("-s", 1)[0])
    fig_dir = root / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tsne_png, tsne_rows = tsne_figure(root, jobs, ds, fig_dir / "tsne_comparison.png")
    comparisons, ablation_cmp = control_comparisons(models), ablation_comparisons(ablations)
    sections = build_sections(root, preset, models, ablations, tsne_png, tsne_rows, ds, jobs, comparisons,
                              ablation_cmp)
    write_raw_numbers(root, [row for r in runs for row in run_rows(preset.name, r["job"].name.rsplit("-s", 1)[0],
                                                                   r["cfg"].seed, r["metrics"])],
                      [comparison_row(p.comparison) for p in comparisons]
                      + [comparison_row(c) for c in ablation_cmp.values()])
    missing = missing_runs(root, jobs, failed or {})
    if missing:
        sections[0].blocks.append(missing)
    out = root / "report.html"
    write_report(out, f"cnnlstm study ({preset.name})", sections)
    return out


def missing_runs(root: Path, jobs: list[Job], failed: dict[str, str]) -> Paragraph | None:
    """A paragraph naming the planned runs that did not finish (and why, for those that failed)."""
    from cnnlstm.study.reproduce import job_done, job_key

    names = [job_key(j) for j in jobs if not job_done(j, root)]
    names += [n for n in failed if n not in names]
    if not names:
        return None
    parts = [f"{n} ({failed[n]})" if n in failed else n for n in names]
    return Paragraph(f"Missing from this report: {len(parts)} job(s) did not finish, so every table above is "
                     f"without them: {'; '.join(parts)}. Rerunning the same command retries them.")


def training_header(models: dict, ablations: dict, ds: Dataset) -> str:
    """The study's training set and schedules in one sentence, for the report's header."""
    groups = list(models.values()) + list(ablations.values())
    known = [g["train_images"] for g in groups if g["train_images"] is not None]
    full = len(ds.train_labels) - max((r["metrics"].get("n_val") or 0 for g in groups for r in g["runs"]), default=0)
    images = min(known) if known else full
    epochs = sorted({g["epochs"] for g in groups})
    span = ", ".join(map(str, epochs)) or "none"
    n_test = min((r["metrics"]["n_test"] for g in groups for r in g["runs"]), default=len(ds.test_labels))
    return (f"Training set: {images:,} images per run{' (shortened)' if images < full else ''}; schedules of "
            f"{span} epochs (each model's in the tables). Test set: {n_test:,} images.")


def dataset_warning(ds: Dataset) -> list[Paragraph]:
    if ds.name != "fashion-mnist":
        return [Paragraph(f"Dataset: {ds.name} ({ds.image_size}x{ds.image_size}, "
                          f"{'RGB' if ds.channels == 3 else 'greyscale'}, {ds.num_classes} classes; arrays SHA-256 "
                          f"{ds.checksum[:16]}...). The published numbers of Tables I and II are Fashion-MNIST's, "
                          "so they are left out.")]
    if ds.verified:
        return [Paragraph(f"Dataset: Fashion-MNIST, checksums verified ({ds.source}).")]
    return [Paragraph(f"WARNING: the dataset ({ds.source}) is not verified Fashion-MNIST, so the published "
                      "numbers are not comparable with these measurements.")]


REF_COLUMNS = ["model", "published", "measured (test %)", "seeds", "epochs", "schedule", "Δ vs published",
               "95% CI of Δ", "train time (s)", "source"]

HOW_TO_READ = (
    "Test accuracy in percent, mean ± sample std over the n seeds shown. Every best epoch was chosen on a "
    "validation split held out of the training set, never on the test set. Each comparison gives Δ, its 95% "
    "t-interval over paired seeds (seed k with seed k), n, the effect this n detects with 80% power (MDE), and "
    f"one of four verdicts against a margin m of {100 * MARGIN:.1f} points: A better or B better (the t-test rejects 0), "
    "equivalent within ±m (TOST: the 90% interval lies inside ±m), or inconclusive at this n. P-values are "
    "Holm-adjusted within each named family (the hybrid-vs-control pairs; the ablations). McNemar's exact test "
    "and a paired bootstrap over the test images are shown per seed pair, and measure test-set sampling noise "
    "only, not seed-to-seed variation. Training time is the training loop's seconds on this machine "
    "(validation excluded).")


def recipe_label(model: str, preset: StudyPreset, yours: frozenset[str] = frozenset()) -> str:
    """Which training preset a model of this study used (a user's models take the flagship's)."""
    return preset.flagship_preset if model in FLAGSHIP_FAMILY or model in yours else preset.model_preset


#: control_rows' columns as the "Your models" section names them.
YOURS_COLUMNS = {"hybrid": "your model", "control": "against", "test % (hybrid)": "test % (yours)",
                 "test % (control)": "test % (against)"}


def user_models_section(root: Path, models: dict, jobs: list[Job], ds: Dataset) -> Section | None:
    """A user's models (``--model-file``) against the flagship and its twin, under one recipe."""
    yours = [m for m in dict.fromkeys(j.cfg.model for j in jobs if j.group == USER_GROUP) if m in models]
    pairs = match_pairs({name: agg["seed_runs"] for name, agg in models.items()},
                        [(m, ref) for m in yours for ref in (FLAGSHIP, "cnn_twin") if ref in models])
    if not pairs:
        return None
    rows = [{YOURS_COLUMNS.get(k, k): v for k, v in row.items()} for row in control_rows(models, pairs, ds)]
    return Section("Your models", [
        Paragraph("Each model of your file trained with the flagship's training preset and seeds, beside the "
                  "flagship and its no-LSTM twin. Columns with a slash give yours / the other. "
                  "Δ = yours − the other."),
        Table(rows, list(rows[0])), forest_figure(pairs, root / "figures" / "forest_yours.png")])


def build_sections(root: Path, preset: StudyPreset, models: dict, ablations: dict, tsne_png: Path | None,
                   tsne_rows: list[dict], ds: Dataset, jobs: list[Job], comparisons: list[MatchedPair],
                   ablation_cmp: dict[str, Comparison]) -> list[Section]:
    """The report's sections, in reading order (``comparisons`` and ``ablation_cmp`` as
    :func:`control_comparisons` and :func:`ablation_comparisons` give them)."""
    one, two = published_tables(models)
    sections = [Section("Summary", [BulletList(t) if isinstance(t, list) else Paragraph(t)
                                    for t in summary_text(models, comparisons, ablation_cmp, preset, ds.name == "fashion-mnist")]
                        + [Paragraph(HOW_TO_READ), Paragraph(training_header(models, ablations, ds))]
                        + dataset_warning(ds))]
    rows = control_rows(models, comparisons, ds)
    if rows:
        sections.append(Section("What the LSTM adds", [
            Paragraph("Each hybrid beside its control: the same network and recipe with the LSTM taken out. "
                      "cnn_twin is the flagship's stem with a dense layer of the same parameter count in place "
                      "of the BiLSTM (fewer FLOPs: a dense layer reads each weight once per image, the LSTM "
                      "once per step); cnn_gap is the stem with global average pooling; model1 is the "
                      "control of model1_lstm and of parallel_cnn_lstm (whose CNN branch alone is Model I). "
                      "Columns with a slash give hybrid / control. Δ = hybrid − control."),
            Table(rows, list(rows[0])), forest_figure(comparisons, root / "figures" / "forest.png"),
            Paragraph(SEED_PAIR_NOTE),
            Table(pairs, list(pairs[0])) if (pairs := [r for p in comparisons for r in seed_pair_rows(p.comparison)])
            else Paragraph("No seed pair has predictions of the same test images.")]))
    sections += [] if ds.name != "fashion-mnist" else [
        Section("Table I: published methods vs measured here", [
            Paragraph("Each reference is trained with its published recipe where the preset can afford it "
                      "(presets/paper.toml cites the source of every setting). A run shorter than its recipe "
                      "is marked not comparable and gets no Δ; where the source gives no schedule, the one "
                      "chosen here is said."),
            Table(one, REF_COLUMNS)]),
        Section("Table II: the plan's baselines, published vs measured", [Table(two, REF_COLUMNS)]),
    ]
    sections += [sec for sec in [user_models_section(root, models, jobs, ds)] if sec is not None]
    yours = frozenset(j.cfg.model for j in jobs if j.group == USER_GROUP)
    ranked = sorted(models.items(), key=lambda kv: -kv[1]["acc_mean"])
    all_rows = [{"model": m, "test %": fmt_pct(a["acc_mean"], a["acc_std"], a["n"]),
                 "macro F1 %": f"{100 * a['f1_mean']:.2f}", "seeds": a["n"],
                 "recipe": recipe_label(m, preset, yours), "epochs": a["epochs"],
                 "train time (s)": f"{a['seconds']:.0f}"} for m, a in ranked]
    if all_rows:
        sections.append(Section("All models, ranked", [
            Paragraph("Models under different recipes are listed together here, not compared: the "
                      "comparisons are in \"What the LSTM adds\"."), Table(all_rows, list(all_rows[0]))]))
    abl = ablation_rows(ablations, ablation_cmp)
    if abl:
        sections.append(Section("Ablations of the flagship", [
            Paragraph("Each row changes one thing of the flagship under the flagship's own schedule; Δ is "
                      "against the 'all_on' row, with its 95% interval over seeds."), Table(abl, list(abl[0]))]))
    sections += flagship_sections(models)
    sections += [sec for sec in (calibration_section(models),
                                 robustness_section(robustness_records(root, jobs), root, jobs),
                                 explain_section(root, jobs), audit_section(root)) if sec is not None]
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
    sections += explore_sections(root, ds)
    sections += [sec for sec in [time_section(root)] if sec is not None]
    return sections


def job_time_rows(log_rows: list[dict]) -> list[dict]:
    """Per job kind, in the order a study runs them: jobs done, their total, median and longest time, failures.

    Times are each job's own run time where it ran, so on a cluster they add up to more than the
    study's wall time.
    """
    kinds: dict[str, list[dict]] = {}
    for row in log_rows:
        kinds.setdefault(row["kind"], []).append(row)
    out = []
    for kind, rows in kinds.items():
        done = [r for r in rows if r["status"] == "done"]
        secs = [r["seconds"] for r in done]
        longest = max(done, key=lambda r: r["seconds"]) if done else None
        out.append({"kind": kind, "done": len(done), "failed": len(rows) - len(done),
                    "total": f"{sum(secs) / 60:.1f} min", "median": f"{statistics.median(secs):.1f} s" if secs else "",
                    "longest": f"{longest['job']} ({longest['seconds']:.0f} s)" if longest else ""})
    order = ["explore", "train", "embed", "robustness", "explain", "occlusion"]  # as a study runs them
    return sorted(out, key=lambda r: (order.index(r["kind"]) if r["kind"] in order else len(order), r["kind"]))


def time_section(root: Path) -> Section | None:
    """Where the study's time went, by job kind, from ``jobs.csv`` (absent before any job ended)."""
    from cnnlstm.study.executor import JOB_LOG, read_job_log

    rows = read_job_log(root)
    if not rows:
        return None
    where = sorted({r["where"] for r in rows if r["where"]})
    return Section("Where the time went", [
        Paragraph(f"Each job's own run time, measured where it ran ({len(where)} process(es) or worker(s)), "
                  f"from `{JOB_LOG}` in the study folder; a resumed job counts only its resumed part, and on "
                  "a cluster the times add up to more than the wall time."),
        Table(job_time_rows(rows), [("kind", "job kind"), ("done", "jobs done"), ("failed", "failed"),
                                    ("total", "total time"), ("median", "median time"),
                                    ("longest", "longest job (time)")])])


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


# --------------------------------------------------------------------------- beyond accuracy


def _f(value, digits: int = 4, scale: float = 1.0) -> str:
    return "—" if value is None else f"{scale * value:.{digits}f}"


def calibration_section(models: dict[str, dict]) -> Section | None:
    """ECE/MCE/Brier per model (mean over seeds), before and after temperature scaling."""
    rows = []
    for model, agg in sorted(models.items(), key=lambda kv: -kv[1]["acc_mean"]):
        ms = [r["metrics"] for r in agg["runs"] if r["metrics"].get("ece") is not None]
        if not ms:
            continue
        mean = lambda k, ms=ms: mean_std(m.get(k) for m in ms)[0]  # noqa: E731
        rows.append({"model": model, "seeds": len(ms), "ECE (15 bins)": _f(mean("ece")),
                     "MCE": _f(mean("mce")), "Brier": _f(mean("brier")),
                     "temperature (fitted on validation)": _f(mean("temperature"), 3),
                     "ECE after scaling": _f(mean("ece_temperature"))})
    if not rows:
        return None
    blocks = [Paragraph("Are the probabilities honest? Expected calibration error over 15 equal-width "
                        "confidence bins, the largest bin gap (MCE) and the Brier score on the test set, then "
                        "ECE after temperature scaling with one temperature fitted on the validation split "
                        "(never the test set). Mean over the seeds shown."), Table(rows, list(rows[0]))]
    run = models.get(FLAGSHIP, {}).get("runs", [None])[0]
    if run is not None:
        figs = sorted((run["folder"] / "figures").glob("reliability*.png"))
        if figs:
            blocks.append(Figures([Figure(p, f"{FLAGSHIP}: {p.stem.replace('_', ' ')}") for p in figs]))
    return Section("Calibration", blocks)


def robustness_records(root: Path, jobs: list[Job]) -> list[tuple[str, dict]]:
    """``(model, robustness.json)`` of every robustness job the study finished, in job order."""
    out = []
    for job in jobs:
        path = job.folder(root) / "robustness.json"
        if job.kind == "robustness" and path.exists():
            out.append((job.label, read_json(path)))
    return out


def robustness_section(records: list[tuple[str, dict]], root: Path, jobs: list[Job]) -> Section | None:
    """Accuracy under the Fashion-MNIST-C corruptions, and the mean corruption error against model1."""
    if not records:
        return None
    first = records[0][1]
    rows = [{"model": model, "clean %": _f(r["clean_accuracy"], 2, 100),
             "mean corrupted %": _f(r["mean_corrupted_accuracy"], 2, 100),
             "mCE vs model1": _f(r.get("mce"), 3), "relative mCE": _f(r.get("relative_mce"), 3),
             "worst corruption": min(r["mean_accuracy"], key=r["mean_accuracy"].get) if r.get("mean_accuracy") else ""}
            for model, r in records]
    sev = ", ".join(str(s) for s in first.get("severities", []))
    blocks = [Paragraph(f"Seed 0 of each model on {first['n_images']:,} test images, corrupted with the 15 "
                        f"corruptions of Fashion-MNIST-C (Weiss & Tonella 2022), generated here from a seed, at "
                        f"severity {sev}. mCE is the ImageNet-C mean corruption error: each corruption's error "
                        "summed over severities, divided by model1's, averaged over corruptions (below 1 = more "
                        "robust than model1); relative mCE does the same with the clean error subtracted. One "
                        "seed per model: differences here are single-seed observations, not findings."),
              Table(rows, list(rows[0]))]
    by_model = {j.label: j.folder(root) for j in jobs if j.kind == "robustness"}
    figs = [Figure(by_model[m] / "figures" / "robustness.png", f"{m}: accuracy per corruption and severity")
            for m in (FLAGSHIP, "cnn_twin") if m in by_model and (by_model[m] / "figures" / "robustness.png").exists()]
    if figs:
        blocks.append(Figures(figs))
    return Section("Robustness to corruptions", blocks)


def explain_section(root: Path, jobs: list[Job]) -> Section | None:
    """The flagship's Grad-CAM and LSTM-step attribution figures."""
    job = next((j for j in jobs if j.kind == "explain"), None)
    if job is None:
        return None
    figs = job.folder(root) / "figures"
    items = [Figure(figs / name, caption) for name, caption in (
        ("explain.png", "Grad-CAM on the last conv layer, and which LSTM steps (rows) the decision rests on"),
        ("explain_mistakes.png", "the worst class's most confident mistakes")) if (figs / name).exists()]
    if not items:
        return None
    return Section(f"Where the flagship looks ({job.name})", [Paragraph(
        "For a few test images per class: the Grad-CAM heat map of the predicted class on the last "
        "convolution, and an integrated-gradients attribution over the LSTM's input steps (each step is one "
        "row of the feature map), drawn back onto the image."), Figures(items)])


def audit_section(root: Path) -> Section | None:
    """Duplicates within and across the splits, from the exploration's ``stats.json``."""
    path = root / "explore" / "stats.json"
    if not path.exists():
        return None
    audit = read_json(path).get("audit")
    if not audit:
        return None
    try:
        from cnnlstm.reporting.trust import audit_section as trust_audit_section
    except ImportError:
        return None
    return trust_audit_section(audit, root / "explore")


def explore_sections(root: Path, ds: Dataset) -> list[Section]:
    """The plan's exploration figures (class balance, box plots, raw t-SNE), headed by the dataset's name."""
    figs = root / "explore" / "figures"
    if not figs.is_dir():
        return []
    # the duplicate pairs are the audit section's figure; shown once, there
    items = [Figure(p, p.stem.replace("_", " ")) for p in sorted(figs.glob("*.png")) if p.stem != "duplicates"]
    heading = f"Exploring {dataset_title(ds.name)}" + (" (the plan's Fig. 2-4)" if ds.name == "fashion-mnist" else "")
    return [Section(heading, [Figures(items)])] if items else []
