"""``cnnlstm compare A B [C ...]``: the models trained under one recipe and the same seeds, then compared.

The question a researcher asks every day, "is my model better than that one?", answered the way
the study answers it for the LSTM: every model trains with the same training preset, overrides
and seeds into one folder (resumably, on the same executors as ``cnnlstm reproduce``), then each
pair is compared by :func:`cnnlstm.reporting.compare.match_pairs`, the function behind the study's
"What the LSTM adds": mean ± sample std over seeds, Δ with its 95% t-interval over paired seeds,
McNemar's exact test and a paired bootstrap per seed pair, the recipe check, parameters and
MFLOPs, and the one sentence the numbers allow.

Folder::

    OUT/runs/<model>-s<seed>/   one run folder per model and seed
    OUT/figures/forest.png      Δ of every pair with its interval and a zero line
    OUT/report.html, report.md
    OUT/failures.json           the jobs that failed for good (absent when none did)
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path

from cnnlstm.config import resolve_model_source, resolve_train_config
from cnnlstm.data import Dataset
from cnnlstm.errors import ConfigError
from cnnlstm.fileio import read_json
from cnnlstm.measure.stats import MARGIN, mean_std
from cnnlstm.reporting.compare import (
    SEED_PAIR_NOTE,
    MatchedPair,
    SeedRun,
    comparison_cells,
    fmt_pct,
    forest_figure,
    match_pairs,
    seed_pair_rows,
)
from cnnlstm.reporting.page import BulletList, Paragraph, Section, Table, write_report
from cnnlstm.reporting.raw import comparison_row, run_rows, write_raw_numbers
from cnnlstm.reporting.records import trained_size
from cnnlstm.study.engine.jobs import Job, job_done, job_key, seed_runs
from cnnlstm.study.engine.loop import run_jobs
from cnnlstm.study.engine.seeds import SeedRule, run_until_precise
from cnnlstm.study.engine.session import Cluster, fit_jobs_to_dataset, open_executor, study_dataset

log = logging.getLogger(__name__)

DEFAULT_PRESET = "fast"
DEFAULT_SEEDS = 3


def plan_compare(models: Sequence[str], *, seeds: int = DEFAULT_SEEDS, preset: str | None = DEFAULT_PRESET,
                 common: dict | None = None) -> list[Job]:
    """One training job per model and seed, every config from the same preset and overrides.

    Raises
    ------
    ConfigError
        Fewer than two models, a model named twice, fewer than 1 seed, or a bad model or preset.
    """
    # (name, the file or module defining it): `my_pkg.nets:gru` is gru from my_pkg.nets
    named = [resolve_model_source(m, (common or {}).get("model_file", "")) for m in models]
    sources = dict(named)
    models = [name for name, _ in named]
    if len(models) < 2:
        raise ConfigError("compare needs at least two models, e.g. cnnlstm compare cnn_lstm cnn_twin")
    if len(set(models)) != len(models):
        raise ConfigError(f"a model is named twice in {', '.join(models)}")
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    for key in ("model", "seed"):
        if key in (common or {}):
            raise ConfigError(f"{key} is set by compare itself (the MODEL arguments, seeds 0..N-1); drop it")
    jobs = []
    for model in models:
        for seed in range(seeds):
            overrides = {**(common or {}), "model_file": sources[model], "seed": seed}
            cfg = resolve_train_config(model, preset=preset, overrides=overrides)
            jobs.append(Job("train", f"{model}-s{seed}", "compare", cfg, label=model))
    return jobs


def run_compare(root: str | Path, ds: Dataset, jobs: list[Job], *, executor=None, events=None, note: str = "") -> dict:
    """Train the jobs not yet done (a rerun resumes), then write the report; return a summary.

    Returns
    -------
    dict
        ``{"ran", "skipped", "failed": {name: error}, "report": Path, "pairs": [MatchedPair]}``.
    """
    root = Path(root)
    summary = run_jobs(root, ds, jobs, executor=executor, events=events)
    report, pairs = write_compare_report(root, jobs, ds, failed=summary["failed"], note=note)
    return {**summary, "report": report, "pairs": pairs}


def run(models: Sequence[str], *, out: str | Path, seeds: int | SeedRule, preset: str | None, data, settings: dict,
        cluster: Cluster, events=None) -> dict:
    """``cnnlstm compare`` end to end: plan, load the data, run on ``cluster``'s executor, report.

    ``seeds`` is a number of seeds, or a :class:`~cnnlstm.study.engine.seeds.SeedRule` (``--seeds
    auto``): every pair is a primary comparison, and seeds are added until each interval is precise
    enough or the cap is reached; the report says the n reached and why it stopped.

    Returns
    -------
    dict
        :func:`run_compare`'s summary and ``out`` (with ``seeds auto``: ``seeds`` and ``stopped``).
    """
    plan_compare(models, seeds=seeds.start if isinstance(seeds, SeedRule) else seeds, preset=preset,
                 common=settings)  # a bad model or key fails before the data loads
    ds = study_dataset(data, settings)
    root = Path(out)
    with open_executor(cluster, root) as executor:
        def run_at(n: int, note: str = "") -> tuple[dict, list]:
            jobs = fit_jobs_to_dataset(plan_compare(models, seeds=n, preset=preset, common=settings), ds)
            summary = run_compare(root, ds, jobs, executor=executor, events=events, note=note)
            return {**summary, "jobs": jobs}, [p.comparison for p in summary["pairs"]]

        if not isinstance(seeds, SeedRule):
            return {**run_at(seeds)[0], "out": root}
        summary = run_until_precise(run_at, seeds)
        report, _ = write_compare_report(root, summary["jobs"], ds, failed=summary["failed"],
                                         note=f"Seeds chosen by precision (--seeds auto): {summary['stopped']}.")
    return {**summary, "report": report, "out": root}


def model_rows(groups: dict[str, list[SeedRun]], ds: Dataset) -> list[dict]:
    """One row per model: seeds, test accuracy mean ± sample std, size and cost, schedule."""
    rows = []
    for model, runs in groups.items():
        mean, std = mean_std(r.accuracy for r in runs)
        cfg = runs[0].config
        params, mflops = trained_size(model, cfg, image_size=ds.image_size, channels=ds.channels,
                                      num_classes=ds.num_classes)
        seconds = [read_json(r.folder / "metrics.json").get("train_seconds") or 0.0 for r in runs]
        rows.append({"model": model, "n seeds": len(runs), "test accuracy (%)": fmt_pct(mean, std, len(runs)),
                     "params": f"{params:,}", "MFLOPs/image": f"{mflops:.2f}",
                     "epochs": cfg.get("epochs"), "train s (mean)": f"{sum(seconds) / len(seconds):.1f}"})
    return rows


def write_compare_report(root: Path, jobs: list[Job], ds: Dataset, *, failed: dict[str, str] | None = None,
                         note: str = "") -> tuple[Path, list[MatchedPair]]:
    """``report.html``/``report.md`` and ``figures/forest.png`` of a comparison folder."""
    groups = seed_runs(root, jobs)
    models = list(dict.fromkeys(j.cfg.model for j in jobs))
    pairs = match_pairs(groups, list(itertools.combinations(models, 2)), family="every pair compared")
    data = (f"Data: {ds.name} ({ds.image_size}x{ds.image_size}, {'RGB' if ds.channels == 3 else 'greyscale'}, "
            f"{ds.num_classes} classes; arrays SHA-256 {ds.checksum[:16]}...). Test accuracy on its "
            f"{len(ds.test_labels):,} test images; every model under the same preset, overrides and seeds.")
    sections = [Section("Summary", [Paragraph(data), BulletList([p.claim() for p in pairs]) if pairs
                                    else Paragraph("No pair has finished runs on both sides yet.")]
                        + ([Paragraph(note)] if note else []))]
    if groups:
        sections.append(Section("Models", [Table(rows := model_rows(groups, ds), list(rows[0]))]))
    if pairs:
        table = [{"A": p.a, "B": p.b, **comparison_cells(p.comparison),
                  "recipe": "same" if not p.differences else "DIFFERS: " + "; ".join(p.differences)} for p in pairs]
        seed_rows = [r for p in pairs for r in seed_pair_rows(p.comparison)]
        sections.append(Section("Matched comparisons", [
            Paragraph("Δ = A − B in points of test accuracy. The interval is a 95% t-interval over seeds (seed k of "
                      f"A paired with seed k of B). The verdict is one of four against a margin of ±{100 * MARGIN:.1f} points: A "
                      "better, B better (the t-test rejects 0), equivalent (TOST: the 90% interval lies inside the "
                      "margin) or inconclusive at this n; p-values are Holm-adjusted over every pair compared, one "
                      "family. MDE: the difference this n detects with 80% power. The numbers behind every row are "
                      "in results.csv and comparisons.csv."),
            Table(table, list(table[0])), forest_figure(pairs, root / "figures" / "forest.png"),
            Paragraph(SEED_PAIR_NOTE),
            Table(seed_rows, list(seed_rows[0])) if seed_rows
            else Paragraph("No seed pair has predictions of the same test images.")]))
    missing = [job_key(j) for j in jobs if not job_done(j, root)]
    if missing:
        why = failed or {}
        sections[0].blocks.append(Paragraph(
            f"Missing: {len(missing)} run(s) did not finish, so the tables are without them: "
            + "; ".join(f"{m} ({why[m]})" if m in why else m for m in missing)
            + ". Rerunning the same command retries them."))
    out = root / "report.html"
    write_report(out, f"cnnlstm compare: {' vs '.join(models)}", sections)
    write_raw_numbers(root, [row for model, runs in groups.items() for r in runs
                             for row in run_rows("compare", model, r.seed, read_json(r.folder / "metrics.json"))],
                      [comparison_row(p.comparison) for p in pairs])
    return out, pairs
