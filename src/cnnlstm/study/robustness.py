"""The ``robustness`` command's driver: a run folder's test images corrupted, into ``robustness.json``.

The measurement itself (corrupting, evaluating, corruption errors) is
:mod:`cnnlstm.measure.robustness`; this module opens the run (:func:`cnnlstm.study.prelude.open_run`),
holds its lock and writes the record and its figure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from cnnlstm.data import Dataset
from cnnlstm.data import corruptions as corr
from cnnlstm.data.splits import sample_indices
from cnnlstm.fileio import read_json, run_lock, write_json
from cnnlstm.measure.robustness import Progress, accuracy_table, compare, evaluate_corrupted, summarise
from cnnlstm.study.prelude import open_run

log = logging.getLogger(__name__)


def run_robustness(run_dir: str | Path, ds: Dataset, *, severities: Sequence[int] = corr.SEVERITIES,
                   corruptions: Sequence[str] | None = None, samples: int | None = None, seed: int = 0,
                   baseline: dict | None = None, device: str | None = None,
                   progress: Progress | None = None, figure: bool = True) -> dict:
    """Evaluate a run on the corrupted test set into ``robustness.json`` and ``figures/robustness.png``.

    Parameters
    ----------
    run_dir : path
        A finished run folder (``config.json`` and ``best.pt``).
    ds : Dataset
        The dataset the run was trained on.
    severities : sequence of int, default 1..5
    corruptions : sequence of str, optional
        Default: all 15 (:func:`cnnlstm.data.corruptions.list_corruptions`).
    samples : int, optional
        Test images used, a seeded sample of the run's test images; None uses all of them.
        Cost: one clean pass plus one per cell (10 corruptions x 5 severities + 5 without
        severity = 55 at the defaults) of inference on ``samples`` images, plus about 3 s of
        corruption per 1,000 images.
    seed : int, default 0
        Seeds the sample and every corruption.
    baseline : dict, optional
        Another run's ``robustness.json`` record on the same images: adds ``ce``, ``mce``,
        ``relative_ce``, ``relative_mce`` and ``baseline`` (see :func:`compare`).
    device : str, optional
        Inference device; default the run's ``device``.
    progress : callable, optional
        ``progress(done, total, label)`` after each cell.
    figure : bool, default True

    Returns
    -------
    dict
        The ``robustness.json`` content: ``model``, ``run``, ``checkpoint``, ``n_images``,
        ``samples``, ``seed``, ``indices`` (None = every test image of the run), ``severities``,
        ``corruptions``, ``clean_accuracy``, ``accuracy`` (``{corruption: {"1".."5" or "n/a":
        accuracy}}``), ``mean_accuracy`` (per corruption, over its severities),
        ``mean_corrupted_accuracy`` (mean of those), ``corruption_params``, timings and, with a
        baseline, the :func:`compare` keys (None without one).
    """
    run_dir = Path(run_dir)
    names = corr.check_corruptions(corruptions or corr.list_corruptions())
    severities = corr.check_severities(severities)
    t0 = time.perf_counter()
    with run_lock(run_dir):
        run = open_run(run_dir, ds, device=device)
        cfg, dev = run.config, run.device
        idx = sample_indices(run.n_test, samples, seed)  # the same images for every run with this seed
        images, labels = (run.test_images, run.test_labels) if idx is None else (run.test_images[idx],
                                                                                run.test_labels[idx])
        model = run.model
        result = evaluate_corrupted(model, images, labels, corruptions=names, severities=severities, seed=seed,
                                    norm=run.norm, batch_size=cfg.eval_batch_size, progress=progress)
        per, mean = summarise(result["accuracy"])
        record = {"model": cfg.model, "run": str(run_dir), "checkpoint": "best", "n_images": int(len(labels)),
                  "samples": samples, "seed": int(seed), "indices": None if idx is None else idx.tolist(),
                  "severities": list(severities), "corruptions": list(names),
                  "clean_accuracy": result["clean_accuracy"], "accuracy": result["accuracy"],
                  "mean_accuracy": per, "mean_corrupted_accuracy": mean,
                  "corruption_params": corr.describe(names), "device": str(dev),
                  "corrupt_seconds": result["corrupt_seconds"], "predict_seconds": result["predict_seconds"],
                  "seconds": time.perf_counter() - t0,
                  "baseline": None, "ce": None, "mce": None, "relative_ce": None, "relative_mce": None}
        if baseline is not None:
            record.update(compare(record, baseline))
        write_json(run_dir / "robustness.json", record)
        if figure:
            write_robustness_figure(record, run_dir / "figures" / "robustness.png")
    log.info("%s: clean %.4f, mean corrupted %.4f%s (%.1f s)", run_dir, record["clean_accuracy"], mean,
             f", mCE {record['mce']:.3f}" if record["mce"] is not None else "", record["seconds"])
    return record


def write_robustness_figure(record: dict, path: Path) -> Path:
    """``figures/robustness.png``: the accuracy table as a heat map beside each corruption's mean."""
    from cnnlstm.reporting import figures as plots

    names, columns, table = accuracy_table(record)
    ce = [record["ce"].get(n) for n in names] if record.get("ce") else None
    clean, corrupted = 100 * record["clean_accuracy"], 100 * record["mean_corrupted_accuracy"]
    title = (f"{record['model']} on corrupted test images (n={record['n_images']:,}, seed {record['seed']}): "
             f"clean {clean:.1f}%, mean corrupted {corrupted:.1f}%")
    if record.get("mce") is not None:
        title += f"\nmCE {record['mce']:.3f} relative to {record['baseline']['model']}"
    return plots.plot_robustness(names, columns, table, record["clean_accuracy"], path, title=title,
                                 mean_accuracy=[record["mean_accuracy"][n] for n in names], ce=ce)


def load_robustness(run_dir: str | Path) -> dict:
    """A run's ``robustness.json`` (RunError when it is missing or unreadable)."""
    return read_json(Path(run_dir) / "robustness.json")
