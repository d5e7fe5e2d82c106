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
    interval, and the difference is taken on the shared seed when there is one. Paired differences
    that are all equal have no spread: no interval and no p-value (a zero-width interval would read
    as certainty, on a small test set where it is chance).
    """
    from scipy import stats

    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        xa, xb = np.array([a[s] for s in common]), np.array([b[s] for s in common])
        diff = float(np.mean(xa - xb))
        if np.ptp(xa - xb) == 0:  # identical differences: no spread to measure, so no interval and no claim
            return SeedInterval(len(common), True, diff, None, None, None, confidence)
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


#: The default smallest effect of interest, in accuracy (0.5 points). On Fashion-MNIST's 10,000 test
#: images one model's accuracy near 90% has a binomial standard error of 0.3 points, so a difference
#: under half a point is within what resampling the test set alone would move (docs/statistics.md).
MARGIN = 0.005
#: The power at which the minimum detectable effect is stated.
POWER = 0.8

VERDICTS = ("A better", "B better", "equivalent", "inconclusive", "no interval")


@dataclass(frozen=True)
class Verdict:
    """One of four verdicts on A - B against a margin ``m``, or none when there is no interval.

    Attributes
    ----------
    margin : float
        The smallest effect of interest, in the scores' unit (0.005 = 0.5 points).
    pvalue : float or None
        The two-sided t-test's p-value, adjusted within ``family`` when one is named (Holm).
    tost_p : float or None
        The equivalence test's p-value (TOST against ``±margin``), adjusted likewise.
    mde : float or None
        The difference a two-sided test at this n detects with 80% power, from the observed spread.
    family : str
        The family of comparisons the p-values were adjusted in ("" = not adjusted).
    method : str
        The adjustment (``"holm"``), "" when none.
    """

    margin: float
    pvalue: float | None
    tost_p: float | None
    mde: float | None
    family: str = ""
    method: str = ""
    alpha: float = 1 - CONFIDENCE

    def kind(self, diff: float) -> str:
        """``"A better"``, ``"B better"``, ``"equivalent"``, ``"inconclusive"`` or ``"no interval"``.

        A difference is claimed when its (adjusted) t-test rejects 0; equivalence when the (adjusted)
        TOST rejects a difference of ``margin`` or more, i.e. the 90% interval lies inside ``±margin``;
        otherwise the data are inconclusive at this n.
        """
        if self.pvalue is None:
            return "no interval"
        if self.pvalue < self.alpha:
            return "A better" if diff > 0 else "B better"
        return "equivalent" if self.tost_p is not None and self.tost_p < self.alpha else "inconclusive"


def equivalence_p(a: np.ndarray, b: np.ndarray, margin: float, paired: bool) -> float:
    """TOST p-value of ``|mean(a - b)| >= margin`` (``statsmodels``' ``ttost_paired`` / ``ttost_ind``)."""
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    with _quiet_precision():
        if paired:
            return float(ttost_paired(a, b, -margin, margin)[0])
        return float(ttost_ind(a, b, -margin, margin, usevar="unequal")[0])


def detectable_effect(a: np.ndarray, b: np.ndarray, paired: bool, alpha: float = 1 - CONFIDENCE,
                      power: float = POWER) -> float | None:
    """The difference a two-sided t-test at this n detects with ``power``, in the scores' unit.

    Cohen's d solved by ``statsmodels.stats.power`` (``TTestPower`` on the paired differences,
    ``TTestIndPower`` for two groups), times the observed standard deviation. None without spread.
    """
    from statsmodels.stats.power import TTestIndPower, TTestPower

    if paired:
        sd = float(np.std(a - b, ddof=1))
        d = TTestPower().solve_power(nobs=len(a), alpha=alpha, power=power, alternative="two-sided")
    else:
        sd = float(np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2))
        d = TTestIndPower().solve_power(nobs1=len(a), ratio=len(b) / len(a), alpha=alpha, power=power)
    return float(d * sd) if sd > 0 else None


@dataclass(frozen=True)
class Comparison:
    """Model A against model B: the seed interval, its verdict, and the per-seed test-set tests."""

    a: str
    b: str
    seeds: SeedInterval
    test_sets: dict[int, PairedTest] = field(default_factory=dict)  # seed -> paired test
    verdict: Verdict = field(default_factory=lambda: Verdict(MARGIN, None, None, None))

    @property
    def kind(self) -> str:
        """The verdict: ``"A better"``, ``"B better"``, ``"equivalent"``, ``"inconclusive"``, ``"no interval"``."""
        return self.verdict.kind(self.seeds.diff)

    def sentence(self, digits: int = 2) -> str:
        """The claim the data allow, in one sentence (points = percentage points of accuracy).

        One of: "A beat B by x points (95% CI, n seeds, p, family)"; "A and B are equivalent within
        ±m points"; "inconclusive at n seeds", saying how large a difference the interval still
        allows either way and the effect detectable at this n; or, with no interval (one seed, or
        paired differences without spread), the difference and that it shows nothing.
        """
        s, v = self.seeds, self.verdict
        pts, m = 100 * s.diff, 100 * v.margin
        conf = f"{100 * s.confidence:.0f}%"
        kind = self.kind
        if kind == "no interval":
            return self._no_interval_sentence(digits)
        adjusted = f", {v.method.capitalize()}-adjusted in '{v.family}'" if v.method else ""
        mde = f"; detectable at 80% power: {100 * v.mde:.{digits}f}" if v.mde is not None else ""
        if kind in ("A better", "B better"):  # worded from the winner's side: the interval of winner - loser
            winner, loser, low, high = ((self.a, self.b, s.low, s.high) if s.diff > 0
                                        else (self.b, self.a, -s.high, -s.low))
            small = f"; smaller than the margin ±{m:.{digits}f}" if v.tost_p is not None and v.tost_p < v.alpha else ""
            return (f"{winner} beat {loser} by {abs(pts):.{digits}f} points ({conf} CI {100 * low:.{digits}f} "
                    f"to {100 * high:.{digits}f}, {s.n} seeds, p = {v.pvalue:.2g}{adjusted}{small})")
        ci = f"{conf} CI {100 * s.low:+.{digits}f} to {100 * s.high:+.{digits}f}"
        if kind == "equivalent":
            return (f"{self.a} and {self.b} are equivalent within ±{m:.{digits}f} points at {s.n} seeds "
                    f"({pts:+.{digits}f} points, {ci}; TOST p = {v.tost_p:.2g}{adjusted})")
        return (f"inconclusive at {s.n} seeds: {self.a} - {self.b} = {pts:+.{digits}f} points ({ci}), which "
                f"allows {self.a} up to {100 * s.high:+.{digits}f} and {self.b} up to {-100 * s.low:+.{digits}f} "
                f"points; neither a difference nor equivalence within ±{m:.{digits}f}{mde} points{adjusted}")

    def _no_interval_sentence(self, digits: int) -> str:
        s = self.seeds
        conf = f"{100 * s.confidence:.0f}%"
        if s.n >= 2:
            return (f"{self.a} scored {100 * s.diff:+.{digits}f} points against {self.b} on each of {s.n} seeds "
                    f"alike: no spread, so no interval and no claim")
        if self.test_sets:  # the seed both sides have: its own difference and test-set tests
            k, t = next(iter(self.test_sets.items()))
            return (f"single seed: {self.a} scored {100 * t.diff:+.{digits}f} points against {self.b} "
                    f"(seed {k}; test-set {conf} CI {100 * t.low:+.{digits}f} to {100 * t.high:+.{digits}f}, "
                    f"McNemar p = {t.mcnemar_p:.2g}); one seed cannot show that either model is better")
        return (f"single seed: {self.a} scored {100 * s.diff:+.{digits}f} points against {self.b}; "
                f"one seed cannot show that either model is better")

    def row(self, family: str = "") -> dict:
        """The comparison as one row of ``comparisons.csv`` (differences in accuracy points)."""
        s, v = self.seeds, self.verdict
        pts = (lambda x: None if x is None else round(100 * x, 6))
        return {"family": family or v.family, "a": self.a, "b": self.b, "n": s.n, "diff": pts(s.diff),
                "low": pts(s.low), "high": pts(s.high), "p": s.pvalue, "p_adjusted": v.pvalue,
                "tost_p": v.tost_p, "margin": pts(v.margin), "verdict": self.kind, "mde": pts(v.mde)}


def verdict_of(a: dict[int, float], b: dict[int, float], interval: SeedInterval, *,
               margin: float = MARGIN) -> Verdict:
    """The unadjusted verdict of ``a`` against ``b`` (``{seed: score}``) whose interval is ``interval``."""
    if interval.pvalue is None:
        return Verdict(margin, None, None, None)
    if interval.paired:
        common = sorted(set(a) & set(b))
        xa, xb = np.array([a[k] for k in common]), np.array([b[k] for k in common])
    else:
        xa, xb = np.array(list(a.values()), float), np.array(list(b.values()), float)
    return Verdict(margin, interval.pvalue, equivalence_p(xa, xb, margin, interval.paired),
                   detectable_effect(xa, xb, interval.paired))


def adjust(comparisons: list[Comparison], family: str, method: str = "holm") -> list[Comparison]:
    """The comparisons of one named family with their p-values adjusted within it (``multipletests``).

    Both the difference tests and the equivalence tests are adjusted, each over the comparisons that
    have one; a comparison without an interval stays as it is.
    """
    from dataclasses import replace

    from statsmodels.stats.multitest import multipletests

    tested = [i for i, c in enumerate(comparisons) if c.verdict.pvalue is not None]
    out = list(comparisons)
    if not tested:
        return out
    p = multipletests([comparisons[i].seeds.pvalue for i in tested], method=method)[1]
    tost = multipletests([comparisons[i].verdict.tost_p for i in tested], method=method)[1]
    for i, pa, ta in zip(tested, p, tost):
        c = comparisons[i]
        out[i] = replace(c, verdict=replace(c.verdict, pvalue=float(pa), tost_p=float(ta), family=family,
                                            method=method))
    return out


def compare(a: str, b: str, scores_a: dict[int, float], scores_b: dict[int, float], *,
            predictions: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
            seed: int = 0, n_resamples: int = 2000, margin: float = MARGIN) -> Comparison:
    """Compare model ``a`` with model ``b``: interval over seeds, verdict against ``margin``.

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
    margin : float
        The smallest effect of interest (accuracy as a fraction; 0.005 = 0.5 points).

    Returns
    -------
    Comparison
        Unadjusted; :func:`adjust` adjusts a family of them.
    """
    tests = {}
    for k, (labels, pa, pb) in sorted((predictions or {}).items()):
        tests[k] = paired_test(labels, pa, pb, seed=seed + k, n_resamples=n_resamples)
    interval = seed_interval(scores_a, scores_b)
    return Comparison(a, b, interval, tests, verdict_of(scores_a, scores_b, interval, margin=margin))


def precise_enough(comparisons: Iterable[Comparison], margin: float = MARGIN) -> bool:
    """True when every comparison's 95% interval is at most ``margin`` wide (half-width <= m/2).

    Such an interval decides its comparison: it excludes 0 or lies inside ±m. The rule reads only
    the interval's width, never its sign or a p-value, so stopping on it does not bias the verdict
    (docs/statistics.md). A comparison without an interval (one seed, or no spread yet) is not precise.
    """
    return all(c.seeds.low is not None and c.seeds.high - c.seeds.low <= margin for c in comparisons)
