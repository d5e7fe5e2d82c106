"""Robustness of a trained run to the Fashion-MNIST-C corruptions, and the mean corruption error.

:func:`evaluate_corrupted` corrupts test images with each corruption of
:mod:`cnnlstm.data.corruptions` at each severity and evaluates a model on every corrupted set;
:func:`cnnlstm.study.robustness.run_robustness` drives it for a run folder.

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

import numpy as np

from cnnlstm.data import corruptions as corr
from cnnlstm.errors import RunError

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


def _scorer(model, labels: np.ndarray, norm, batch_size: int) -> Callable[[np.ndarray], float]:
    """``accuracy(images)`` of ``model`` against ``labels``: uint8 images in, top-1 accuracy out."""
    from cnnlstm.data import to_tensor
    from cnnlstm.measure.inference import model_device, predict_probs

    device = model_device(model)
    labels = np.asarray(labels).astype(np.int64)

    def accuracy(x: np.ndarray) -> float:
        probs = predict_probs(model, to_tensor(x, device, norm=norm), batch_size=batch_size)
        return float((probs.argmax(1) == labels).mean())

    return accuracy


def evaluate_corrupted(model, images: np.ndarray, labels: np.ndarray, *, corruptions: Sequence[str],
                       severities: Sequence[int], seed: int, norm, batch_size: int = 1000,
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
        Validated names and severities (see :func:`cnnlstm.data.corruptions.check_corruptions`).
    seed : int
        Seeds every corruption cell (:func:`cnnlstm.data.corruptions.corruption_rng`).
    norm : cnnlstm.data.Norm
        The normalisation the model trained with.
    batch_size : int
    progress : callable, optional
        ``progress(done, total, label)`` after each cell.

    Returns
    -------
    dict
        ``clean_accuracy``, ``accuracy`` (``{corruption: {severity key: accuracy}}``),
        ``corrupt_seconds`` and ``predict_seconds``.
    """
    accuracy = _scorer(model, labels, norm, batch_size)

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


def covers(record: dict, *, corruptions: Sequence[str], severities: Sequence[int], samples: int | None,
           seed: int) -> bool:
    """Whether an existing record was evaluated on these images and holds every requested cell."""
    if record.get("samples") != samples or record.get("seed") != seed:
        return False
    acc = record.get("accuracy", {})
    return all(key in acc.get(name, {}) for name, _, key in cells(corruptions, severities))


def evaluate_perturbed(model, images: np.ndarray, labels: np.ndarray, *, levels: dict[str, Sequence[float]],
                       seed: int, norm, batch_size: int = 1000) -> dict:
    """Accuracy of ``model`` on the test images under each occlusion or translation level.

    Parameters
    ----------
    model : torch.nn.Module
    images, labels : np.ndarray
        uint8 ``(N, H, W[, C])`` clean test images and their labels.
    levels : dict
        ``{"erase": fractions, "shift": pixels}`` (:func:`cnnlstm.data.occlusion.perturb`); level
        0 is the clean set, predicted once, so its accuracy is the clean accuracy exactly.
    seed : int
        Seeds every perturbed set (the same images for every model).
    norm : cnnlstm.data.Norm
    batch_size : int

    Returns
    -------
    dict
        ``clean_accuracy`` and ``{kind: {str(level): accuracy}}`` for each kind.
    """
    from cnnlstm.data import occlusion

    accuracy = _scorer(model, labels, norm, batch_size)

    clean = accuracy(images)
    out: dict = {"clean_accuracy": clean}
    for kind, values in levels.items():
        out[kind] = {str(v): clean if v == 0 else accuracy(occlusion.perturb(images, kind, v, seed)) for v in values}
    return out
