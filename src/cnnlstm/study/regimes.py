"""The regime study: the plan's question asked across training-set size, stem width and occlusion.

The study's answer at one point (all 55,000 images, the flagship's stem, clean test images) is
that the BiLSTM adds nothing measurable over a dense layer of the same parameter count. Work on
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
(:func:`cnnlstm.reporting.compare.match_pairs`, the study's and ``compare``'s function); the
summary names only the cells whose interval excludes 0.

Folder::

    OUT/runs/<model>-<width>-n<size>-s<seed>/   one run per model, cell and seed (+ occlusion.json)
    OUT/figures/regime_map.png, occlusion.png
    OUT/report.html, report.md, regimes.json
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from cnnlstm.config import resolve_train_config
from cnnlstm.data import Dataset
from cnnlstm.errors import ConfigError
from cnnlstm.measure.stats import mean_std, seed_interval
from cnnlstm.reporting.compare import MatchedPair, SeedRun, comparison_cells, match_pairs
from cnnlstm.reporting.page import BulletList, Figure, Paragraph, Section, Table, write_report
from cnnlstm.runs import read_json, run_lock, write_json
from cnnlstm.study.reproduce import Job, StudySettings, check_recipes, job_done, job_key, train_weight

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


@dataclass
class RegimeResult:
    """One cell's matched comparison, and its occlusion curves where it has them."""

    cell: Cell
    pair: MatchedPair | None  # None: a side has no finished run
    params: tuple[int, int] = (0, 0)
    mflops: tuple[float, float] = (0.0, 0.0)
    epochs: int = 0
    accuracy: tuple = ((None, None), (None, None))  # (mean, sample std) of the hybrid, of the control
    occlusion: dict = field(default_factory=dict)  # kind -> level -> {"hybrid": (mean, std), "control": ..., "delta": SeedInterval}

    def verdict(self) -> str:
        """"helps", "hurts", "no measurable difference", "one seed: no interval" or "not run"."""
        if self.pair is None:
            return "not run"
        s = self.pair.comparison.seeds
        if s.low is None:
            return "one seed: no interval"
        if not s.excludes_zero:
            return "no measurable difference"
        return "helps" if s.diff > 0 else "hurts"


def _cell_jobs(jobs: list[Job], cell: Cell, model: str, kind: str = "train") -> list[Job]:
    """The jobs of ``model`` in ``cell``, every seed: those named as :meth:`Cell.run_name` names them."""
    return [j for j in jobs if j.kind == kind and j.cfg.model == model and j.name == cell.run_name(model, j.cfg.seed)]


def _seed_runs(root: Path, jobs: list[Job]) -> list[SeedRun]:
    out = []
    for job in jobs:
        folder = job.folder(root)
        if (folder / "metrics.json").exists():
            out.append(SeedRun(job.cfg.seed, float(read_json(folder / "metrics.json")["accuracy"]), folder,
                               read_json(folder / "config.json")))
    return out


def cell_results(root: Path, grid: RegimeGrid, jobs: list[Job], ds: Dataset) -> list[RegimeResult]:
    """Every cell's comparison (:func:`match_pairs`), sizes and costs, and occlusion curves."""
    from cnnlstm.models import model_summary

    results = []
    for cell in grid_cells(grid):
        sides = {m: _cell_jobs(jobs, cell, m) for m in (cell.hybrid, cell.control)}
        groups = {cell.key(m): _seed_runs(root, side) for m, side in sides.items()}
        pairs = match_pairs(groups, [(cell.key(cell.hybrid), cell.key(cell.control))])
        sizes = [model_summary(m, image_size=ds.image_size, in_channels=ds.channels, num_classes=ds.num_classes,
                               **side[0].cfg.model_args) for m, side in sides.items()]
        result = RegimeResult(cell, pairs[0] if pairs else None, (sizes[0]["params"], sizes[1]["params"]),
                              (sizes[0]["mflops"], sizes[1]["mflops"]), sides[cell.hybrid][0].cfg.epochs,
                              tuple(mean_std(run.accuracy for run in runs) for runs in groups.values()))
        result.occlusion = occlusion_curves(root, jobs, cell)
        results.append(result)
    return results


def occlusion_curves(root: Path, jobs: list[Job], cell: Cell) -> dict:
    """``{kind: {level: {"hybrid": (mean, std), "control": (mean, std), "delta": SeedInterval, "n": int}}}``."""
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
                                "delta": seed_interval(scores["hybrid"], scores["control"]),
                                "n": len(set(scores["hybrid"]) & set(scores["control"]))}
    return out


def _occlusion_record(curves: dict) -> dict:
    """:func:`occlusion_curves` as JSON: ``{kind: {level: {hybrid: [mean, std], control: ..., delta: {...}}}}``."""
    return {kind: {level: {"hybrid": list(row["hybrid"]), "control": list(row["control"]),
                           "delta": asdict(row["delta"])} for level, row in levels.items()}
            for kind, levels in curves.items()}


def summary_lines(results: list[RegimeResult], n_full: int) -> list[str]:
    """The map's answer: only cells (and occlusion levels) whose interval excludes 0 are named."""
    lines = []
    done = [r for r in results if r.pair is not None and r.pair.comparison.seeds.low is not None]
    unpaired = len([r for r in results if r.pair is not None]) - len(done)
    tested = len(done) + sum(1 for r in done for levels in r.occlusion.values() for level, row in levels.items()
                             if float(level) != 0 and row["delta"].low is not None)
    for r in done:
        if r.verdict() in ("helps", "hurts"):
            s = r.pair.comparison.seeds
            lines.append(f"{r.cell.hybrid} {r.verdict()} against {r.cell.control} at {r.cell.size_label(n_full)} "
                         f"images, stem {r.cell.width_label}: {100 * s.diff:+.2f} points "
                         f"(95% CI {100 * s.low:+.2f} to {100 * s.high:+.2f}, {s.n} {'paired ' if s.paired else ''}"
                         "seeds)")
    for r in done:
        for kind, levels in r.occlusion.items():
            for level, row in levels.items():
                d = row["delta"]
                if float(level) != 0 and d.excludes_zero:
                    what = (f"erasing ({float(level):.0%} of the image)" if kind == "erase"
                            else f"translation ({level} px)")
                    lines.append(f"under test-time {what}, {r.cell.hybrid} "
                                 f"{'beats' if d.diff > 0 else 'trails'} {r.cell.control} at "
                                 f"{r.cell.size_label(n_full)} images, stem {r.cell.width_label}: "
                                 f"{100 * d.diff:+.2f} points (95% CI {100 * d.low:+.2f} to {100 * d.high:+.2f}, "
                                 f"{d.n} {'paired ' if d.paired else ''}seeds)")
    no_interval = [f"{unpaired} cell(s) have one seed on a side, so no interval"] if unpaired else []
    if not done:
        return ["No cell has an interval yet (finished runs of at least two seeds on both sides)."] + no_interval
    if not lines:
        n = min(r.pair.comparison.seeds.n for r in done)
        return [f"No regime showed a measurable difference between the hybrids and their controls at {n} seeds: "
                f"every one of the {tested} 95% intervals ({len(done)} cells and their occlusion levels) "
                "includes 0."] + no_interval
    return lines + [f"{len(lines)} of {tested} intervals exclude 0; about {tested / 20:.1f} would by chance alone "
                    "at 95%, so read a lone one as a lead to retest with more seeds"] + no_interval


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
                    "high": None if s.high is None else 100 * s.high}
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
                     "recipe": "same" if not r.pair.differences else "DIFFERS: " + "; ".join(r.pair.differences)})
    return rows


def occlusion_rows(results: list[RegimeResult], n_full: int) -> list[dict]:
    """One row per occluded cell, kind and level: both accuracies and the paired Δ with its interval."""
    rows = []
    for r in results:
        for kind, levels in r.occlusion.items():
            for level, row in sorted(levels.items(), key=lambda kv: float(kv[0])):
                d = row["delta"]
                ci = "" if d.low is None else f"{100 * d.low:+.2f} to {100 * d.high:+.2f}"
                rows.append({"pair": f"{r.cell.hybrid} / {r.cell.control}", "stem": r.cell.width_label,
                             "perturbation": f"{float(level):.0%} erased" if kind == "erase" else f"shift {level} px",
                             "test % (hybrid)": _pct(row["hybrid"]), "test % (control)": _pct(row["control"]),
                             "Δ (points)": f"{100 * d.diff:+.2f}", "95% CI over seeds": ci, "n": row["n"],
                             "verdict": ("no measurable difference" if not d.excludes_zero
                                         else "hybrid better" if d.diff > 0 else "control better")})
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
    lines = summary_lines(results, n_full)
    missing = [job_key(j) for j in jobs if not job_done(j, root)]
    how = (f"Each cell trains the hybrid and its control with the {grid.preset!r} preset and the same seeds "
           f"0..{grid.seeds - 1}, on the same stratified subset of the {n_full:,} training images per seed "
           f"(nested: a smaller subset lies inside a larger one). The schedule rule, fixed before any run: "
           f"{grid.steps_full} optimizer steps on all {n_full:,} images, steps x sqrt(n / {n_full:,}) on n, in "
           "whole epochs (the table's epochs); best epoch by validation accuracy; test set whole. Δ = hybrid − "
           "control in points with its 95% t-interval over paired seeds; a cell claims a difference only when "
           "that interval excludes 0 (starred and framed in the map). The intervals are per cell and per "
           "occlusion level, not corrected for how many there are: at 95%, about one in twenty excludes 0 by "
           "chance alone, so a lone starred cell is a lead to test with more seeds, not a finding.")
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
    sections = [Section("Summary", summary),
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
        "cells": [{"hybrid": r.cell.hybrid, "control": r.cell.control, "size": r.cell.size,
                   "width": None if r.cell.width is None else list(r.cell.width), "epochs": r.epochs,
                   "verdict": r.verdict(),
                   **({} if r.pair is None else asdict(r.pair.comparison.seeds)),
                   **({"occlusion": _occlusion_record(r.occlusion)} if r.occlusion else {})} for r in results]})
    out = root / "report.html"
    write_report(out, "cnnlstm regime study: where, if anywhere, the LSTM helps", sections)
    return out, results, lines
