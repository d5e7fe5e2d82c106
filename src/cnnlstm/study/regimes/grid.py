"""The regime grid: its axes, cells and schedule rule, the training and occlusion jobs it plans,
and what it costs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from cnnlstm.config import resolve_train_config
from cnnlstm.data import Dataset
from cnnlstm.errors import ConfigError
from cnnlstm.study.engine.jobs import AnalysisArgs, Job, train_weight
from cnnlstm.study.occlusion import OCCLUSION_FILE

__all__ = ["ALL", "OCCLUSION_FILE", "RegimeGrid", "Cell", "grid_cells", "training_split_size", "regime_epochs",
           "plan_regimes", "analysis_args", "plan_cost", "measure_rate", "make_grid"]

ALL = 0  # a size of 0: the whole training split (55,000 images of Fashion-MNIST)


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


def make_grid(*, seeds: int = 3, sizes=None, widths=None, steps: int | None = None, size_pairs: bool = True,
              pairs=None, preset: str = "fast") -> RegimeGrid:
    """The default grid with the given axes replaced, checked (None keeps a default).

    ``pairs`` (hybrid, control) replaces the pairs mapped over size alone at their own widths
    (default ``model1_lstm`` vs ``model1``); ``widths=[]`` leaves out the flagship's width axis.
    """
    grid = RegimeGrid(seeds=seeds, preset=preset)
    if pairs is not None:
        if not size_pairs:
            raise ConfigError("pairs (--pairs) and size_pairs=False (--no-size-pairs) contradict each other; give one")
        pairs = tuple((str(h), str(c)) for h, c in pairs)
        if not pairs or any(h == c for h, c in pairs) or len(set(pairs)) != len(pairs):
            raise ConfigError(f"pairs are distinct (hybrid, control) of two different models; got {list(pairs)}")
        grid = replace(grid, size_pairs=pairs)
    if sizes is not None:
        grid = replace(grid, sizes=tuple(int(s) for s in sizes))
    if widths is not None:
        grid = replace(grid, widths=tuple(tuple(int(c) for c in w) for w in widths))
    if steps is not None:
        grid = replace(grid, steps_full=int(steps))
    return replace(grid, size_pairs=grid.size_pairs if size_pairs else ()).check()


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


def analysis_args(grid: RegimeGrid) -> AnalysisArgs:
    """The occlusion jobs' arguments (the same for every run)."""
    return AnalysisArgs(occlusion={"erase": list(grid.erase), "shifts": list(grid.shifts),
                                    "seed": grid.perturb_seed})


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


