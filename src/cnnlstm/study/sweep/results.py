"""A sweep's results: ``sweep.json`` (every trial, counts, the best), parameter importances, the
figures, and the best trial's config as a file to train with."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

from cnnlstm.errors import ConfigError, RunError
from cnnlstm.study.sweep.storage import make_storage, masked

log = logging.getLogger(__name__)


def _states():
    from optuna.trial import TrialState

    return TrialState


def _count(trials, *states) -> int:
    return sum(1 for t in trials if t.state in states)


# --------------------------------------------------------------------------- results


def _trial_record(t, out_dir: Path | None = None) -> dict:
    """One trial as sweep.json lists it.

    ``value`` is the best validation accuracy of a complete trial and, Optuna's convention, the
    last reported one of a pruned trial. ``run_dir`` is relative to the sweep folder when inside
    it; ``host`` says which machine holds it.
    """
    return {"number": t.number, "value": t.value, "state": t.state.name, "params": dict(t.params),
            "epochs": len(t.intermediate_values), "run_dir": _relative(t.user_attrs.get("run_dir"), out_dir),
            "host": t.user_attrs.get("host"), "pid": t.user_attrs.get("pid"),
            "stopped": t.user_attrs.get("stopped"), "error": t.user_attrs.get("error"),
            "retry_of": t.system_attrs.get("failed_trial")}


def _relative(path: str | None, out_dir: Path | None) -> str | None:
    if path is None or out_dir is None:
        return path
    try:
        return str(Path(path).relative_to(Path(out_dir).resolve()))
    except ValueError:
        return path


def param_importances(study, seed: int = 0) -> dict[str, float]:
    """fANOVA importances of the parameters over the complete trials ({} below two of them)."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(_states().COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as exc:  # e.g. no parameter varies across the trials
        log.info("no parameter importances: %s", exc)
        return {}
    return {k: float(v) for k, v in imp.items() if not math.isnan(v)}


def sweep_summary(study, seed: int = 0, out_dir: str | Path | None = None) -> dict:
    """The content of ``sweep.json`` (surplus trials left out; see :func:`_trial_record`)."""
    S = _states()
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    complete = [t for t in trials if t.state == S.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    return {
        "study": study.study_name,
        "direction": "maximize",
        "objective": "best validation accuracy over the epochs (the test set is never used)",
        "model": study.user_attrs.get("model"),
        "n_trials": study.user_attrs.get("n_trials"),
        "counts": {s.name: _count(trials, s) for s in (S.COMPLETE, S.PRUNED, S.FAIL, S.RUNNING, S.WAITING)},
        "best": ({"value": best.value, "params": dict(best.params), "number": best.number,
                  "run_dir": _relative(best.user_attrs.get("run_dir"), out_dir)} if best else None),
        "trials": [_trial_record(t, out_dir) for t in trials],
        "importances": param_importances(study, seed),
    }


def write_outputs(study, out_dir: str | Path, seed: int = 0) -> dict:
    """Write ``sweep.json`` and ``figures/sweep_{history,importances}.png``; return the summary."""
    from cnnlstm.fileio import write_json
    from cnnlstm.reporting import figures as plots  # matplotlib only when figures are written

    out_dir = Path(out_dir)
    summary = sweep_summary(study, seed, out_dir)
    write_json(out_dir / "sweep.json", summary)
    plots.plot_trials(summary["trials"], out_dir / "figures" / "sweep_history.png")
    plots.plot_importances(summary["importances"], out_dir / "figures" / "sweep_importances.png")
    return summary


# --------------------------------------------------------------------------- best config


def best_config(storage_url: str, study_name: str) -> tuple[dict, Any]:
    """The full training config of the study's best trial, and that trial (frozen).

    Raises
    ------
    ConfigError
        No such study in the storage (the message lists the ones there).
    RunError
        The study has no complete trial yet.
    """
    import optuna

    storage = make_storage(storage_url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if study_name not in names:
        raise ConfigError(f"no study '{study_name}' in {masked(storage_url)}; studies there: "
                          f"{', '.join(names) or 'none'}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    complete = study.get_trials(deepcopy=False, states=(_states().COMPLETE,))
    if not complete:
        raise RunError(f"study '{study_name}' has no complete trial yet")
    best = max(complete, key=lambda t: (t.value, -t.number))
    return dict(best.user_attrs["config"]), best
