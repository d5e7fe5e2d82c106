"""Run folders as the report reads them: records, input sorting, dataset checks and grouping.

:func:`load_run` reads one run folder into a :class:`RunRecord`; :func:`classify_inputs` sorts the
command line's folders into runs, explorations and sweeps; :func:`check_same_dataset` refuses to mix
datasets; :func:`group_runs` gathers the seeds of one experiment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnlstm.config import RUNTIME_KEYS
from cnnlstm.errors import RunError
from cnnlstm.fileio import read_history, read_json


@dataclass
class RunRecord:
    """What the report reads from one run folder."""

    path: Path
    config: dict
    metrics: dict | None
    history: list[dict]
    embed: dict | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> str:
        return str(self.config.get("model", "?"))

    @property
    def data(self) -> str:
        """The data spec the run trained on (runs from before the key: Fashion-MNIST)."""
        return str(self.config.get("data", "fashion-mnist"))

    def figure(self, name: str) -> Path | None:
        p = self.path / "figures" / name
        return p if p.is_file() else None


def _read_optional(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a run folder (``config.json`` required; metrics, history and embedding optional)."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    if not isinstance(config, dict):
        raise RunError(f"{run_dir}/config.json is not a table of settings")
    return RunRecord(run_dir, config, _read_optional(run_dir / "metrics.json"),
                     read_history(run_dir / "history.csv"), _read_optional(run_dir / "embed.json"))


def classify_inputs(paths: Iterable[str | Path]) -> dict[str, list[Path]]:
    """Sort input folders into runs (config.json), explorations (stats.json) and sweeps (sweep.json).

    Raises
    ------
    RunError
        A path that is not a folder, or a folder with none of those files.
    """
    out: dict[str, list[Path]] = {"runs": [], "explore": [], "sweeps": []}
    for p in map(Path, paths):
        if not p.is_dir():
            raise RunError(f"{p}: no such folder")
        kinds = [k for k, f in (("runs", "config.json"), ("explore", "stats.json"), ("sweeps", "sweep.json"))
                 if (p / f).is_file()]
        if not kinds:
            raise RunError(f"{p}: not a run, explore or sweep folder (no config.json, stats.json or sweep.json)")
        for k in kinds:
            out[k].append(p)
    return out


def dataset_identity(dataset: str | None, verified: bool | None) -> str:
    """``"Fashion-MNIST (verified)"`` for checksum-verified data, else the source folder."""
    if verified:
        return "Fashion-MNIST (verified)"
    source = (dataset or "unknown").removesuffix(" (cache)")
    return f"unverified data from {source}"


def dataset_title(name: str) -> str:
    """How a report names a dataset in its headings: an IDX family's title, else the spec as given."""
    from cnnlstm.data.sources import IDX_FAMILIES

    family = IDX_FAMILIES.get(name)
    return family.title if family else name


def trained_size(model: str, config: dict, *, image_size: int, channels: int, num_classes: int) -> tuple[int, float]:
    """Parameters and forward MFLOPs per image of ``model`` as a run built it: its ``model_args`` on
    the dataset it trained on (image size, channels and classes change both figures)."""
    from cnnlstm.models import model_summary

    info = model_summary(model, image_size=image_size, in_channels=channels, num_classes=num_classes,
                         **config.get("model_args", {}))
    return info["params"], info["mflops"]


def fewest_train_images(runs: Iterable[tuple[dict, dict | None]]) -> int | None:
    """The fewest training images any of ``(config, metrics)`` trained on; None when none says.

    ``metrics.json``'s ``n_train`` is what training used; a run without it is read from the
    config's ``limit_train`` and ``train_size`` (either one set means fewer than the full split).
    """
    counts = []
    for config, metrics in runs:
        n = (metrics or {}).get("n_train")
        limits = [v for v in (config.get("limit_train"), config.get("train_size")) if v]
        counts += [n] if n is not None else [min(limits)] if limits else []
    return min(counts) if counts else None


def check_same_dataset(runs: Sequence[RunRecord], explores: Sequence[tuple[Path, dict]]) -> str | None:
    """The one dataset every input was evaluated on, or a RunError naming the mix.

    Runs without ``metrics.json`` are not checked (they hold no dataset record).
    """
    seen: dict[str, list[str]] = {}
    for r in runs:
        if r.metrics and ("dataset" in r.metrics or "verified" in r.metrics):
            ident = dataset_identity(r.metrics.get("dataset"), r.metrics.get("verified"))
            seen.setdefault(ident, []).append(str(r.path))
    for path, stats in explores:
        ds = stats.get("dataset") or {}
        if ds:
            seen.setdefault(dataset_identity(ds.get("source"), ds.get("verified")), []).append(str(path))
    if len(seen) > 1:
        parts = "; ".join(f"{ident}: {', '.join(paths)}" for ident, paths in seen.items())
        raise RunError(f"the inputs come from different datasets, which a report must not mix ({parts})")
    return next(iter(seen), None)


# =========================================================================== grouping

# Runs differing only in the seed and config.RUNTIME_KEYS are repeats of one experiment, reported as
# mean ± std.
OPERATIONAL_KEYS = frozenset({"seed"}) | RUNTIME_KEYS


def experiment_key(run: RunRecord) -> str:
    """Identity of a run's experiment: its config without seed and operational keys, plus how it
    was evaluated (checkpoint, TTA)."""
    cfg = {k: v for k, v in run.config.items() if k not in OPERATIONAL_KEYS}
    how = {k: run.metrics.get(k) for k in ("checkpoint", "tta")} if run.metrics else {"evaluated": False}
    return json.dumps([cfg, how], sort_keys=True, default=str)


def group_runs(runs: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """Runs grouped by :func:`experiment_key`, groups and members in input order."""
    groups: dict[str, list[RunRecord]] = {}
    for r in runs:
        groups.setdefault(experiment_key(r), []).append(r)
    return list(groups.values())
