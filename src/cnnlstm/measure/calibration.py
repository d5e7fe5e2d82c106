"""Are the predicted probabilities honest? Calibration errors, the Brier score and temperature scaling.

Confidence is the top softmax probability. The expected calibration error (ECE) sorts predictions
into ``n_bins`` equal-width confidence bins and sums ``|accuracy - mean confidence|`` over bins,
each weighted by its share of predictions; the maximum calibration error (MCE) is the largest gap
over non-empty bins (Guo et al. 2017; bins as torchmetrics ``CalibrationError`` draws them:
``[k/n, (k+1)/n)``, a confidence of exactly 1 in the last bin). The Brier score is the mean over
images of ``sum_c (p_c - 1[y = c])^2`` (Brier 1950: 0 is perfect, 2 the worst).

Temperature scaling (Guo et al. 2017) divides the logits by one scalar ``T`` fitted by minimising
the negative log-likelihood on held-out data: the validation split, never the test set. It never
changes the predicted class, only how confident the model claims to be.

Everything works on probabilities (what ``predictions.npz`` keeps): ``log(p)`` equals the logits
minus a per-image constant, and softmax ignores per-image constants, so ``softmax(log(p) / T)`` is
exactly ``softmax(logits / T)``. Probabilities that underflowed to 0 are read as ``1e-30``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import optimize, special

log = logging.getLogger(__name__)

N_BINS = 15
TINY = 1e-30  # floor of a probability before its logarithm (float32 softmax underflows to 0)
T_BOUNDS = (0.05, 20.0)  # the temperature search interval


def _check(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, probs)`` checked by :func:`cnnlstm.measure.metrics.check_predictions`."""
    from cnnlstm.measure.metrics import check_predictions

    labels, probs = check_predictions(labels, probs)
    return labels, probs


def reliability_bins(labels, probs, n_bins: int = N_BINS) -> dict:
    """Per-bin counts, accuracy and mean confidence: the numbers behind ECE, MCE and the diagram.

    Parameters
    ----------
    probs : array-like, shape (N, C)
        Class probabilities (rows sum to 1).
    labels : array-like of int, shape (N,)
    n_bins : int, default 15

    Returns
    -------
    dict
        ``edges`` (``n_bins + 1`` floats from 0 to 1), ``count`` (int per bin), ``accuracy`` and
        ``confidence`` (per bin, None for an empty bin).
    """
    labels, probs = _check(labels, probs)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.floor(conf * n_bins).astype(np.int64), 0, n_bins - 1)  # [k/n, (k+1)/n)
    count = np.bincount(which, minlength=n_bins)
    acc_sum = np.bincount(which, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    safe = np.maximum(count, 1)
    return {"edges": edges.tolist(), "count": count.astype(int).tolist(),
            "accuracy": [float(a) if n else None for a, n in zip(acc_sum / safe, count)],
            "confidence": [float(c) if n else None for c, n in zip(conf_sum / safe, count)]}


def _gaps(bins: dict) -> tuple[np.ndarray, np.ndarray]:
    count = np.asarray(bins["count"], dtype=np.float64)
    full = count > 0
    acc = np.array([a for a in bins["accuracy"] if a is not None])
    conf = np.array([c for c in bins["confidence"] if c is not None])
    return np.abs(acc - conf), count[full] / count.sum()


def expected_calibration_error(labels, probs, n_bins: int = N_BINS) -> float:
    """ECE: ``sum_bins (n_bin / N) * |accuracy_bin - confidence_bin|`` (0 = perfectly calibrated)."""
    gaps, share = _gaps(reliability_bins(labels, probs, n_bins))
    return float((gaps * share).sum())


def max_calibration_error(labels, probs, n_bins: int = N_BINS) -> float:
    """MCE: the largest ``|accuracy_bin - confidence_bin|`` over non-empty bins."""
    gaps, _ = _gaps(reliability_bins(labels, probs, n_bins))
    return float(gaps.max())


def brier_score(labels, probs) -> float:
    """Multi-class Brier score: mean over images of ``sum_c (p_c - onehot_c)^2``, in [0, 2]."""
    labels, probs = _check(labels, probs)
    diff = probs.copy()
    diff[np.arange(len(labels)), labels] -= 1.0
    return float((diff**2).sum(axis=1).mean())


def to_logits(probs) -> np.ndarray:
    """``log(p)`` (floored at 1e-30): logits up to a per-image constant, float64."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), TINY, 1.0))


def nll(labels, probs) -> float:
    """Mean negative log-likelihood of the true class (probabilities floored at 1e-30)."""
    labels, probs = _check(labels, probs)
    return float(-to_logits(probs[np.arange(len(labels)), labels]).mean())


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)``: the probabilities a temperature-scaled model gives (float64)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return special.softmax(to_logits(probs) / temperature, axis=1)


def _nll_at(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    return float(-(special.log_softmax(scaled, axis=1)[np.arange(len(labels)), labels]).mean())


def fit_temperature(labels, probs) -> float:
    """The temperature minimising the NLL of ``probs`` (validation predictions), in [0.05, 20].

    The NLL is convex in ``1/T``, so the bounded scalar search over ``log T`` (Brent's method,
    :func:`scipy.optimize.minimize_scalar`) finds the global minimum on the interval.
    """
    labels, probs = _check(labels, probs)
    logits = to_logits(probs)
    lo, hi = math.log(T_BOUNDS[0]), math.log(T_BOUNDS[1])
    res = optimize.minimize_scalar(lambda t: _nll_at(logits, labels, math.exp(t)), bounds=(lo, hi),
                                   method="bounded", options={"xatol": 1e-5})
    temperature = math.exp(res.x)
    log.debug("temperature %.4f (NLL %.4f -> %.4f)", temperature, _nll_at(logits, labels, 1.0), res.fun)
    return float(temperature)


def calibration_metrics(labels, probs, *, val_labels=None, val_probs=None, n_bins: int = N_BINS) -> dict:
    """Calibration of test predictions, before and after temperature scaling fitted on validation.

    Parameters
    ----------
    labels, probs : test labels ``(N,)`` and probabilities ``(N, C)`` (sklearn's order)
    val_labels, val_probs : optional
        Validation predictions of the same model; without them no temperature is fitted and the
        ``*_temperature`` keys are None.
    n_bins : int, default 15

    Returns
    -------
    dict
        ``ece``, ``mce``, ``brier``, ``nll``, ``calibration_bins`` (n_bins), ``temperature``
        (fitted on validation), ``ece_temperature``, ``mce_temperature``, ``brier_temperature``,
        ``nll_temperature`` (the test set after scaling) and ``n_val`` (validation images used).
    """
    out = {"ece": expected_calibration_error(labels, probs, n_bins),
           "mce": max_calibration_error(labels, probs, n_bins),
           "brier": brier_score(labels, probs), "nll": nll(labels, probs), "calibration_bins": n_bins,
           "temperature": None, "ece_temperature": None, "mce_temperature": None,
           "brier_temperature": None, "nll_temperature": None, "n_val": 0}
    if val_probs is None or val_labels is None or len(val_labels) == 0:
        return out
    t = fit_temperature(val_labels, val_probs)
    scaled = apply_temperature(probs, t)
    out.update(temperature=t, ece_temperature=expected_calibration_error(labels, scaled, n_bins),
               mce_temperature=max_calibration_error(labels, scaled, n_bins),
               brier_temperature=brier_score(labels, scaled), nll_temperature=nll(labels, scaled),
               n_val=int(len(val_labels)))
    return out
