"""The plan's study's report: the plan's question answered with matched controls and verdicts.

Sections, in reading order: a summary whose every claim is a verdict of :mod:`cnnlstm.measure.stats`
(A better, B better, equivalent within the margin, or inconclusive at this n; or that it rests on
one seed); "What the LSTM adds" (each hybrid beside its no-LSTM control, trained under the same
recipe); the plan's Tables I and II, published vs measured, where a run shorter than its recipe is
marked not comparable; the ablations; the flagship's figures; calibration, robustness and
explanations; the t-SNE comparison; the exploration; where the time went (the job log). The tables
are :mod:`~cnnlstm.study.paper.tables`', the other sections :mod:`~cnnlstm.study.paper.sections`'.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cnnlstm.data import Dataset
from cnnlstm.measure.stats import MARGIN, Comparison, one_sample_interval
from cnnlstm.reporting.compare import (
    SEED_PAIR_NOTE,
    MatchedPair,
    fmt_pct,
    forest_figure,
    seed_pair_rows,
)
from cnnlstm.reporting.page import BulletList, Figure, Paragraph, Section, Table, write_report
from cnnlstm.reporting.raw import comparison_row, run_rows, write_raw_numbers
from cnnlstm.study.engine.jobs import Job, collect_runs, job_done, job_key
from cnnlstm.study.paper.plan import (
    ABLATIONS,
    FLAGSHIP,
    USER_GROUP,
    StudyPreset,
)
from cnnlstm.study.paper.sections import (
    audit_section,
    calibration_section,
    explain_section,
    explore_sections,
    flagship_sections,
    positive_control_section,
    robustness_records,
    robustness_section,
    time_section,
    tsne_figure,
)
from cnnlstm.study.paper.tables import (
    PUBLISHED,
    REF_COLUMNS,
    ablation_comparisons,
    ablation_rows,
    aggregate,
    control_comparisons,
    control_rows,
    published_tables,
    recipe_label,
    user_models_section,
)

log = logging.getLogger(__name__)


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
    # a flagship trained shorter than its recipe is not set beside a published number
    if fashion and not preset.flagship_overrides.get("epochs") and (text := flagship_vs_published(models)) is not None:
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


def write_study_report(root: str | Path, jobs: list[Job], preset: StudyPreset, ds: Dataset, *,
                       failed: dict[str, str] | None = None, note: str = "",
                       positive_control: str | Path | None = None) -> Path:
    """Compose and write ``root/report.html`` and ``root/report.md``; return the HTML path.

    ``failed`` (job name -> error, as :func:`cnnlstm.study.paper.run_study` returns it) and
    every planned run without its ``metrics.json`` are listed in the summary as missing; ``note``
    (e.g. why ``--seeds auto`` stopped) is added to the summary; ``positive_control`` is the folder
    of an earlier ``cnnlstm compare`` whose result "Could this study have seen a benefit?" prints.
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
                              ablation_cmp, positive_control)
    write_raw_numbers(root, [row for r in runs for row in run_rows(preset.name, r["job"].name.rsplit("-s", 1)[0],
                                                                   r["cfg"].seed, r["metrics"])],
                      [comparison_row(p.comparison) for p in comparisons]
                      + [comparison_row(c) for c in ablation_cmp.values()])
    if note:
        sections[0].blocks.append(Paragraph(note))
    missing = missing_runs(root, jobs, failed or {})
    if missing:
        sections[0].blocks.append(missing)
    out = root / "report.html"
    write_report(out, f"cnnlstm study ({preset.name})", sections)
    return out


def missing_runs(root: Path, jobs: list[Job], failed: dict[str, str]) -> Paragraph | None:
    """A paragraph naming the planned runs that did not finish (and why, for those that failed)."""

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


def build_sections(root: Path, preset: StudyPreset, models: dict, ablations: dict, tsne_png: Path | None,
                   tsne_rows: list[dict], ds: Dataset, jobs: list[Job], comparisons: list[MatchedPair],
                   ablation_cmp: dict[str, Comparison], positive_control: Path | None = None) -> list[Section]:
    """The report's sections, in reading order (``comparisons`` and ``ablation_cmp`` as
    :func:`control_comparisons` and :func:`ablation_comparisons` give them; ``positive_control`` as
    :func:`write_study_report` takes it)."""
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
        sections.append(positive_control_section(positive_control, [comparison_row(p.comparison)
                                                                   for p in comparisons]))
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

