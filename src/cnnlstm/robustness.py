"""Robustness of a trained run to the Fashion-MNIST-C corruptions, and the mean corruption error.

:func:`run_robustness` corrupts the run's test images (all of them, or a seeded sample) with each
corruption of :mod:`cnnlstm.corruptions` at each severity, evaluates the run's ``best.pt`` on every
corrupted set and writes ``robustness.json`` and ``figures/robustness.png`` into the run folder.

The corruption error is normalised as ImageNet-C does (Hendrycks & Dietterich 2019): for a
corruption ``c``, ``CE_c = sum_s E(model, c, s) / sum_s E(baseline, c, s)`` over the severities
``s`` both were evaluated at, with ``E`` the top-1 error; ``mCE`` is the mean of ``CE_c`` over the
corruptions. The relative CE subtracts each model's clean error first:
``sum_s (E(model, c, s) - E(model, clean)) / sum_s (E(baseline, c, s) - E(baseline, clean))``.
Below 1 means more robust than the baseline. :func:`compare` computes both from two records, so
one evaluation can be compared against several baselines (the plan's Model I, a no-LSTM twin).
Both records must cover the same test images (same ``samples`` and ``seed``).

Corrupted images depend only on ``(seed, corruption, severity)`` and the test images, so every
model of a study sees exactly the same corrupted sets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cnnlstm import corruptions as corr
from cnnlstm.data import Dataset
from cnnlstm.errors import RunError
from cnnlstm.runs import read_json, run_lock, write_json

log = logging.getLogger(__name__)

NO_SEVERITY = "n/a"  # the key of corruptions whose severity does not apply
Progress = Callable[[int, int, str], None]  # progress(done, total, label of the cell just done)


def cells(corruptions: Sequence[str], severities: Sequence[int]) -> list[tuple[str, int, str]]:
    """The ``(corruption, severity, key)`` cells to evaluate: one per severity, or one alone
    (key ``"n/a"``, evaluated at severity 1) for a corruption whose severity does not apply."""
    out = []
    for name in corruptions:
        if corr.severity_applies(name):
            out += [(name, s, str(s)) for s in severities]
        else:
            out.append((name, 1, NO_SEVERITY))
    return out


def evaluate_corrupted(model, images: np.ndarray, labels: np.ndarray, *, corruptions: Sequence[str],
                       severities: Sequence[int], seed: int, batch_size: int = 1000,
                       progress: Progress | None = None) -> dict:
    """Accuracy of ``model`` on the clean images and on every corruption cell.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier (run on the device of its parameters).
    images : np.ndarray
        ``(N, H, W)`` uint8 clean test images.
    labels : np.ndarray
        ``(N,)`` int labels.
    corruptions, severities : sequences
        Validated names and severities (see :func:`cnnlstm.corruptions.check_corruptions`).
    seed : int
        Seeds every corruption cell (:func:`cnnlstm.corruptions.corruption_rng`).
    batch_size : int
    progress : callable, optional
        ``progress(done, total, label)`` after each cell.

    Returns
    -------
    dict
        ``clean_accuracy``, ``accuracy`` (``{corruption: {severity key: accuracy}}``),
        ``corrupt_seconds`` and ``predict_seconds``.
    """
    from cnnlstm.data import to_tensor
    from cnnlstm.evaluate import _model_device, predict_probs

    device = _model_device(model)
    labels = np.asarray(labels).astype(np.int64)

    def accuracy(x: np.ndarray) -> float:
        probs = predict_probs(model, to_tensor(x, device), batch_size=batch_size)
        return float((probs.argmax(1) == labels).mean())

    t_predict = time.perf_counter()
    clean = accuracy(images)
    predict_seconds = time.perf_counter() - t_predict
    corrupt_seconds = 0.0
    todo = cells(corruptions, severities)
    out: dict[str, dict[str, float]] = {name: {} for name in corruptions}
    for done, (name, severity, key) in enumerate(todo, start=1):
        t0 = time.perf_counter()
        x = corr.corrupt_seeded(images, name, severity, seed)
        t1 = time.perf_counter()
        out[name][key] = accuracy(x)
        corrupt_seconds += t1 - t0
        predict_seconds += time.perf_counter() - t1
        if progress:
            progress(done, len(todo), corr.level_label(name, severity))
    return {"clean_accuracy": clean, "accuracy": out, "corrupt_seconds": corrupt_seconds,
            "predict_seconds": predict_seconds}


def _same_images(record: dict, baseline: dict) -> bool:
    return (record.get("n_images") == baseline.get("n_images") and record.get("seed") == baseline.get("seed")
            and record.get("indices") == baseline.get("indices"))


def compare(record: dict, baseline: dict) -> dict:
    """Corruption errors of ``record`` relative to ``baseline`` (two ``robustness.json`` records).

    Returns
    -------
    dict
        ``baseline`` (its ``run``, ``model`` and ``clean_accuracy``), ``ce`` and ``relative_ce``
        (``{corruption: value or None}``: None where the baseline's summed error is 0 or a
        corruption is missing), ``mce`` and ``relative_mce`` (means over the defined values;
        None if none is).

    Raises
    ------
    RunError
        When the two were evaluated on different test images (``samples``, ``seed``).
    """
    if not _same_images(record, baseline):
        raise RunError(f"{baseline.get('run')} was evaluated on other test images than {record.get('run')} "
                       f"(samples/seed differ: {baseline.get('n_images')}/{baseline.get('seed')} vs "
                       f"{record.get('n_images')}/{record.get('seed')}); evaluate both with the same --samples "
                       "and --seed")
    e_clean, b_clean = 1 - record["clean_accuracy"], 1 - baseline["clean_accuracy"]
    ce, rel = {}, {}
    for name, accs in record["accuracy"].items():
        base = baseline["accuracy"].get(name, {})
        keys = [k for k in accs if k in base]
        err = sum(1 - accs[k] for k in keys)
        b_err = sum(1 - base[k] for k in keys)
        ce[name] = err / b_err if keys and b_err > 0 else None
        b_rel = b_err - len(keys) * b_clean
        rel[name] = (err - len(keys) * e_clean) / b_rel if keys and b_rel > 0 else None

    def mean(values):
        defined = [v for v in values if v is not None]
        return float(np.mean(defined)) if defined else None

    return {"baseline": {"run": baseline.get("run"), "model": baseline.get("model"),
                         "clean_accuracy": baseline["clean_accuracy"]},
            "ce": ce, "mce": mean(ce.values()), "relative_ce": rel, "relative_mce": mean(rel.values())}


def summarise(accuracy: dict[str, dict[str, float]]) -> tuple[dict[str, float], float]:
    """Mean accuracy of each corruption over its severities, and the mean of those means."""
    per = {name: float(np.mean(list(accs.values()))) for name, accs in accuracy.items() if accs}
    return per, float(np.mean(list(per.values()))) if per else float("nan")


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
        Default: all 15 (:func:`cnnlstm.corruptions.list_corruptions`).
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
    from cnnlstm.device import resolve_device
    from cnnlstm.experiment import check_dataset_matches
    from cnnlstm.exploration import subsample
    from cnnlstm.runs import load_run_config, load_run_model

    run_dir = Path(run_dir)
    names = corr.check_corruptions(corruptions or corr.list_corruptions())
    severities = corr.check_severities(severities)
    cfg = load_run_config(run_dir)
    check_dataset_matches(cfg, ds)
    dev = resolve_device(device or cfg.device)
    n_test = cfg.limit_test or len(ds.test_labels)
    idx = subsample(n_test, samples, seed)  # the same images for every run with this seed
    sel = slice(0, n_test) if idx is None else idx
    images, labels = ds.test_images[sel], ds.test_labels[sel].astype(np.int64)
    t0 = time.perf_counter()
    with run_lock(run_dir):
        model, _ = load_run_model(run_dir, "best", dev, image_size=ds.train_images.shape[1])
        result = evaluate_corrupted(model, images, labels, corruptions=names, severities=severities, seed=seed,
                                    batch_size=cfg.eval_batch_size, progress=progress)
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


def accuracy_table(record: dict) -> tuple[list[str], list[str], np.ndarray]:
    """Rows (corruptions), columns (severities, then ``"n/a"`` if needed) and the accuracy matrix (NaN gaps)."""
    names = list(record["accuracy"])
    columns = [str(s) for s in record["severities"]]
    if any(NO_SEVERITY in record["accuracy"][n] for n in names):
        columns.append(NO_SEVERITY)
    table = np.full((len(names), len(columns)), np.nan)
    for i, name in enumerate(names):
        for j, key in enumerate(columns):
            if key in record["accuracy"][name]:
                table[i, j] = record["accuracy"][name][key]
    return names, columns, table


def write_robustness_figure(record: dict, path: Path) -> Path:
    """``figures/robustness.png``: the accuracy table as a heat map beside each corruption's mean."""
    from cnnlstm import plots

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


def covers(record: dict, *, corruptions: Sequence[str], severities: Sequence[int], samples: int | None,
           seed: int) -> bool:
    """Whether an existing record was evaluated on these images and holds every requested cell."""
    if record.get("samples") != samples or record.get("seed") != seed:
        return False
    acc = record.get("accuracy", {})
    return all(key in acc.get(name, {}) for name, _, key in cells(corruptions, severities))
