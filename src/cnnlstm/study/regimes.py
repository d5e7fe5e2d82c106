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
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from cnnlstm.config import config_to_dict, resolve_train_config
from cnnlstm.data import Dataset
from cnnlstm.errors import ConfigError
from cnnlstm.measure.stats import MARGIN, Comparison, adjust, compare, mean_std
from cnnlstm.reporting.compare import MatchedPair, SeedRun, comparison_cells, match_pairs
from cnnlstm.reporting.page import BulletList, Figure, Paragraph, Section, Table, write_report
from cnnlstm.reporting.raw import comparison_row, run_rows, write_raw_numbers
from cnnlstm.reporting.records import trained_size
from cnnlstm.runs import read_json, run_lock, write_json
from cnnlstm.study.reproduce import Job, StudySettings, check_recipes, job_done, job_key, seed_runs, train_weight

log = logging.getLogger(__name__)

ALL = 0  # a size of 0: the whole training split (55,000 images of Fashion-MNIST)
OCCLUSION_FILE = "occlusion.json"


@dataclass(frozen=True)
class RegimeGrid:
    """What the regime study trains: the axes, the pairs, the seeds and the schedule rule.

    Attributes
    ----------
    sizes : tuple of int
        Training-set sizes; ``0`` is the whole training split.
    widths : tuple of (int, int)
        The flagship stem's ``channels`` for each wide pair.
    seeds : int
        Seeds 0..seeds-1 of every model in every cell (>= 3 for an interval worth reading).
    preset : str
        The training preset of every run (its epochs replaced by the schedule rule).
    steps_full : int
        Optimizer steps of a run on the whole training split (:func:`regime_epochs`).
    erase, shifts : tuple
        Test-time occlusion fractions and translations (px) of the largest size's runs.
    perturb_seed : int
        Seeds every perturbed test set.
    wide_pairs, size_pairs : tuple of (hybrid, control)
        Pairs mapped over size x width, and over size alone.
    """

    sizes: tuple[int, ...] = (1000, 6000, ALL)
    widths: tuple[tuple[int, int], ...] = ((8, 16), (16, 32), (24, 48))
    seeds: int = 3
    preset: str = "fast"
    steps_full: int = 1000
    erase: tuple[float, ...] = (0.0, 0.1, 0.25, 0.4)
    shifts: tuple[int, ...] = (0, 1, 2, 3, 4)
    perturb_seed: int = 0
    wide_pairs: tuple[tuple[str, str], ...] = (("cnn_lstm", "cnn_twin"),)
    size_pairs: tuple[tuple[str, str], ...] = (("model1_lstm", "model1"),)

    def check(self) -> RegimeGrid:
        """Return self, or raise :class:`ConfigError` naming what is out of range."""
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")
        if not self.sizes or any(s < 0 for s in self.sizes) or len(set(self.sizes)) != len(self.sizes):
            raise ConfigError(f"sizes must be distinct counts >= 1 (0 = all), got {list(self.sizes)}")
        if any(len(w) != 2 or min(w) < 1 for w in self.widths):
            raise ConfigError(f"a width is two channel counts, e.g. 16x32; got {list(self.widths)}")
        if self.steps_full < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps_full}")
        if 0.0 not in self.erase or 0 not in self.shifts:
            raise ConfigError("the occlusion and shift levels must include 0 (the clean images)")
        if not (self.wide_pairs and self.widths) and not self.size_pairs:
            raise ConfigError("the grid has no pair to compare")
        return self


@dataclass(frozen=True)
class Cell:
    """One matched comparison of the map: a pair at one training-set size and stem width."""

    hybrid: str
    control: str
    size: int  # 0 = all
    width: tuple[int, int] | None  # None: the models' own widths (a size pair)

    def size_label(self, n_full: int) -> str:
        return f"all ({n_full:,})" if self.size == ALL else f"{self.size:,}"

    @property
    def width_label(self) -> str:
        return "own" if self.width is None else f"{self.width[0]}/{self.width[1]}"

    def run_name(self, model: str, seed: int) -> str:
        width = "own" if self.width is None else f"{self.width[0]}x{self.width[1]}"
        return f"{model}-{width}-n{self.size or 'all'}-s{seed}"

    def key(self, model: str) -> str:
        """The name a comparison gives one side: ``cnn_lstm [n=1,000, stem 8/16]``."""
        size = "all" if self.size == ALL else f"{self.size:,}"
        return f"{model} [n={size}, stem {self.width_label}]"


def grid_cells(grid: RegimeGrid) -> list[Cell]:
    """Every cell of the map, in plan order (pairs, then sizes, then widths)."""
    cells = [Cell(h, c, size, tuple(w)) for h, c in grid.wide_pairs for size in grid.sizes for w in grid.widths]
    return cells + [Cell(h, c, size, None) for h, c in grid.size_pairs for size in grid.sizes]


def training_split_size(ds: Dataset, val_size: int) -> int:
    """Images left for training once the validation split is held out (as ``make_splits`` does)."""
    n = len(ds.train_labels)
    return n - (min(val_size, n // 5) if val_size else 0)


def regime_epochs(n: int, n_full: int, batch_size: int, steps_full: int) -> int:
    """Whole epochs of a run on ``n`` images: ``steps_full * sqrt(n / n_full)`` steps, at least one epoch.

    The square root is the stated compromise between a fixed number of steps (a run on 1,000
    images would then spend 55 times more epochs, and its validation passes, than one on 55,000)
    and a fixed number of epochs (it would take 55 times fewer steps and stop far short).
    """
    steps = steps_full * math.sqrt(n / n_full)
    return max(1, round(steps * batch_size / n))


def plan_regimes(grid: RegimeGrid, ds: Dataset, *, common: dict | None = None) -> list[Job]:
    """The training jobs of every cell and seed, then an occlusion job per run of the largest size.

    Raises
    ------
    ConfigError
        A size larger than the training split, a key the grid sets itself, or a bad model or preset.
    """
    grid.check()
    common = dict(common or {})
    for key in ("model", "seed", "epochs", "train_size", "limit_train"):  # limit_train would undo the subsets
        if key in common:
            raise ConfigError(f"{key} is set by the regime grid itself; drop it")
    probe = resolve_train_config(grid.wide_pairs[0][0] if grid.wide_pairs else grid.size_pairs[0][0],
                                 preset=grid.preset, overrides=common)
    n_full = training_split_size(ds, probe.val_size)
    too_big = [s for s in grid.sizes if s > n_full]
    if too_big:
        raise ConfigError(f"a training-set size of {too_big[0]:,} exceeds the {n_full:,} images of the training "
                          "split; use 0 for all of them")
    largest = max(grid.sizes, key=lambda s: n_full if s == ALL else s)
    train, occlusion = [], []
    for cell in grid_cells(grid):
        n = n_full if cell.size == ALL else cell.size
        for model in (cell.hybrid, cell.control):
            for seed in range(grid.seeds):
                overrides = {**common, "seed": seed, "train_size": cell.size}
                if cell.width is not None:
                    overrides["model_args"] = {**common.get("model_args", {}), "channels": list(cell.width)}
                cfg = resolve_train_config(model, preset=grid.preset, overrides=overrides)
                cfg = replace(cfg, epochs=regime_epochs(n, n_full, cfg.batch_size, grid.steps_full))
                name = cell.run_name(model, seed)
                train.append(Job("train", name, "regime", cfg, label=cell.key(model), weight=train_weight(cfg, n_full)))
                if cell.size == largest:
                    occlusion.append(Job("occlusion", name, "regime", cfg, label=cell.key(model), weight=0.1))
    return train + occlusion


def settings_of(grid: RegimeGrid) -> StudySettings:
    """The occlusion jobs' arguments (the same for every run)."""
    return StudySettings(occlusion={"erase": list(grid.erase), "shifts": list(grid.shifts),
                                    "seed": grid.perturb_seed})


# --------------------------------------------------------------------------- cost


def plan_cost(jobs: list[Job], ds: Dataset, grid: RegimeGrid) -> dict:
    """Forward FLOPs of the plan: ``3x`` forward per training image (forward + backward), one
    forward per validation and test image, per perturbed test image for the occlusion jobs."""
    from cnnlstm.models import model_summary

    mflops: dict[tuple, float] = {}
    total = 0.0
    n_full = training_split_size(ds, jobs[0].cfg.val_size) if jobs else len(ds.train_labels)
    n_val = len(ds.train_labels) - n_full
    n_test = len(ds.test_labels)
    levels = len(grid.erase) + len(grid.shifts) - 2  # level 0 of each is the clean test set: predicted once
    for job in jobs:
        cfg = job.cfg
        key = (cfg.model, tuple(cfg.model_args.get("channels", ())))
        if key not in mflops:
            mflops[key] = model_summary(cfg.model, image_size=ds.image_size, in_channels=ds.channels,
                                        num_classes=ds.num_classes, **cfg.model_args)["mflops"]
        if job.kind == "train":
            n = cfg.train_size or n_full
            images = cfg.epochs * (3 * n + n_val) + n_test
        else:
            images = (levels + 1) * n_test
        total += images * mflops[key] * 1e6
    return {"train_runs": sum(j.kind == "train" for j in jobs),
            "occlusion_runs": sum(j.kind == "occlusion" for j in jobs), "tflop": total / 1e12}


def measure_rate(ds: Dataset, *, threads: int = 0, seconds: float = 2.0) -> float:
    """This machine's training throughput in GFLOP/s: the flagship (stem 24/48) on a batch of 256,
    forward and backward, timed for about ``seconds`` after one warm-up step."""
    import torch

    from cnnlstm.models import create_model, model_summary

    if threads:
        torch.set_num_threads(threads)
    args = {"channels": [24, 48]}
    model = create_model("cnn_lstm", image_size=ds.image_size, in_channels=ds.channels, num_classes=ds.num_classes,
                         **args)
    flops = 3 * 256 * model_summary("cnn_lstm", image_size=ds.image_size, in_channels=ds.channels,
                                    num_classes=ds.num_classes, **args)["mflops"] * 1e6
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, ds.channels, ds.image_size, ds.image_size, generator=gen)
    y = torch.randint(0, ds.num_classes, (256,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or done < 2:
        step()
        done += 1
    return done * flops / (time.perf_counter() - t0) / 1e9


# --------------------------------------------------------------------------- running


def run_occlusion(run_dir: str | Path, ds: Dataset, *, erase, shifts, seed: int = 0,
                  device: str | None = None) -> dict:
    """A finished run's accuracy under test-time occlusion and translation, into ``occlusion.json``."""
    from cnnlstm.measure.robustness import evaluate_perturbed
    from cnnlstm.study.prelude import open_run

    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    with run_lock(run_dir):
        run = open_run(run_dir, ds, device=device)
        result = evaluate_perturbed(run.model, run.test_images, run.test_labels,
                                    levels={"erase": list(erase), "shift": list(shifts)}, seed=seed, norm=run.norm,
                                    batch_size=run.config.eval_batch_size)
        record = {"model": run.config.model, "n_images": int(run.n_test), "seed": int(seed), **result,
                  "seconds": time.perf_counter() - t0}
        write_json(run_dir / OCCLUSION_FILE, record)
    log.info("%s: clean %.4f, 40%% erased %s (%.1f s)", run_dir, record["clean_accuracy"],
             record["erase"].get("0.4"), record["seconds"])
    return record


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
    from cnnlstm.study.executor import JobEvents, SerialExecutor, with_job_log

    root = Path(root)
    executor = executor or SerialExecutor()
    events = with_job_log(events or JobEvents(), root)
    check_recipes([j for j in jobs if j.kind == "train"], root)
    settings = settings_of(grid)
    t0 = time.perf_counter()
    failed: dict[str, str] = {}
    ran = skipped = 0
    for job in jobs:  # an evaluation at other levels or another seed than the grid's is made again
        record = job.folder(root) / OCCLUSION_FILE
        if job.kind == "occlusion" and record.exists() and not _occlusion_matches(read_json(record), grid):
            log.info("%s: its occlusion levels are not the grid's; evaluating again", job.folder(root))
            record.unlink()
    for kind in ("train", "occlusion"):  # occlusion reads the trained weights: a second wave
        wave = [j for j in jobs if j.kind == kind]
        todo = [j for j in wave if not job_done(j, root)
                and (kind == "train" or job_done(replace(j, kind="train"), root))]
        skipped += sum(job_done(j, root) for j in wave)
        ran += len(todo)
        failed.update(executor.run(todo, root, ds, settings, events, lambda job: None))
    failures = root / "failures.json"
    if failed:
        write_json(failures, failed)
    elif failures.exists():
        failures.unlink()
    seconds = time.perf_counter() - t0
    report, results, lines = write_regime_report(root, grid, jobs, ds, failed=failed, seconds=seconds)
    return {"ran": ran, "skipped": skipped, "failed": failed, "seconds": seconds, "report": report,
            "cells": results, "summary": lines}


def _occlusion_matches(record: dict, grid: RegimeGrid) -> bool:
    """The record was made at the grid's seed and levels (its accuracies are keyed by level)."""
    return (record.get("seed") == grid.perturb_seed and list(record.get("erase", {})) == [str(e) for e in grid.erase]
            and list(record.get("shift", {})) == [str(s) for s in grid.shifts])


# --------------------------------------------------------------------------- results

#: How a cell's verdict reads in the map's table and regimes.json (measure.stats' kinds, from the hybrid's side).
CELL_WORDS = {"A better": "hybrid better", "B better": "control better", "equivalent": "equivalent",
              "inconclusive": "inconclusive", "no interval": "no interval"}


@dataclass
class RegimeResult:
    """One cell's matched comparison, and its occlusion curves where it has them."""

    cell: Cell
    pair: MatchedPair | None  # None: a side has no finished run
    params: tuple[int, int] = (0, 0)
    mflops: tuple[float, float] = (0.0, 0.0)
    epochs: int = 0
    accuracy: tuple = ((None, None), (None, None))  # (mean, sample std) of the hybrid, of the control
    best_last: tuple[int, int] = (0, 0)  # runs of the cell whose best validation epoch was the last, of how many
    scores: tuple[dict, dict] = ({}, {})  # {seed: test accuracy} of the hybrid, of the control
    # kind -> level -> {"hybrid": (mean, std), "control": ..., "comparison": Comparison, "n": int}
    occlusion: dict = field(default_factory=dict)

    def verdict(self) -> str:
        """The cell's verdict from the hybrid's side (:data:`CELL_WORDS`), or "not run"."""
        return "not run" if self.pair is None else CELL_WORDS[self.pair.comparison.kind]


def _cell_jobs(jobs: list[Job], cell: Cell, model: str, kind: str = "train") -> list[Job]:
    """The jobs of ``model`` in ``cell``, every seed: those named as :meth:`Cell.run_name` names them."""
    return [j for j in jobs if j.kind == kind and j.cfg.model == model and j.name == cell.run_name(model, j.cfg.seed)]


def _best_was_last(runs: list[SeedRun]) -> tuple[int, int]:
    """How many of ``runs`` chose their last epoch as the best on validation (still learning), of how many."""
    metrics = [read_json(r.folder / "metrics.json") for r in runs]
    last = [m for m in metrics if m.get("best_epoch") is not None and m.get("epochs_trained")]
    return sum(m["best_epoch"] == m["epochs_trained"] for m in last), len(last)


def family_name(kind: str, hybrid: str, control: str) -> str:
    """The family a comparison belongs to: one per pair and kind (clean, erasing, translation, pooled)."""
    return f"{kind}: {hybrid} vs {control}"


def _adjust_families(results: list[RegimeResult]) -> None:
    """Holm within each family: a pair's clean cells; its erasing levels; its translation levels."""
    from cnnlstm.reporting.compare import adjust_pairs

    for hybrid, control in dict.fromkeys((r.cell.hybrid, r.cell.control) for r in results):
        mine = [r for r in results if (r.cell.hybrid, r.cell.control) == (hybrid, control) and r.pair is not None]
        for r, pair in zip(mine, adjust_pairs([r.pair for r in mine], family_name("clean", hybrid, control))):
            r.pair = pair
        for kind in ("erase", "shift"):
            rows = [row for r in mine for level, row in r.occlusion.get(kind, {}).items() if float(level) != 0]
            adjusted = adjust([row["comparison"] for row in rows],
                              family_name("erasing" if kind == "erase" else "translation", hybrid, control))
            for row, c in zip(rows, adjusted):
                row["comparison"] = c


def cell_results(root: Path, grid: RegimeGrid, jobs: list[Job], ds: Dataset) -> list[RegimeResult]:
    """Every cell's comparison (:func:`match_pairs`), sizes and costs, and occlusion curves, with the
    p-values adjusted within each family (:func:`family_name`)."""
    results = []
    for cell in grid_cells(grid):
        sides = {m: _cell_jobs(jobs, cell, m) for m in (cell.hybrid, cell.control)}
        groups = {cell.key(m): seed_runs(root, side).get(m, []) for m, side in sides.items()}
        pairs = match_pairs(groups, [(cell.key(cell.hybrid), cell.key(cell.control))])
        sizes = [trained_size(m, config_to_dict(side[0].cfg), image_size=ds.image_size, channels=ds.channels,
                              num_classes=ds.num_classes) for m, side in sides.items()]
        last = [_best_was_last(runs) for runs in groups.values()]
        result = RegimeResult(cell, pairs[0] if pairs else None, (sizes[0][0], sizes[1][0]),
                              (sizes[0][1], sizes[1][1]), sides[cell.hybrid][0].cfg.epochs,
                              tuple(mean_std(run.accuracy for run in runs) for runs in groups.values()),
                              (last[0][0] + last[1][0], last[0][1] + last[1][1]),
                              tuple({r.seed: r.accuracy for r in runs} for runs in groups.values()))
        result.occlusion = occlusion_curves(root, jobs, cell)
        results.append(result)
    _adjust_families(results)
    return results


def pooled_endpoints(results: list[RegimeResult]) -> list[tuple[str, str, int, Comparison]]:
    """The primary endpoint of each pair and size: its widths pooled, every (width, seed) a pair of runs.

    Stated before the runs: one paired t over all width x seed pairs (9 at 3 widths and 3 seeds), Holm
    over the pairs and sizes, one family. A size pair (one width) pools nothing and is its own cell.
    """
    out = []
    for hybrid, control in dict.fromkeys((r.cell.hybrid, r.cell.control) for r in results):
        for size in dict.fromkeys(r.cell.size for r in results if r.cell.hybrid == hybrid):
            mine = [r for r in results if (r.cell.hybrid, r.cell.control, r.cell.size) == (hybrid, control, size)
                    and r.pair is not None]
            if not mine:
                continue
            scores = [{(r.cell.width_label, k): v for r in mine for k, v in r.scores[side].items()}
                      for side in (0, 1)]
            out.append((hybrid, control, size, compare(hybrid, control, *scores)))
    adjusted = adjust([c for *_, c in out], "primary: widths pooled, per pair and size")
    return [(h, c, size, a) for (h, c, size, _), a in zip(out, adjusted)]


def occlusion_curves(root: Path, jobs: list[Job], cell: Cell) -> dict:
    """``{kind: {level: {"hybrid": (mean, std), "control": (mean, std), "comparison": Comparison, "n": int}}}``
    (unadjusted: :func:`cell_results` adjusts each family)."""
    records = {}
    for side, model in (("hybrid", cell.hybrid), ("control", cell.control)):
        records[side] = {j.cfg.seed: read_json(j.folder(root) / OCCLUSION_FILE)
                         for j in _cell_jobs(jobs, cell, model, "occlusion") if job_done(j, root)}
    if not records["hybrid"] or not records["control"]:
        return {}
    out: dict = {}
    any_record = next(iter(records["hybrid"].values()))
    for kind in ("erase", "shift"):
        out[kind] = {}
        for level in any_record[kind]:
            scores = {side: {seed: rec[kind][level] for seed, rec in recs.items()} for side, recs in records.items()}
            out[kind][level] = {"hybrid": mean_std(scores["hybrid"].values()),
                                "control": mean_std(scores["control"].values()),
                                "comparison": compare(cell.hybrid, cell.control, scores["hybrid"], scores["control"]),
                                "scores": scores, "n": len(set(scores["hybrid"]) & set(scores["control"]))}
    return out


def _occlusion_record(curves: dict) -> dict:
    """:func:`occlusion_curves` as JSON: ``{kind: {level: {hybrid: [mean, std], control: ..., delta: {...}}}}``."""
    return {kind: {level: {"hybrid": list(row["hybrid"]), "control": list(row["control"]),
                           "delta": {**asdict(row["comparison"].seeds), **_verdict_record(row["comparison"])}}
                   for level, row in levels.items()}
            for kind, levels in curves.items()}


def _verdict_record(c: Comparison) -> dict:
    """A comparison's verdict as regimes.json keeps it (p-values adjusted within its family)."""
    v = c.verdict
    return {"verdict": c.kind, "p_adjusted": v.pvalue, "tost_p": v.tost_p, "margin": v.margin, "mde": v.mde,
            "family": v.family}


def _perturbation(kind: str, level: str) -> str:
    return f"erasing {float(level):.0%} of the image" if kind == "erase" else f"translation by {level} px"


def _claims(results: list[RegimeResult], n_full: int) -> list[str]:
    """Every difference that survives Holm within its family, clean cells first, then perturbed levels."""
    lines = []
    for r in results:
        if r.pair is not None and r.pair.comparison.kind in ("A better", "B better"):
            named = replace(r.pair, a=r.cell.hybrid, b=r.cell.control, comparison=_named(r.pair.comparison, r.cell))
            lines.append(f"{r.cell.size_label(n_full)} images, stem {r.cell.width_label}: {named.claim()}")
    for r in results:
        for kind, levels in r.occlusion.items():
            for level, row in levels.items():
                c = row["comparison"]
                if float(level) != 0 and c.kind in ("A better", "B better"):
                    lines.append(f"under test-time {_perturbation(kind, level)}, {r.cell.size_label(n_full)} images, "
                                 f"stem {r.cell.width_label}: {c.sentence()}.")
    return lines


def summary_lines(results: list[RegimeResult], n_full: int,
                  pooled: list[tuple[str, str, int, Comparison]] | None = None) -> list[str]:
    """The map's answer: the pooled primary endpoints, then only the claims that survive Holm within
    their family, the count of equivalent and inconclusive comparisons, and the schedule check."""
    done = [r for r in results if r.pair is not None and r.pair.comparison.seeds.low is not None]
    unpaired = len([r for r in results if r.pair is not None]) - len(done)
    no_interval = [f"{unpaired} cell(s) have one seed on a side (or no spread), so no interval"] if unpaired else []
    if not done:
        return ["No cell has an interval yet (finished runs of at least two seeds on both sides)."] + no_interval
    lines = [f"Primary endpoint, {h} vs {c} at {'all' if size == ALL else f'{size:,}'} images, widths pooled: "
             f"{cmp.sentence()}." for h, c, size, cmp in (pooled or [])]
    tested = [r.pair.comparison for r in done] + [row["comparison"] for r in done for levels in r.occlusion.values()
                                                   for level, row in levels.items() if float(level) != 0]
    kinds = [c.kind for c in tested if c.kind != "no interval"]
    claims = _claims(done, n_full)
    lines += claims
    lines.append(f"Of {len(kinds)} per-cell comparisons (clean cells and perturbed levels, Holm within each pair's "
                 f"clean, erasing and translation families), {len(claims)} show a difference, "
                 f"{kinds.count('equivalent')} are equivalent within ±{100 * tested[0].verdict.margin:.1f} points and "
                 f"{kinds.count('inconclusive')} are inconclusive at {min(r.pair.comparison.seeds.n for r in done)} "
                 "seeds.")
    last, runs = sum(r.best_last[0] for r in done), sum(r.best_last[1] for r in done)
    if runs:
        lines.append(f"In {last} of {runs} runs the best validation epoch was the last one: those runs were still "
                     "learning when the schedule ended, so a difference there may be one of learning speed.")
    return lines + no_interval


def _pct(mean_std_pair: tuple) -> str:
    mean, std = mean_std_pair
    return "" if mean is None else f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def map_panels(results: list[RegimeResult], grid: RegimeGrid, n_full: int) -> list[dict]:
    """The heat map's panels: one per pair, rows = sizes, columns = widths ("own" for a size pair)."""
    panels = []
    for hybrid, control in (*grid.wide_pairs, *grid.size_pairs):
        mine = [r for r in results if (r.cell.hybrid, r.cell.control) == (hybrid, control)]
        if not mine:
            continue
        rows = list(dict.fromkeys(r.cell.size_label(n_full) for r in mine))
        cols = list(dict.fromkeys(r.cell.width_label for r in mine))
        cells = {}
        for r in mine:
            if r.pair is not None:
                s = r.pair.comparison.seeds
                cells[(rows.index(r.cell.size_label(n_full)), cols.index(r.cell.width_label))] = {
                    "diff": 100 * s.diff, "low": None if s.low is None else 100 * s.low,
                    "high": None if s.high is None else 100 * s.high,
                    "claimed": r.pair.comparison.kind in ("A better", "B better")}
        panels.append({"title": f"{hybrid} − {control}", "rows": rows, "cols": cols, "cells": cells})
    return panels


def cell_rows(results: list[RegimeResult], n_full: int) -> list[dict]:
    """One table row per cell: sizes and costs of both models, their accuracies, Δ and the verdict."""
    rows = []
    for r in results:
        base = {"hybrid / control": f"{r.cell.hybrid} / {r.cell.control}", "training images": r.cell.size_label(n_full),
                "stem": r.cell.width_label, "params": f"{r.params[0]:,} / {r.params[1]:,}",
                "MFLOPs/image": f"{r.mflops[0]:.2f} / {r.mflops[1]:.2f}", "epochs": r.epochs}
        if r.pair is None:
            rows.append({**base, "verdict": "not run"})
            continue
        c = r.pair.comparison
        rows.append({**base, "test % (hybrid)": _pct(r.accuracy[0]), "test % (control)": _pct(r.accuracy[1]),
                     **comparison_cells(c), "verdict": r.verdict(),
                     "best epoch = last": f"{r.best_last[0]} of {r.best_last[1]}",
                     "recipe": "same" if not r.pair.differences else "DIFFERS: " + "; ".join(r.pair.differences)})
    return rows


def occlusion_rows(results: list[RegimeResult], n_full: int) -> list[dict]:
    """One row per occluded cell, kind and level: both accuracies and the paired Δ with its interval."""
    rows = []
    for r in results:
        for kind, levels in r.occlusion.items():
            for level, row in sorted(levels.items(), key=lambda kv: float(kv[0])):
                c = row["comparison"]
                rows.append({"pair": f"{r.cell.hybrid} / {r.cell.control}", "stem": r.cell.width_label,
                             "perturbation": f"{float(level):.0%} erased" if kind == "erase" else f"shift {level} px",
                             "test % (hybrid)": _pct(row["hybrid"]), "test % (control)": _pct(row["control"]),
                             **comparison_cells(c),
                             "verdict": "clean images" if float(level) == 0 else CELL_WORDS[c.kind]})
    return rows


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
            for job in _cell_jobs(jobs, cell, model):
                if job_done(job, root):
                    rows += run_rows("regimes", model, job.cfg.seed, read_json(job.folder(root) / "metrics.json"),
                                     **where)
            for job in _cell_jobs(jobs, cell, model, "occlusion"):
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
        rows.append(comparison_row(_named(r.pair.comparison, r.cell), **where))
        rows += [comparison_row(_named(row["comparison"], r.cell), **where, perturbation=kind, level=level)
                 for kind, levels in r.occlusion.items() for level, row in levels.items() if float(level) != 0]
    return rows


def _named(c: Comparison, cell: Cell) -> Comparison:
    """A cell's comparison named by its models (the report names the sides with the cell's key)."""
    return replace(c, a=cell.hybrid, b=cell.control)
