"""The plan's study as a list of jobs: which models, presets, seeds and ablations, and which finished
runs are analysed.

A study is: explore the dataset; train and evaluate every model of the plan over N seeds (the
baselines, the reference models, the hybrids and the flagship); ablate the flagship's
regularizers and optimizers; embed the best baseline and the best hybrid with t-SNE; measure
robustness and explain the flagship. Which run is "best" is decided on validation accuracy, never
on test accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cnnlstm.config import TrainConfig, resolve_train_config
from cnnlstm.errors import ConfigError
from cnnlstm.fileio import read_history, read_json
from cnnlstm.study.engine.jobs import AnalysisArgs, Job, job_done, train_weight

BASELINES = ("model1", "model2")
REFERENCE_MODELS = ("tf_cnn", "cnn_svm", "ji_cnn_lstm")
HYBRIDS = ("model1_lstm", "model2_lstm", "parallel_cnn_lstm")
FLAGSHIP = "cnn_lstm"
#: The flagship's no-LSTM controls: its stem and recipe, the LSTM replaced (``models/controls.py``).
CONTROLS = ("cnn_twin", "cnn_gap")
#: Models trained with the flagship's preset and model arguments (stem channels), so they differ
#: from the flagship only where the LSTM sits.
FLAGSHIP_FAMILY = (FLAGSHIP, *CONTROLS)

#: What the LSTM adds: (hybrid, its control). Each pair trains under one recipe and schedule.
#: ``model1`` is the control of ``parallel_cnn_lstm`` too: its CNN branch alone is Model I.
CONTROL_PAIRS = (("model1_lstm", "model1"), ("model2_lstm", "model2"), ("parallel_cnn_lstm", "model1"),
                 (FLAGSHIP, "cnn_twin"), (FLAGSHIP, "cnn_gap"))

#: The group of a user's own models (``--model-file``): trained under the flagship's training preset
#: and compared with the flagship and its twin.
USER_GROUP = "yours"

#: The pairs every study runs at its full number of seeds: the plan's question, answered.
CORE_MODELS = ("model1", "model1_lstm", "model2", "model2_lstm", FLAGSHIP, "cnn_twin")


@dataclass(frozen=True)
class StudyPreset:
    """How big a study is: seeds, training presets, epochs, t-SNE sizes.

    Every model of a control pair trains under the same preset and overrides as its partner
    (``overrides`` for the plan's models, ``flagship_overrides`` for the flagship family), so
    each comparison the report makes is at equal recipe and schedule.
    """

    name: str
    seeds: int  # seeds of CORE_MODELS
    model_preset: str  # training preset of the baselines, reference models and plan hybrids
    flagship_preset: str  # training preset of the flagship, its controls and its ablations
    other_seeds: int = 1  # seeds of the other models (0 = leave them out)
    references: bool = True  # train the Table I reference models
    ablations: bool = True  # ablate the flagship (always at the flagship's full schedule)
    overrides: dict = field(default_factory=dict)  # applied to every non-flagship-family run
    model_overrides: dict = field(default_factory=dict)  # model name -> overrides for that model only
    flagship_overrides: dict = field(default_factory=dict)  # applied to the flagship family and ablations
    tsne_samples: int = 70000  # raw-pixel t-SNE of explore (0 = skip)
    embed_samples: int = 10000  # test images embedded per model
    robustness_samples: int = 10000  # corrupted test images per corruption and severity (0 = skip)
    robustness_severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    explain_per_class: int = 3  # images per class in the flagship's explanation figure (0 = skip)
    note: str = ""  # what the preset leaves out or shortens, printed in the report

    def seeds_of(self, model: str) -> int:
        """Seeds this study trains ``model`` with (0 = not at all)."""
        if model in REFERENCE_MODELS and not self.references:
            return 0
        return self.seeds if model in CORE_MODELS else self.other_seeds


STUDY_PRESETS = {
    # ~10 minutes on a 2-core CPU. The plan's question at 3 seeds: model1 vs model1_lstm, model2
    # vs model2_lstm and the flagship vs its no-LSTM twin, each pair at one recipe and schedule.
    # To fit, the flagship family trains 2 epochs of its `fast` recipe and the plan's models 2 of
    # the `paper` preset's 3; the parallel hybrid and the small GAP control get one seed; the
    # reference models (their recipes take up to 30 minutes each) and the ablations (7 runs at
    # the flagship's full schedule) are left to the `paper` preset.
    "quick": StudyPreset("quick", seeds=3, model_preset="paper", flagship_preset="fast", other_seeds=1,
                         references=False, ablations=False, overrides={"epochs": 2},
                         flagship_overrides={"epochs": 2}, tsne_samples=5000, embed_samples=3000,
                         robustness_samples=500, robustness_severities=(3,), explain_per_class=2,
                         note="short schedules (2 epochs for every model, equal within each pair); the "
                              "reference models of Table I and the ablations are left to "
                              "`cnnlstm reproduce --preset paper`"),
    # The plan's settings and the references' published recipes (presets/paper.toml), 3 seeds;
    # the flagship family and its ablations at the `fast` recipe.
    "paper": StudyPreset("paper", seeds=3, model_preset="paper", flagship_preset="fast", other_seeds=3,
                         tsne_samples=70000, embed_samples=10000, robustness_samples=2000),
    # The flagship family at its `best` recipe, 3 seeds; no ablations (7 x 3 runs of 30 epochs).
    "best": StudyPreset("best", seeds=3, model_preset="paper", flagship_preset="best", other_seeds=3,
                        ablations=False, tsne_samples=70000, embed_samples=10000, robustness_samples=2000,
                        note="no ablations at the best recipe's schedule"),
}

ABLATIONS = {
    # name -> (what changes, config overrides on top of the flagship's config). "all_on" is the
    # flagship itself under the ablation schedule: the row every other row is compared with.
    "all_on": ("flagship, everything on", {}),
    "no_flip": ("random flips off", {"flip_h": 0.0, "flip_v": 0.0}),
    "no_batchnorm": ("batch norm off", {"model_args": {"batch_norm": False}}),
    "no_dropout": ("dropout off", {"model_args": {"dropout": 0.0}}),
    "adam": ("Adam instead of AdamW", {"optimizer": "adam", "weight_decay": 0.0}),
    "nadam": ("NAdam", {"optimizer": "nadam", "weight_decay": 0.0}),
    "sgd": ("SGD, momentum 0.9, nesterov", {"optimizer": "sgd", "lr": 0.05, "nesterov": True}),
}


def study_preset(name: str) -> StudyPreset:
    try:
        return STUDY_PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown study preset '{name}'; choose from {', '.join(STUDY_PRESETS)}") from None


def model_config(model: str, preset: StudyPreset, seed: int, common: dict) -> TrainConfig:
    """The training config of ``model`` in a study: its training preset, the study's overrides.

    The flagship's controls take the flagship's preset and its stem (``channels``), so a
    control differs from the flagship only in its head.
    """
    family = model in FLAGSHIP_FAMILY
    overrides = dict(preset.flagship_overrides if family else preset.overrides)
    overrides.update(preset.model_overrides.get(model, {}))
    overrides.update(common)
    overrides["seed"] = seed
    if model in CONTROLS:
        flagship = model_config(FLAGSHIP, preset, seed, common)
        stem = {k: v for k, v in flagship.model_args.items() if k in ("channels", "batch_norm", "dropout")}
        overrides["model_args"] = {**stem, **overrides.get("model_args", {})}
    return resolve_train_config(model, preset=preset.flagship_preset if family else preset.model_preset,
                                overrides=overrides)


def user_model_config(model: str, model_file: str, preset: StudyPreset, seed: int, common: dict) -> TrainConfig:
    """A user's model in a study: the flagship's training preset and overrides, its own model arguments."""
    overrides = {k: v for k, v in preset.flagship_overrides.items() if k != "model_args"}
    overrides.update(common)
    overrides.update(model_file=model_file, seed=seed)
    return resolve_train_config(model, preset=preset.flagship_preset, overrides=overrides)


def ablation_config(base: TrainConfig, overrides: dict) -> TrainConfig:
    """``base`` with an ablation's changes (model_args merge rather than replace)."""
    from cnnlstm.config import config_to_dict, deep_merge, from_dict

    merged = deep_merge(config_to_dict(base), overrides)
    return from_dict(TrainConfig, merged, where="ablation").validate()


GROUPS = ((BASELINES, "baseline"), (REFERENCE_MODELS, "reference"), (HYBRIDS, "hybrid"),
          ((FLAGSHIP,), "flagship"), (CONTROLS, "control"))


def plan_jobs(preset: StudyPreset, *, seeds: int | None = None, common: dict | None = None,
              models: tuple[str, ...] | None = None, ablations: tuple[str, ...] | None = None,
              user_models: tuple[tuple[str, str], ...] = ()) -> list[Job]:
    """Every job of the study, in the order it runs (embeddings are planned after training).

    Parameters
    ----------
    preset : StudyPreset
    seeds : int, optional
        Overrides the preset's number of seeds for every model it trains (seeds are 0 .. seeds-1).
        It changes how many seeds, never which models: a model the preset leaves out (the quick
        preset's references) stays out unless ``models`` names it.
    common : dict, optional
        Config overrides for every run (data location, device, threads, ``limit_train`` ...).
    models, ablations : tuple of str, optional
        Subsets, for smaller studies and tests. Naming models trains them even where the preset
        leaves them out.
    user_models : tuple of (name, model_file)
        A user's own models (``--model-file``), trained with the flagship's seeds and training
        preset in the group :data:`USER_GROUP`.
    """
    common = dict(common or {})
    jobs = [Job("explore", "explore", "explore", weight=max(1.0, preset.tsne_samples / 5000))]
    for names, group in GROUPS:
        for model in names:
            if models is not None and model not in models:
                continue
            planned = preset.seeds_of(model) or (1 if models is not None else 0)
            n_seeds = (seeds or planned) if planned else 0
            for seed in range(n_seeds):
                cfg = model_config(model, preset, seed, common)
                jobs.append(Job("train", f"{model}-s{seed}", group, cfg, label=model, weight=train_weight(cfg)))
    for model, model_file in user_models:
        for seed in range(seeds or preset.seeds_of(FLAGSHIP)):
            cfg = user_model_config(model, model_file, preset, seed, common)
            jobs.append(Job("train", f"{model}-s{seed}", USER_GROUP, cfg, label=model, weight=train_weight(cfg)))
    run_ablations = preset.ablations if ablations is None else bool(ablations)
    if run_ablations and (models is None or FLAGSHIP in models):
        for name, (label, changes) in ABLATIONS.items():
            if ablations is not None and name not in ablations:
                continue
            for seed in range(seeds or preset.seeds):
                cfg = ablation_config(model_config(FLAGSHIP, preset, seed, common), changes)
                jobs.append(Job("train", f"{name}-s{seed}", "ablation", cfg, label=label, weight=train_weight(cfg)))
    return jobs


def best_run_by_validation(root: Path, jobs: list[Job], group: str) -> str | None:
    """The model of ``group`` with the highest mean best-validation accuracy (never test accuracy)."""
    scores: dict[str, list[float]] = {}
    for job in jobs:
        if job.kind != "train" or job.group != group:
            continue
        history = read_history(job.folder(root) / "history.csv")
        vals = [r["val_acc"] for r in history if r.get("val_acc") is not None]
        if vals:
            scores.setdefault(job.cfg.model, []).append(max(vals))
    if not scores:
        return None
    return max(scores, key=lambda m: sum(scores[m]) / len(scores[m]))


def embed_jobs(root: Path, jobs: list[Job]) -> list[Job]:
    """t-SNE jobs for the best baseline and the best hybrid (flagship included), seed 0's run."""
    baseline = best_run_by_validation(root, jobs, "baseline")
    hybrid_scores = {g: best_run_by_validation(root, jobs, g) for g in ("hybrid", "flagship")}
    candidates = [m for m in hybrid_scores.values() if m]
    hybrid = None
    if candidates:
        hybrid = max(candidates, key=lambda m: _mean_val(root, jobs, m))
    out = []
    for model in (baseline, hybrid):
        if model:
            run = next(j for j in jobs if j.kind == "train" and j.cfg.model == model and j.group != "ablation")
            out.append(Job("embed", run.name, "embed", run.cfg, label=model, weight=2.0))
    return out


#: Models whose seed-0 run the study evaluates on corrupted test images; model1 first, because
#: every other model's corruption error is normalised by its errors (ImageNet-C's mCE).
ROBUSTNESS_MODELS = (*BASELINES, *HYBRIDS, *FLAGSHIP_FAMILY)


def analysis_jobs(preset: StudyPreset, jobs: list[Job]) -> list[Job]:
    """Robustness of seed 0 of the baselines, hybrids and flagship family; the flagship's explanation."""
    seed0 = {j.cfg.model: j for j in jobs if j.kind == "train" and j.group != "ablation" and j.cfg.seed == 0}
    out = []
    if preset.robustness_samples:
        out += [Job("robustness", seed0[m].name, "robustness", seed0[m].cfg, label=m, weight=1.0)
                for m in ROBUSTNESS_MODELS if m in seed0]
    if preset.explain_per_class and FLAGSHIP in seed0:
        out.append(Job("explain", seed0[FLAGSHIP].name, "explain", seed0[FLAGSHIP].cfg, label=FLAGSHIP, weight=0.5))
    return out


def _mean_val(root: Path, jobs: list[Job], model: str) -> float:
    vals = []
    for job in jobs:
        if job.kind == "train" and job.group != "ablation" and job.cfg.model == model:
            history = read_history(job.folder(root) / "history.csv")
            vals += [max(r["val_acc"] for r in history)] if history else []
    return sum(vals) / len(vals) if vals else float("-inf")


# --------------------------------------------------------------------------- running


def analysis_args(preset: StudyPreset, *, seed: int = 0, n_jobs: int = -1) -> AnalysisArgs:
    """The keyword arguments of the study's analysis jobs, from its preset."""
    return AnalysisArgs(explore={"tsne_samples": preset.tsne_samples, "seed": seed, "n_jobs": n_jobs},
                        embed={"samples": preset.embed_samples, "seed": seed},
                        robustness={"samples": preset.robustness_samples, "severities": preset.robustness_severities,
                                    "seed": seed},
                        explain={"per_class": max(1, preset.explain_per_class), "seed": seed})


def robustness_baseline(root: Path) -> Callable[[Job], dict | None]:
    """``baseline(job)``: Model I's seed-0 ``robustness.json`` for another model's robustness job, else None."""
    def baseline(job: Job) -> dict | None:
        base = Job("train", f"{BASELINES[0]}-s0", "baseline").folder(root)
        if job.kind != "robustness" or job.cfg.model == BASELINES[0] or not (base / "robustness.json").exists():
            return None
        return read_json(base / "robustness.json")
    return baseline


def later_waves(root: Path, preset: StudyPreset, jobs: list[Job]) -> list[list[Job]]:
    """The jobs that need finished runs, in the order of their dependence.

    First the embeddings (of the best baseline and hybrid by validation accuracy), the flagship's
    explanation and Model I's robustness; then every other model's robustness, whose corruption
    error is normalised by Model I's. Only runs that finished are analysed.
    """
    trained = [j for j in jobs if j.kind == "train" and job_done(j, root)]
    analyses = analysis_jobs(preset, trained)
    first = [j for j in analyses if not (j.kind == "robustness" and j.cfg.model != BASELINES[0])]
    second = [j for j in analyses if j not in first]
    return [embed_jobs(root, trained) + first, second]
