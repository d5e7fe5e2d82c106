"""The regime study's report: the map and curves, the tables, ``regimes.json`` and the raw numbers."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from cnnlstm.data import Dataset
from cnnlstm.fileio import read_json, write_json
from cnnlstm.measure.stats import MARGIN
from cnnlstm.reporting.compare import comparison_cells
from cnnlstm.reporting.page import BulletList, Figure, Paragraph, Section, Table, write_report
from cnnlstm.reporting.raw import comparison_row, run_rows, write_raw_numbers
from cnnlstm.study.engine.jobs import Job, job_done, job_key
from cnnlstm.study.regimes.grid import ALL, OCCLUSION_FILE, Cell, RegimeGrid, grid_cells, training_split_size
from cnnlstm.study.regimes.results import (
    RegimeResult,
    _occlusion_record,
    _verdict_record,
    cell_jobs,
    cell_results,
    cell_rows,
    map_panels,
    named_by_models,
    occlusion_rows,
    pooled_endpoints,
    summary_lines,
)


def write_regime_report(root: str | Path, grid: RegimeGrid, jobs: list[Job], ds: Dataset, *,
                        failed: dict[str, str] | None = None, seconds: float | None = None
                        ) -> tuple[Path, list[RegimeResult], list[str]]:
    """``report.html``/``report.md``, ``regimes.json`` and the two figures of a regime study folder;
    return the report's path, every cell's result and the summary's lines."""
    from cnnlstm.reporting import figures as plots

    root = Path(root)
    n_full = training_split_size(ds, jobs[0].cfg.val_size)
    results = cell_results(root, grid, jobs, ds)
    fig_dir = root / "figures"
    map_png = plots.plot_regime_map(map_panels(results, grid, n_full), fig_dir / "regime_map.png")
    curves = [r for r in results if r.occlusion]
    occ_png = plots.plot_occlusion([{"title": f"{r.cell.hybrid} vs {r.cell.control}"
                                              + (f", stem {r.cell.width_label}" if r.cell.width else ""),
                                     "hybrid": r.cell.hybrid, "control": r.cell.control, **r.occlusion}
                                    for r in curves], fig_dir / "occlusion.png") if curves else None
    pooled = pooled_endpoints(results)
    lines = summary_lines(results, n_full, pooled)
    missing = [job_key(j) for j in jobs if not job_done(j, root)]
    how = (f"Each cell trains the hybrid and its control with the {grid.preset!r} preset and the same seeds "
           f"0..{grid.seeds - 1}, on the same stratified subset of the {n_full:,} training images per seed "
           f"(nested: a smaller subset lies inside a larger one). The schedule rule, fixed before any run: "
           f"{grid.steps_full} optimizer steps on all {n_full:,} images, steps x sqrt(n / {n_full:,}) on n, in "
           "whole epochs (the table's epochs); best epoch by validation accuracy; test set whole. Δ = hybrid − "
           "control in points with its 95% t-interval over paired seeds, and one of four verdicts against a "
           f"margin of ±{100 * MARGIN:.1f} points (hybrid better, control better, equivalent, inconclusive). The "
           "primary endpoint of each pair and size, stated before the runs, pools the widths (every width x seed "
           "a pair of runs), Holm over the pairs and sizes. The per-cell comparisons form three families per "
           "pair (clean cells; erasing levels; translation levels), Holm within each: a cell is starred and "
           "framed in the map only when its difference survives that correction.")
    summary = [BulletList(lines), Paragraph(how),
               Paragraph(f"Data: {ds.name} ({ds.image_size}x{ds.image_size}, {ds.num_classes} classes). "
                         + (f"Wall time of this invocation: {seconds / 60:.1f} min. " if seconds else "")
                         + f"{sum(j.kind == 'train' for j in jobs)} training runs, "
                         f"{sum(j.kind == 'occlusion' for j in jobs)} occlusion evaluations.")]
    if missing or failed:
        names = list(dict.fromkeys(missing + list(failed or {})))
        summary.append(Paragraph(f"Missing: {len(names)} job(s) did not finish ({'; '.join(names[:12])}"
                                 f"{' ...' if len(names) > 12 else ''}); rerun the same command to finish them."))
    rows = cell_rows(results, n_full)
    primary = [{"pair": f"{h} / {c}", "training images": "all" if size == ALL else f"{size:,}",
                **comparison_cells(cmp)} for h, c, size, cmp in pooled]
    sections = [Section("Summary", summary),
                *([Section("Primary endpoints: widths pooled", [Table(primary, list(primary[0]))])] if primary
                  else []),
                Section("The map", [Figure(map_png, "Δ test accuracy (points, hybrid − control) per cell, its 95% "
                                                    "interval over paired seeds in brackets; * and a frame: the "
                                                    "interval excludes 0"),
                                    Table(rows, list(dict.fromkeys(k for row in rows for k in row)))])]
    occ = occlusion_rows(results, n_full)
    if occ_png is not None:
        sections.append(Section("Occlusion and shift at test time", [
            Paragraph(f"The runs of the largest size, evaluated without retraining on the whole test set with a "
                      f"black square over {', '.join(f'{e:.0%}' for e in grid.erase)} of each image and translated "
                      f"{', '.join(str(s) for s in grid.shifts)} px (one direction per image), the same perturbed "
                      f"images for every model (seed {grid.perturb_seed}). Bands: ± one sample std over seeds."),
            Figure(occ_png, f"test accuracy against occlusion (top) and translation (bottom), runs on "
                            f"{curves[0].cell.size_label(n_full)} training images"),
            Table(occ, list(occ[0]))]))
    write_json(root / "regimes.json", {
        "grid": {"sizes": list(grid.sizes), "widths": [list(w) for w in grid.widths], "seeds": grid.seeds,
                 "preset": grid.preset, "steps_full": grid.steps_full, "erase": list(grid.erase),
                 "shifts": list(grid.shifts)},
        "n_full": n_full, "summary": lines, "seconds": seconds,
        "primary": [{"hybrid": h, "control": c, "size": size, **asdict(cmp.seeds), **_verdict_record(cmp)}
                    for h, c, size, cmp in pooled],
        "cells": [{"hybrid": r.cell.hybrid, "control": r.cell.control, "size": r.cell.size,
                   "width": None if r.cell.width is None else list(r.cell.width), "epochs": r.epochs,
                   "best_epoch_last": list(r.best_last),
                   **({"verdict": "not run"} if r.pair is None else
                      {**asdict(r.pair.comparison.seeds), **_verdict_record(r.pair.comparison)}),
                   **({"occlusion": _occlusion_record(r.occlusion)} if r.occlusion else {})} for r in results]})
    write_raw_numbers(root, regime_result_rows(root, grid, jobs, n_full), regime_comparison_rows(results, pooled, n_full))
    out = root / "report.html"
    write_report(out, "cnnlstm regime study: where, if anywhere, the LSTM helps", sections)
    return out, results, lines


def _cell_columns(cell: Cell, n_full: int) -> dict:
    return {"train_size": n_full if cell.size == ALL else cell.size, "width": cell.width_label}


def regime_result_rows(root: Path, grid: RegimeGrid, jobs: list[Job], n_full: int) -> list[dict]:
    """``results.csv``'s rows: every finished run's metrics, and its accuracy at each perturbed level."""
    rows = []
    for cell in grid_cells(grid):
        where = _cell_columns(cell, n_full)
        for model in (cell.hybrid, cell.control):
            for job in cell_jobs(jobs, cell, model):
                if job_done(job, root):
                    rows += run_rows("regimes", model, job.cfg.seed, read_json(job.folder(root) / "metrics.json"),
                                     **where)
            for job in cell_jobs(jobs, cell, model, "occlusion"):
                if job_done(job, root):
                    record = read_json(job.folder(root) / OCCLUSION_FILE)
                    rows += [{"study": "regimes", "model": model, "seed": job.cfg.seed, "metric": "accuracy",
                              "value": acc, **where, "perturbation": kind, "level": level}
                             for kind in ("erase", "shift") for level, acc in record[kind].items()
                             if float(level) != 0]
    return rows


def regime_comparison_rows(results: list[RegimeResult], pooled: list, n_full: int) -> list[dict]:
    """``comparisons.csv``'s rows: the pooled endpoints, every cell, every perturbed level."""
    rows = [comparison_row(cmp, train_size=n_full if size == ALL else size, width="pooled")
            for _, _, size, cmp in pooled]
    for r in results:
        if r.pair is None:
            continue
        where = _cell_columns(r.cell, n_full)
        rows.append(comparison_row(named_by_models(r.pair.comparison, r.cell), **where))
        rows += [comparison_row(named_by_models(row["comparison"], r.cell), **where, perturbation=kind, level=level)
                 for kind, levels in r.occlusion.items() for level, row in levels.items() if float(level) != 0]
    return rows
