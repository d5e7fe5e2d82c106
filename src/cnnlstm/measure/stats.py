"""The statistics every report uses: mean +- sample std over seeds, and comparisons of two models.

One home for them, so the run report, the study report and the summaries all agree. Intervals and
tests come from ``scipy.stats``; nothing here is a hand-rolled p-value.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of the values that are not None.

    Parameters
    ----------
    values : iterable of float or None
        None entries (a metric a run did not record) are skipped.

    Returns
    -------
    (float or None, float or None)
        ``(None, None)`` for no values; the standard deviation is None for a single value,
        since one seed says nothing about the spread.
    """
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None
    if len(vals) < 2:
        return vals[0], None
    return statistics.fmean(vals), statistics.stdev(vals)


def format_mean_std(mean: float, std: float | None, *, scale: float = 1.0, digits: int = 4) -> str:
    """``"mean ± std"`` of ``mean * scale``; the mean alone when ``std`` is None (one seed).

    The one formatter of a spread over seeds: the run report and the study report both print
    through it (e.g. ``scale=100, digits=2`` for percentages).
    """
    text = f"{mean * scale:.{digits}f}"
    return text if std is None else f"{text} \u00b1 {std * scale:.{digits}f}"


# --------------------------------------------------------------------------- comparing two models
#
# Every figure below comes from scipy.stats (t-interval, binomial test, bootstrap): the project
# computes no p-value or interval by hand.

CONFIDENCE = 0.95


@dataclass(frozen=True)
class SeedInterval:
    """Mean difference of two models' scores over seeds, with its t-interval.

    Attributes
    ----------
    n : int
        Seeds that entered: pairs when ``paired``, else the smaller group's size.
    paired : bool
        Seed k of A was matched with seed k of B (a paired t-interval on the differences);
        otherwise Welch's interval on two independent groups.
    diff : float
        mean(A) - mean(B), in the scores' unit (accuracy as a fraction).
    low, high : float or None
        The two-sided ``confidence`` interval of ``diff``; None when n < 2 (no spread to measure).
    pvalue : float or None
        The t-test's two-sided p-value; None when n < 2.
    """

    n: int
    paired: bool
    diff: float
    low: float | None
    high: float | None
    pvalue: float | None
    confidence: float = CONFIDENCE

    @property
    def excludes_zero(self) -> bool:
        """True when the interval exists and lies wholly above or below 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)


@contextmanager
def _quiet_precision():
    """Silence scipy's "precision loss ... nearly identical" warning: seed scores that agree to a few
    decimals are the normal case of a small test set, and the interval computed is still right."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss occurred in moment calculation",
                                category=RuntimeWarning)
        yield


def seed_interval(a: dict[int, float], b: dict[int, float], confidence: float = CONFIDENCE) -> SeedInterval:
    """Compare two models' per-seed scores (``{seed: score}``).

    Seeds both sides have are paired (``scipy.stats.ttest_rel``); with fewer than two common
    seeds but two or more on each side, the groups are compared as independent samples
    (Welch, ``scipy.stats.ttest_ind(equal_var=False)``). With one score on a side there is no
    interval, and the difference is taken on the shared seed when there is one.
    """
    from scipy import stats

    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        xa, xb = np.array([a[s] for s in common]), np.array([b[s] for s in common])
        diff = float(np.mean(xa - xb))
        if np.ptp(xa - xb) == 0:  # identical differences: a zero-width interval, not NaN
            return SeedInterval(len(common), True, diff, diff, diff, 0.0 if diff else 1.0, confidence)
        with _quiet_precision():
            res = stats.ttest_rel(xa, xb)
        ci = res.confidence_interval(confidence)
        return SeedInterval(len(common), True, diff, float(ci.low), float(ci.high), float(res.pvalue), confidence)
    xa, xb = np.array(list(a.values()), float), np.array(list(b.values()), float)
    if len(common) == 1 and min(len(xa), len(xb)) == 1:
        # a single-seed model against one with more seeds: the matched comparison is the shared seed
        # (the same split and initialisation stream), not the other side's mean over seeds it lacks
        seed = common[0]
        return SeedInterval(1, True, float(a[seed] - b[seed]), None, None, None, confidence)
    diff = float(xa.mean() - xb.mean()) if len(xa) and len(xb) else float("nan")
    if len(xa) >= 2 and len(xb) >= 2 and (np.ptp(xa) or np.ptp(xb)):
        with _quiet_precision():
            res = stats.ttest_ind(xa, xb, equal_var=False)
        ci = res.confidence_interval(confidence)
        return SeedInterval(min(len(xa), len(xb)), False, diff, float(ci.low), float(ci.high),
                            float(res.pvalue), confidence)
    return SeedInterval(min(len(xa), len(xb)), False, diff, None, None, None, confidence)


def one_sample_interval(values: Iterable[float], reference: float,
                        confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """t-interval of ``mean(values) - reference`` (a measured mean against a published number).

    None with fewer than two values or no spread (``scipy.stats.ttest_1samp``).
    """
    from scipy import stats

    x = np.asarray(list(values), float)
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    ci = stats.ttest_1samp(x, reference).confidence_interval(confidence)
    return float(ci.low - reference), float(ci.high - reference)


@dataclass(frozen=True)
class PairedTest:
    """Two runs scored on the same test images (one seed pair).

    Attributes
    ----------
    n_images : int
    diff : float
        accuracy(A) - accuracy(B).
    only_a, only_b : int
        Discordant images: right by A only, right by B only.
    mcnemar_p : float
        McNemar's exact test: a two-sided binomial test of ``only_a`` out of ``only_a + only_b``
        at 1/2 (1.0 when no image is discordant).
    low, high : float
        Paired bootstrap ``confidence`` interval of ``diff`` over test images.
    """

    n_images: int
    diff: float
    only_a: int
    only_b: int
    mcnemar_p: float
    low: float
    high: float


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """McNemar's exact test on two boolean vectors of per-image correctness.

    Returns ``(only_a, only_b, p)`` with ``p`` from ``scipy.stats.binomtest``.
    """
    from scipy import stats

    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, *, seed: int = 0, n_resamples: int = 2000,
                     confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(A) - accuracy(B), resampling test images.

    Resampling the per-image differences ``correct_a - correct_b`` keeps each image's pair
    together, which is what makes the bootstrap paired (``scipy.stats.bootstrap``).
    """
    from scipy import stats

    d = np.asarray(correct_a, np.int8) - np.asarray(correct_b, np.int8)
    if np.ptp(d) == 0:  # every image scored alike: no sampling spread
        return float(d.mean()), float(d.mean())
    res = stats.bootstrap((d,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", vectorized=True, batch=200, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_test(labels: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray, *, seed: int = 0,
                        n_resamples: int = 2000) -> PairedTest:
    """McNemar and the paired bootstrap for two runs' predictions of the same labelled images."""
    labels = np.asarray(labels)
    if not (len(labels) == len(preds_a) == len(preds_b)):
        raise ValueError("predictions of different test sets cannot be paired")
    ca, cb = np.asarray(preds_a) == labels, np.asarray(preds_b) == labels
    only_a, only_b, p = mcnemar_exact(ca, cb)
    low, high = paired_bootstrap(ca, cb, seed=seed, n_resamples=n_resamples)
    return PairedTest(len(labels), float(ca.mean() - cb.mean()), only_a, only_b, p, low, high)


@dataclass(frozen=True)
class Comparison:
    """Model A against model B: the seed interval and the per-seed test-set tests."""

    a: str
    b: str
    seeds: SeedInterval
    test_sets: dict[int, PairedTest] = field(default_factory=dict)  # seed -> paired test

    def sentence(self, digits: int = 2) -> str:
        """The claim the data allow, in one sentence (points = percentage points of accuracy).

        "A beat B by x points (95% CI lo to hi, n seeds)" only when the seed interval excludes 0;
        "no measurable difference" when it does not; a single seed is labelled as one and never
        called a win, since one seed says nothing about seed-to-seed variation.
        """
        s = self.seeds
        pts = 100 * s.diff
        conf = f"{100 * s.confidence:.0f}%"
        if s.low is None:
            if self.test_sets:  # the seed both sides have: its own difference and test-set tests
                k, t = next(iter(self.test_sets.items()))
                return (f"single seed: {self.a} scored {100 * t.diff:+.{digits}f} points against {self.b} "
                        f"(seed {k}; test-set {conf} CI {100 * t.low:+.{digits}f} to {100 * t.high:+.{digits}f}, "
                        f"McNemar p = {t.mcnemar_p:.2g}); one seed cannot show that either model is better")
            return (f"single seed: {self.a} scored {pts:+.{digits}f} points against {self.b}; "
                    f"one seed cannot show that either model is better")
        if s.excludes_zero:  # worded from the winner's side: the interval of winner - loser
            winner, loser, low, high = ((self.a, self.b, s.low, s.high) if s.diff > 0
                                        else (self.b, self.a, -s.high, -s.low))
            return (f"{winner} beat {loser} by {abs(pts):.{digits}f} points ({conf} CI {100 * low:.{digits}f} "
                    f"to {100 * high:.{digits}f}, {s.n} seeds)")
        return (f"no measurable difference between {self.a} and {self.b} at {s.n} seeds "
                f"({pts:+.{digits}f} points, {conf} CI {100 * s.low:+.{digits}f} to {100 * s.high:+.{digits}f})")


def compare(a: str, b: str, scores_a: dict[int, float], scores_b: dict[int, float], *,
            predictions: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
            seed: int = 0, n_resamples: int = 2000) -> Comparison:
    """Compare model ``a`` with model ``b``.

    Parameters
    ----------
    a, b : str
        Names for the sentence.
    scores_a, scores_b : dict
        ``{seed: test accuracy}`` of each model's runs.
    predictions : dict, optional
        ``{seed: (labels, preds_a, preds_b)}`` for the seeds both sides have, from their
        ``predictions.npz``: adds McNemar and the paired bootstrap for each.
    seed : int
        Seeds the bootstrap.
    """
    tests = {}
    for k, (labels, pa, pb) in sorted((predictions or {}).items()):
        tests[k] = paired_test(labels, pa, pb, seed=seed + k, n_resamples=n_resamples)
    return Comparison(a, b, seed_interval(scores_a, scores_b), tests)
