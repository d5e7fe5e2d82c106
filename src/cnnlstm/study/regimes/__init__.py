"""The regime study: the plan's question asked across training-set size, stem width and occlusion.

At one point (all 55,000 images, the flagship's stem, clean test images) the study finds no gain
from the BiLSTM over a dense layer of the same parameter count. Work on
recurrent CNNs points to where recurrence might pay instead: little data, small models, and
occluded images (Spoerer et al. 2017, doi:10.3389/fpsyg.2017.01551). This module maps the
question over those axes, each cell a matched comparison:

- **cells**: every (training-set size, stem width) of the grid, for each wide pair (``cnn_lstm``
  vs ``cnn_twin``: the twin is parameter-matched at every width, see :mod:`cnnlstm.models.controls`),
  plus the size axis alone for each small pair (``model1_lstm`` vs ``model1``, whose widths are
  the plan's);
- **data**: ``train_size`` images of the training split, stratified and seeded by the run's seed
  (:func:`cnnlstm.data.splits.nested_subset`): both models of seed k see the same images, and the
  1,000 lie inside the 6,000. The validation split and the test set are the study's, whole;
- **schedule**: one rule, fixed before any run and never tuned per model: a run at ``n`` images
  takes ``steps_full * sqrt(n / n_full)`` optimizer steps, as whole epochs
  (:func:`regime_epochs`). Every cell trains past the point where its validation accuracy
  stops rising fast, without a tiny subset costing as much as the whole set; best epoch by
  validation, as everywhere;
- **occlusion and shift**: the runs of the largest size are evaluated, without retraining, on
  the whole test set with a black square over 0/10/25/40% of each image and translated 0-4 px
  (:mod:`cnnlstm.data.occlusion`; the same perturbed images for every model).

Every Δ is hybrid − control with its 95% t-interval over paired seeds
(:func:`cnnlstm.reporting.compare.match_pairs`, the study's and ``compare``'s function) and a
four-way verdict against the margin (:mod:`cnnlstm.measure.stats`). The primary endpoint of each
pair and size pools its widths (:func:`pooled_endpoints`); the per-cell comparisons form three
families per pair, clean, erasing and translation (:func:`family_name`), Holm within each, and
the summary claims only what survives. ``results.csv`` and ``comparisons.csv`` hold the numbers.

Folder::

    OUT/runs/<model>-<width>-n<size>-s<seed>/   one run per model, cell and seed (+ occlusion.json)
    OUT/figures/regime_map.png, occlusion.png
    OUT/report.html, report.md, regimes.json, results.csv, comparisons.csv
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Callable

from cnnlstm.data import Dataset
from cnnlstm.fileio import read_json
from cnnlstm.study.engine.jobs import Job, job_done
from cnnlstm.study.engine.loop import run_jobs
from cnnlstm.study.engine.seeds import SeedRule, run_until_precise
from cnnlstm.study.engine.session import Cluster, fit_jobs_to_dataset, open_executor, study_dataset
from cnnlstm.study.regimes.grid import (
    ALL,
    OCCLUSION_FILE,
    Cell,
    RegimeGrid,
    analysis_args,
    grid_cells,
    make_grid,
    measure_rate,
    plan_cost,
    plan_regimes,
    regime_epochs,
    training_split_size,
)
from cnnlstm.study.regimes.report import write_regime_report
from cnnlstm.study.regimes.results import (
    CELL_WORDS,
    RegimeResult,
    cell_jobs,
    cell_results,
    family_name,
    pooled_endpoints,
    summary_lines,
)

__all__ = ["ALL", "OCCLUSION_FILE", "CELL_WORDS", "Cell", "RegimeGrid", "RegimeResult", "analysis_args",
           "cell_jobs", "cell_results", "family_name", "grid_cells", "measure_rate", "plan_cost", "plan_regimes", "pooled_endpoints",
           "regime_epochs", "run", "run_regimes", "summary_lines", "training_split_size", "write_regime_report",
           "grid_cost", "duration_text", "make_grid"]

log = logging.getLogger(__name__)


def run_regimes(root: str | Path, ds: Dataset, grid: RegimeGrid, jobs: list[Job], *, executor=None,
                events=None) -> dict:
    """Train the runs not yet done, then evaluate occlusion on those of the largest size; write the report.

    A rerun resumes: finished runs and evaluations are skipped, an interrupted run continues
    from its checkpoint.

    Returns
    -------
    dict
        ``ran``, ``skipped``, ``failed`` (``{job: error}``), ``seconds``, ``report`` (its path)
        ``cells`` (:class:`RegimeResult` per cell) and ``summary`` (the answer, as lines).
    """
    root = Path(root)
    for job in jobs:  # an evaluation at other levels or another seed than the grid's is made again
        record = job.folder(root) / OCCLUSION_FILE
        if job.kind == "occlusion" and record.exists() and not _occlusion_matches(read_json(record), grid):
            log.info("%s: its occlusion levels are not the grid's; evaluating again", job.folder(root))
            record.unlink()
    occlusion = [j for j in jobs if j.kind == "occlusion"]
    # occlusion reads the trained weights: a second wave, of the runs that finished
    done = run_jobs(root, ds, [j for j in jobs if j.kind == "train"], executor=executor, events=events,
                    args=analysis_args(grid),
                    later=lambda: [[j for j in occlusion if job_done(replace(j, kind="train"), root)]])
    report, results, lines = write_regime_report(root, grid, jobs, ds, failed=done["failed"], seconds=done["seconds"])
    return {**done, "jobs": jobs, "report": report, "cells": results, "summary": lines}


def _occlusion_matches(record: dict, grid: RegimeGrid) -> bool:
    """The record was made at the grid's seed and levels (its accuracies are keyed by level)."""
    return (record.get("seed") == grid.perturb_seed and list(record.get("erase", {})) == [str(e) for e in grid.erase]
            and list(record.get("shift", {})) == [str(s) for s in grid.shifts])


def run(grid: RegimeGrid, *, out: str | Path, data, settings: dict, cluster: Cluster, events=None,
        dry_run: bool = False, on_plan: Callable[[dict], None] | None = None, seed_rule: SeedRule | None = None) -> dict:
    """The regime study end to end: plan the grid on the data, cost what is left, run it, report it.

    Parameters
    ----------
    grid : RegimeGrid
    out : path
        The study folder; the same folder again resumes it.
    data : Dataset, data spec or None
        The data, or the spec ``settings`` names (default Fashion-MNIST).
    settings : dict
        Config keys every run gets (:func:`cnnlstm.study.engine.session.run_settings`).
    cluster : Cluster
        Where the jobs run.
    dry_run : bool
        Plan and cost only.
    on_plan : callable, optional
        Called with the cost once the plan is made, before anything trains.
    seed_rule : SeedRule, optional
        ``--seeds auto``: the grid starts at ``seed_rule.start`` seeds and grows until every primary
        endpoint (:func:`pooled_endpoints`) has a 95% interval at most the margin wide, or the cap.

    Returns
    -------
    dict
        ``cost`` and, unless ``dry_run``, :func:`run_regimes`'s summary and ``out`` (with a seed
        rule: ``seeds`` reached and why it ``stopped``).
    """
    if seed_rule is not None:
        grid = replace(grid, seeds=seed_rule.check().start)
    root = Path(out)
    ds = study_dataset(data, settings)
    jobs = fit_jobs_to_dataset(plan_regimes(grid, ds, common=settings), ds)
    cost = grid_cost(jobs, ds, grid, root, threads=settings.get("threads", 0), processes=cluster.processes)
    if on_plan:
        on_plan(cost)
    if dry_run:
        return {"cost": cost}
    with open_executor(cluster, root) as executor:
        if seed_rule is None:
            return {**run_regimes(root, ds, grid, jobs, executor=executor, events=events), "cost": cost, "out": root}

        def run_at(n: int) -> tuple[dict, list]:
            at = replace(grid, seeds=n)
            summary = run_regimes(root, ds, at, fit_jobs_to_dataset(plan_regimes(at, ds, common=settings), ds),
                                  executor=executor, events=events)
            return summary, [c for *_, c in pooled_endpoints(summary["cells"])]

        summary = run_until_precise(run_at, seed_rule)
    return {**summary, "cost": cost, "out": root}


def grid_cost(jobs: list[Job], ds: Dataset, grid: RegimeGrid, root: Path, *, threads: int, processes: int) -> dict:
    """The plan's cost (:func:`plan_cost`), what is left of it, and an estimate of the minutes left
    from an fp32 training step timed on this CPU (:func:`measure_rate`; a lower bound: smaller models
    run below that rate). A resumed grid is costed by what is left; with nothing left nothing is timed."""
    left = [j for j in jobs if not job_done(j, root)]
    cost = plan_cost(jobs, ds, grid)
    cost["left"] = plan_cost(left, ds, grid)
    gflops = measure_rate(ds, threads=threads) if left else None
    seconds = cost["left"]["tflop"] * 1e3 / (gflops * processes) if left else 0.0
    cost.update(gflops=gflops, minutes=seconds / 60, seconds=seconds)
    log.info("regime grid: %d training runs and %d occlusion evaluations, %.0f TFLOP, of which %.0f TFLOP are "
             "left; about %s on %d process(es) at the measured fp32 rate of this CPU (a lower bound)",
             cost["train_runs"], cost["occlusion_runs"], cost["tflop"], cost["left"]["tflop"],
             duration_text(seconds), processes)
    return cost


def duration_text(seconds: float) -> str:
    """``"64 s"``, ``"12 min"``, ``"3.5 h"``: never "about 0 min" for a grid that takes a minute."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
