"""Jobs: the unit of every study, what each kind runs and writes, and whether it is done.

The engine knows no study. A study plans a list of :class:`Job` (a training run, an exploration,
an embedding, a robustness, explanation or occlusion evaluation of a finished run); this module
says where each job's folder is, which file marks it done (:data:`FINAL_FILE`, written last), what
it costs (:func:`train_weight`), how to run it (:func:`run_job`, which calls the run-level drivers
below the engine), and reads what finished jobs left (:func:`seed_runs`, :func:`collect_runs`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from cnnlstm.config import RUNTIME_KEYS, TrainConfig, config_differences, config_to_dict, resolve_train_config
from cnnlstm.data import Dataset
from cnnlstm.errors import RunError
from cnnlstm.fileio import read_history, read_json
from cnnlstm.reporting.compare import SeedRun
from cnnlstm.runs import check_model_source

log = logging.getLogger(__name__)

#: The file whose presence marks a job done (:func:`job_done`); every executor writes it last.
FINAL_FILE = {"train": "metrics.json", "explore": "stats.json", "embed": "embed.json",
              "robustness": "robustness.json", "explain": "explain.json", "occlusion": "occlusion.json"}


@dataclass
class Job:
    """One unit of a study: a training run, the exploration, or an analysis of a finished run."""

    kind: str  # "explore" | "train" | "embed" | "robustness" | "explain" | "occlusion"
    name: str  # folder name under the study folder
    group: str  # "explore", "baseline", "reference", "hybrid", "flagship", "ablation", "embed"
    cfg: TrainConfig | None = None
    label: str = ""  # what the report calls it (e.g. the ablation's description)
    weight: float = 1.0  # estimated cost in flagship-epoch equivalents: the ETA, and the order a cluster starts jobs in

    def folder(self, root: Path) -> Path:
        """``explore/``, ``runs/<model>-s<seed>/`` (analyses go into their run) or ``ablations/<name>-s<seed>/``."""
        if self.kind == "explore":
            return root / "explore"
        return root / ("ablations" if self.group == "ablation" else "runs") / self.name


@dataclass(frozen=True)
class AnalysisArgs:
    """The keyword arguments of each kind of analysis job, the same for every job of one study."""

    explore: dict = field(default_factory=dict)  # run_explore's keywords
    embed: dict = field(default_factory=dict)  # run_embed's
    robustness: dict = field(default_factory=dict)  # run_robustness's (the baseline comes per job)
    explain: dict = field(default_factory=dict)  # run_explain's
    occlusion: dict = field(default_factory=dict)  # run_occlusion's


def job_key(job: Job) -> str:
    """A job's name in logs, progress and the failures record: ``model1-s0``, ``embed model1-s0`` ..."""
    return job.name if job.kind in ("train", "explore") else f"{job.kind} {job.name}"


def job_done(job: Job, root: Path) -> bool:
    """A finished job left its final file (:data:`FINAL_FILE`)."""
    return (job.folder(root) / FINAL_FILE[job.kind]).exists()


def job_priority(job: Job) -> int:
    """Dask priority: the costliest jobs start first, so no long run starts last and holds up the end."""
    return int(round(job.weight * 100))


# --------------------------------------------------------------------------- costs

#: Forward MFLOPs per image added to a model's own for the per-image work every step does besides
#: the network (augmentation, the loss, the optimizer's step, validation): small models are not free.
IMAGE_OVERHEAD_MFLOPS = 1.0
#: The unit of :func:`train_weight`: one epoch of this model under its ``fast`` preset (the flagship).
WEIGHT_UNIT_MODEL = "cnn_lstm"


@lru_cache(maxsize=1)
def _unit_mflops() -> float:
    unit = resolve_train_config(WEIGHT_UNIT_MODEL, preset="fast")
    return _mflops(WEIGHT_UNIT_MODEL, json.dumps(unit.model_args, sort_keys=True)) or 1.0


@lru_cache(maxsize=None)
def _mflops(model: str, model_args: str) -> float | None:
    from cnnlstm.models import model_summary

    try:
        return float(model_summary(model, **json.loads(model_args))["mflops"])
    except Exception:  # noqa: BLE001 - a cost estimate must never stop a study; the caller falls back
        log.debug("no FLOP count for %s %s; its job is weighted by epochs alone", model, model_args)
        return None


def train_weight(cfg: TrainConfig, n_full: int = 55_000) -> float:
    """A training job's estimated cost, in epochs of the fast flagship on ``n_full`` images.

    ``epochs x (MFLOPs + overhead) / (flagship's) x images / n_full``, from the model's forward
    FLOPs at 28x28: a relative cost, not a time. It orders a cluster's jobs longest first (so that
    a 36-epoch reference does not start last and hold up the study) and weighs the ETA. A model
    whose FLOPs cannot be counted is weighed by its epochs alone.
    """
    mflops = _mflops(cfg.model, json.dumps(cfg.model_args, sort_keys=True)) if not cfg.model_file else None
    per_image = 1.0 if mflops is None else (mflops + IMAGE_OVERHEAD_MFLOPS) / (_unit_mflops() + IMAGE_OVERHEAD_MFLOPS)
    images = cfg.train_size or cfg.limit_train or n_full
    return cfg.epochs * per_image * min(1.0, images / n_full)


# --------------------------------------------------------------------------- resuming


def recipe_changes(job: Job, root: Path) -> list[str]:
    """How the config a training job's folder was started with differs from the job's own.

    Empty when the folder has no ``config.json`` yet or the two agree on every key outside
    :data:`cnnlstm.config.RUNTIME_KEYS` (a study may resume on another machine, with more threads,
    the data found elsewhere); otherwise ``["key saved vs planned", ...]``.
    """
    path = job.folder(root) / "config.json"
    if job.kind != "train" or not path.exists():
        return []
    return config_differences(read_json(path), config_to_dict(job.cfg), RUNTIME_KEYS)


def check_recipes(jobs: list[Job], root: Path) -> None:
    """Refuse to resume a study whose run folders were trained with another recipe.

    A study folder left by an earlier version of a preset would otherwise be reported as finished
    runs of the current recipe: mixed recipes under one heading, and comparisons that are not matched.

    Raises
    ------
    RunError
        Naming the first stale run, its differences, and how many runs are stale.
    """
    for job in jobs:  # a user's model file edited since its runs trained: those runs are of another model
        if job.kind == "train" and job.cfg.model_file and (job.folder(root) / "config.json").exists():
            check_model_source(job.folder(root), job.cfg)
    stale = [(job, changes) for job in jobs if (changes := recipe_changes(job, root))]
    if stale:
        job, changes = stale[0]
        raise RunError(
            f"{root} holds {len(stale)} run(s) trained with another recipe than this study plans, e.g. "
            f"{job.name}: {'; '.join(changes)} (saved vs planned); choose a new --out, or delete {root} to "
            "rerun the whole study (its embeddings and analyses were made from those runs)")


# --------------------------------------------------------------------------- running one job


def run_job(job: Job, folder: Path, ds: Dataset, args: AnalysisArgs, *, baseline: dict | None = None,
            on_step: Callable | None = None, on_epoch: Callable | None = None) -> None:
    """Run (or resume) one job into ``folder``: the study folder's, or a Dask worker's scratch copy.

    ``baseline`` is the reference model's ``robustness.json`` record, for another model's robustness job.
    """
    from cnnlstm.study import exploration
    from cnnlstm.study.experiment import train_run

    if job.kind == "explore":
        exploration.run_explore(ds, folder, **args.explore)
    elif job.kind == "train":
        resume = (folder / "config.json").exists()
        if resume and (folder / "best.pt").exists() and not (folder / "checkpoint.pt").exists():
            resume = False
        cfg = None if resume else job.cfg
        # Figures for seed 0 (the run the report shows); the other seeds are only numbers in it.
        train_run(cfg, folder, ds, resume=resume, on_step=on_step, on_epoch=on_epoch, figures=job.cfg.seed == 0)
    elif job.kind == "embed":
        exploration.run_embed(folder, ds, **args.embed)
    elif job.kind == "robustness":
        from cnnlstm.study.robustness import run_robustness

        run_robustness(folder, ds, baseline=baseline, **args.robustness)
    elif job.kind == "explain":
        from cnnlstm.study.explain import run_explain

        run_explain(folder, ds, **args.explain)
    elif job.kind == "occlusion":
        from cnnlstm.study.occlusion import run_occlusion

        run_occlusion(folder, ds, **args.occlusion)


# --------------------------------------------------------------------------- reading finished jobs


def seed_runs(root: Path, jobs: list[Job]) -> dict[str, list[SeedRun]]:
    """The finished training runs of each model, in plan order (runs without ``metrics.json`` are left out).

    The one reader of a set of finished seed runs: ``compare``, the regime study and the plan's study
    all compare what it returns.
    """
    out: dict[str, list[SeedRun]] = {}
    for job in jobs:
        folder = job.folder(root)
        if job.kind == "train" and (folder / "metrics.json").exists():
            metrics = read_json(folder / "metrics.json")
            out.setdefault(job.cfg.model, []).append(
                SeedRun(job.cfg.seed, float(metrics["accuracy"]), folder, read_json(folder / "config.json")))
    return out


def collect_runs(root: Path, jobs: list[Job]) -> list[dict]:
    """One record per finished training job: its job, config, metrics and history."""
    out = []
    for job in jobs:
        if job.kind != "train" or not job_done(job, root):
            continue
        folder = job.folder(root)
        out.append({"job": job, "folder": folder, "metrics": read_json(folder / "metrics.json"),
                    "history": read_history(folder / "history.csv"), "cfg": job.cfg})
    return out
