"""The plan's study run end to end: :func:`run` plans, loads the data, runs the jobs on an executor
and writes the report; :func:`run_study` runs the jobs not yet done."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cnnlstm.data import Dataset
from cnnlstm.errors import ConfigError
from cnnlstm.study.engine.jobs import Job, collect_runs
from cnnlstm.study.engine.loop import run_jobs
from cnnlstm.study.engine.seeds import SeedRule, run_until_precise
from cnnlstm.study.engine.session import Cluster, fit_jobs_to_dataset, open_executor, study_dataset
from cnnlstm.study.paper.plan import (
    ABLATIONS,
    StudyPreset,
    analysis_args,
    later_waves,
    plan_jobs,
    robustness_baseline,
)
from cnnlstm.study.paper.report import write_study_report
from cnnlstm.study.paper.sections import positive_control_rows
from cnnlstm.study.paper.tables import aggregate, control_comparisons


def run_study(root: str | Path, ds: Dataset, preset: StudyPreset, *, jobs: list[Job] | None = None,
              events=None, executor=None, seed: int = 0, n_jobs: int = -1) -> dict:
    """Run every job of the study not yet done, in waves of independent jobs; return a summary.

    Wave one is the exploration and every training run; then the jobs that read finished runs
    (:func:`~cnnlstm.study.paper.plan.later_waves`), through the engine's one loop
    (:func:`~cnnlstm.study.engine.loop.run_jobs`): a job that fails is recorded and the rest go on;
    what depends on it is left out.

    Returns
    -------
    dict
        ``{"jobs": [...], "ran": int, "skipped": int, "failed": {name: error}, "seconds": float}``
    """
    root = Path(root)
    jobs = jobs if jobs is not None else plan_jobs(preset)
    return run_jobs(root, ds, jobs, executor=executor, events=events,
                    args=analysis_args(preset, seed=seed, n_jobs=n_jobs), baseline=robustness_baseline(root),
                    later=lambda: later_waves(root, preset, jobs))


def run(preset: StudyPreset, *, out: str | Path | None, data, settings: dict, cluster: Cluster,
        seeds: int | SeedRule | None = None, models: tuple[str, ...] | None = None, ablations: tuple[str, ...] | None = None,
        tsne_samples: int | None = None, user_models: tuple[tuple[str, str], ...] = (),
        positive_control: str | Path | None = None, events=None) -> dict:
    """The plan's study end to end: plan, load the data, run on ``cluster``'s executor, write the report.

    Parameters
    ----------
    preset : StudyPreset
    out : path, optional
        The study folder (default ``runs/reproduce-<preset>``).
    data : Dataset, data spec or None
    settings : dict
        Config keys every run gets (:func:`cnnlstm.study.engine.session.run_settings`).
    cluster : Cluster
    seeds, models, ablations, user_models
        As :func:`~cnnlstm.study.paper.plan.plan_jobs` takes them; ``seeds`` may be a
        :class:`~cnnlstm.study.engine.seeds.SeedRule` (``--seeds auto``), whose primary comparisons
        are the hybrid-vs-control pairs.
    tsne_samples : int, optional
        Overrides the preset's raw-pixel t-SNE size (0 skips it).
    positive_control : path, optional
        The folder of an earlier ``cnnlstm compare`` (e.g. ``spoerer_bl`` vs ``spoerer_bk`` on
        ``debris:10``) whose result the report prints in "Could this study have seen a benefit?".

    Returns
    -------
    dict
        :func:`run_study`'s summary plus ``report`` (the HTML path) and ``out``.
    """
    if tsne_samples is not None:
        if tsne_samples < 0:
            raise ConfigError(f"tsne_samples must be >= 0, got {tsne_samples}")
        preset = replace(preset, tsne_samples=tsne_samples)
    rule = seeds.check() if isinstance(seeds, SeedRule) else None
    seeds = rule.start if rule is not None else seeds
    if seeds is not None and seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    unknown = set(ablations or ()) - set(ABLATIONS)
    if unknown:
        raise ConfigError(f"unknown ablation {sorted(unknown)[0]!r}; choose from {', '.join(ABLATIONS)}")
    root = Path(out) if out is not None else Path(f"runs/reproduce-{preset.name}")
    if positive_control is not None:
        positive_control_rows(Path(positive_control))  # a wrong folder fails before anything trains
    plan_jobs(preset, seeds=seeds, common=settings, models=models, ablations=ablations,
              user_models=user_models)  # a bad plan fails before the data loads
    ds = study_dataset(data, settings)

    def run_at(n: int | None) -> tuple[dict, list]:
        jobs = fit_jobs_to_dataset(plan_jobs(preset, seeds=n, common=settings, models=models, ablations=ablations,
                                             user_models=user_models), ds)
        summary = run_study(root, ds, preset, jobs=jobs, events=events, executor=executor)
        if rule is None:  # the report compares the pairs once; only --seeds auto needs them here
            return summary, []
        runs = [r for r in collect_runs(root, summary["jobs"]) if r["job"].group != "ablation"]
        return summary, [p.comparison for p in control_comparisons(aggregate(runs, lambda r: r["cfg"].model))]

    with open_executor(cluster, root) as executor:
        summary = run_at(seeds)[0] if rule is None else run_until_precise(run_at, rule)
    note = f"Seeds chosen by precision (--seeds auto): {summary['stopped']}." if rule is not None else ""
    report = write_study_report(root, summary["jobs"], preset, ds, failed=summary["failed"], note=note,
                                positive_control=positive_control)
    summary.update(report=report, out=root)
    return summary
