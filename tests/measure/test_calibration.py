"""Calibration: ECE/MCE against torchmetrics, the Brier score by hand, temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from cnnlstm.measure import calibration as cal


def calibrated_predictor(n: int, n_classes: int = 10, seed: int = 0):
    """Predictions whose top probability c is right with probability exactly c."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.2, 1.0, size=n)
    pred = rng.integers(0, n_classes, size=n)
    probs = np.repeat(((1 - conf) / (n_classes - 1))[:, None], n_classes, axis=1)
    probs[np.arange(n), pred] = conf
    right = rng.random(n) < conf
    other = (pred + rng.integers(1, n_classes, size=n)) % n_classes
    return probs, np.where(right, pred, other)


def test_ece_of_a_perfectly_calibrated_predictor_is_about_zero():
    probs, labels = calibrated_predictor(200_000)
    assert cal.expected_calibration_error(labels, probs) < 0.005
    assert cal.max_calibration_error(labels, probs) < 0.02


def test_ece_of_an_overconfident_predictor_is_its_gap():
    probs, labels = calibrated_predictor(50_000)
    # claim 0.99 on every image: accuracy is about 0.6, so ECE is about 0.39
    sharp = np.full_like(probs, 0.01 / 9)
    sharp[np.arange(len(probs)), probs.argmax(1)] = 0.99
    acc = (sharp.argmax(1) == labels).mean()
    assert cal.expected_calibration_error(labels, sharp) == pytest.approx(0.99 - acc, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_ece_and_mce_match_torchmetrics(seed):
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.classification")
    rng = np.random.default_rng(seed)
    probs = special.softmax(rng.normal(scale=3.0, size=(5000, 10)), axis=1)
    labels = rng.integers(0, 10, size=5000)
    labels[:3000] = probs[:3000].argmax(1)  # some signal
    for norm, ours in (("l1", cal.expected_calibration_error), ("max", cal.max_calibration_error)):
        metric = tm.MulticlassCalibrationError(num_classes=10, n_bins=15, norm=norm)
        theirs = float(metric(torch.as_tensor(probs, dtype=torch.float64), torch.as_tensor(labels)))
        assert ours(labels, probs) == pytest.approx(theirs, abs=1e-6), norm


def test_brier_score_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1])
    # (0.3^2 + 0.2^2 + 0.1^2) = 0.14; (0.1^2 + 0.9^2 + 0.8^2) = 1.46 -> mean 0.8
    assert cal.brier_score(labels, probs) == pytest.approx(0.8)


def test_reliability_bins_put_confidence_one_in_the_last_bin():
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.6, 0.4]])
    bins = cal.reliability_bins(np.array([0, 1, 0]), probs, n_bins=2)
    assert bins["count"] == [0, 3]
    assert bins["accuracy"][0] is None and bins["accuracy"][1] == pytest.approx(2 / 3)


def test_temperature_scaling_lowers_the_nll_on_its_fitting_data():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(4000, 10))
    labels = np.array([rng.choice(10, p=p) for p in special.softmax(logits, axis=1)])
    overconfident = special.softmax(3.0 * logits, axis=1)  # the true temperature is 3
    t = cal.fit_temperature(labels, overconfident)
    assert t == pytest.approx(3.0, rel=0.1)
    scaled = cal.apply_temperature(overconfident, t)
    assert cal.nll(labels, scaled) < cal.nll(labels, overconfident)
    assert (scaled.argmax(1) == overconfident.argmax(1)).all()  # never changes a prediction
    assert cal.nll(labels, scaled) <= min(cal.nll(labels, cal.apply_temperature(overconfident, s))
                                          for s in (2.5, 2.9, 3.1, 3.5)) + 1e-9


def test_calibration_metrics_keys_with_and_without_validation():
    probs, labels = calibrated_predictor(2000)
    plain = cal.calibration_metrics(labels, probs)
    assert plain["temperature"] is None and plain["ece_temperature"] is None and plain["n_val"] == 0
    full = cal.calibration_metrics(labels, probs, val_labels=labels, val_probs=probs)
    assert {"ece", "mce", "brier", "nll", "temperature", "ece_temperature", "mce_temperature",
            "brier_temperature", "nll_temperature"} <= set(full)
    assert full["temperature"] == pytest.approx(1.0, abs=0.15)  # already calibrated
    assert full["n_val"] == 2000


def test_bad_inputs():
    with pytest.raises(ValueError):
        cal.expected_calibration_error(np.array([0, 1]), np.ones((3, 2)) / 2)
    with pytest.raises(ValueError):
        cal.apply_temperature(np.ones((1, 2)) / 2, 0.0)
