"""Comparisons of two models: seed t-intervals, McNemar's exact test, the paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from cnnlstm.measure.stats import (
    MARGIN,
    adjust,
    compare,
    mcnemar_exact,
    mean_std,
    paired_bootstrap,
    paired_test,
    seed_interval,
)


def test_mean_std_semantics():
    assert mean_std([]) == (None, None)
    assert mean_std([0.5]) == (0.5, None)
    m, s = mean_std([0.1, 0.2, None, 0.3])
    assert m == pytest.approx(0.2) and s == pytest.approx(0.1)


def test_paired_seed_interval_is_scipys_t_interval():
    a = {0: 0.921, 1: 0.925, 2: 0.918}
    b = {0: 0.901, 1: 0.910, 2: 0.899}
    got = seed_interval(a, b)
    d = np.array([a[k] - b[k] for k in a])
    half = sps.t.ppf(0.975, df=2) * d.std(ddof=1) / math.sqrt(3)  # the textbook interval, by hand
    assert got.paired and got.n == 3
    assert got.diff == pytest.approx(d.mean())
    assert (got.low, got.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert got.excludes_zero


def test_unpaired_seeds_fall_back_to_welch():
    got = seed_interval({0: 0.90, 1: 0.91}, {5: 0.80, 6: 0.82, 7: 0.81})
    ref = sps.ttest_ind([0.90, 0.91], [0.80, 0.82, 0.81], equal_var=False).confidence_interval(0.95)
    assert not got.paired and (got.low, got.high) == pytest.approx((ref.low, ref.high))


def test_a_single_seed_is_compared_on_its_own_seed_not_against_the_other_mean():
    got = seed_interval({0: 0.8744}, {0: 0.8720, 1: 0.8610, 2: 0.8710})
    assert got.n == 1 and got.paired and got.low is None
    assert got.diff == pytest.approx(0.0024)  # seed 0 against seed 0, not 0.8744 - mean(b)
    assert "single seed" in compare("parallel_cnn_lstm", "model1", {0: 0.8744}, {0: 0.872, 1: 0.861}).sentence()


def test_overlapping_models_make_no_beat_sentence():
    a = {0: 0.920, 1: 0.911, 2: 0.925}
    b = {0: 0.918, 1: 0.915, 2: 0.921}
    c = compare("cnn_lstm", "cnn_twin", a, b)
    text = c.sentence()
    assert c.kind == "inconclusive" and "beat" not in text and text.startswith("inconclusive at 3 seeds")
    # it says how large a difference the interval still allows, each way, and what this n could detect
    assert f"allows cnn_lstm up to {100 * c.seeds.high:+.2f}" in text and f"cnn_twin up to {-100 * c.seeds.low:+.2f}" in text
    assert f"detectable at 80% power: {100 * c.verdict.mde:.2f} points" in text


def _scores(diffs, base=0.9):
    """Per-seed scores of A and B whose paired differences are ``diffs`` (accuracy fractions)."""
    b = {k: base + 0.001 * (k % 3) for k in range(len(diffs))}
    return {k: b[k] + d for k, d in enumerate(diffs)}, b


#: Synthetic paired differences (fractions) with known verdicts at the default margin of 0.5 points.
KNOWN = {
    "A better": [0.012, 0.010, 0.014, 0.011, 0.013],        # +1.2 points, tight
    "B better": [-0.012, -0.010, -0.014, -0.011, -0.013],
    "equivalent": [0.0005, -0.0004, 0.0002, -0.0001, 0.0003, -0.0002, 0.0001, 0.0],  # ±0.05 points
    "inconclusive": [0.012, -0.010, 0.006, -0.011, 0.002],  # wide, crossing 0 and reaching past ±0.5
}


@pytest.mark.parametrize("expected", sorted(KNOWN))
def test_each_verdict_appears_where_it_should_and_agrees_with_statsmodels(expected):
    from statsmodels.stats.weightstats import ttost_paired

    a, b = _scores(KNOWN[expected])
    c = compare("A", "B", a, b)
    assert c.kind == expected
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    p_t = sps.ttest_rel(xa, xb).pvalue
    p_tost = ttost_paired(xa, xb, -MARGIN, MARGIN)[0]
    assert c.verdict.pvalue == pytest.approx(p_t) and c.verdict.tost_p == pytest.approx(p_tost)
    decided = ("A better" if xa.mean() > xb.mean() else "B better") if p_t < 0.05 else (
        "equivalent" if p_tost < 0.05 else "inconclusive")
    assert c.kind == decided
    # the equivalence verdict is the 90% interval inside ±m
    if expected == "equivalent":
        ci90 = sps.ttest_rel(xa, xb).confidence_interval(0.90)
        assert -MARGIN < ci90.low and ci90.high < MARGIN
        assert c.sentence().startswith("A and B are equivalent within ±0.50 points at 8 seeds")


def test_the_detectable_effect_is_statsmodels_power_solution_times_the_spread():
    from statsmodels.stats.power import TTestPower

    a, b = _scores(KNOWN["inconclusive"])
    c = compare("A", "B", a, b)
    d = np.array(KNOWN["inconclusive"])
    want = TTestPower().solve_power(nobs=5, alpha=0.05, power=0.8) * d.std(ddof=1)
    assert c.verdict.mde == pytest.approx(want, rel=1e-6)
    # a test at that effect size, n and alpha has 80% power: the statsmodels power function agrees
    assert TTestPower().power(effect_size=want / d.std(ddof=1), nobs=5, alpha=0.05) == pytest.approx(0.8, abs=1e-6)


def test_holm_within_a_family_equals_multipletests_and_can_take_a_claim_away():
    from statsmodels.stats.multitest import multipletests

    family = [compare(f"A{i}", "B", *_scores(d)) for i, d in enumerate(
        ([0.004, 0.006, 0.005, 0.003, 0.007], [0.01, 0.0, 0.008, 0.006, 0.004], [0.002, -0.002, 0.001, 0.0, 0.003]))]
    raw = [c.seeds.pvalue for c in family]
    adjusted = adjust(family, "toy")
    assert [c.verdict.pvalue for c in adjusted] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert [c.verdict.tost_p for c in adjusted] == pytest.approx(
        list(multipletests([c.verdict.tost_p for c in family], method="holm")[1]))
    assert all(c.verdict.family == "toy" and c.verdict.method == "holm" for c in adjusted)
    # a p-value under 0.05 alone that does not survive the family's correction is no claim
    lone = [i for i, c in enumerate(family) if c.kind == "A better" and adjusted[i].kind != "A better"]
    assert lone, [(c.seeds.pvalue, a.verdict.pvalue) for c, a in zip(family, adjusted)]
    assert "Holm-adjusted in 'toy'" in adjusted[lone[0]].sentence()


def test_identical_paired_differences_give_no_interval_and_no_claim():
    a, b = _scores([0.01, 0.01, 0.01])
    c = compare("A", "B", a, b)
    assert c.seeds.low is None and c.seeds.pvalue is None and c.kind == "no interval"
    text = c.sentence()
    assert "beat" not in text and "no interval and no claim" in text
    assert adjust([c], "f")[0] == c


def test_comparison_rows_recompute_from_the_per_seed_numbers():
    a, b = _scores(KNOWN["inconclusive"])
    row = compare("A", "B", a, b).row("pairs")
    d = 100 * (np.array(list(a.values())) - np.array(list(b.values())))
    ci = sps.ttest_rel(d, np.zeros_like(d)).confidence_interval(0.95)
    assert row["n"] == 5 and row["diff"] == pytest.approx(d.mean()) and row["margin"] == 0.5
    assert (row["low"], row["high"]) == pytest.approx((ci.low, ci.high))
    assert row["verdict"] == "inconclusive" and row["family"] == "pairs"


def test_separated_models_make_a_beat_sentence_with_the_interval():
    a = {0: 0.921, 1: 0.925, 2: 0.918}
    b = {0: 0.901, 1: 0.910, 2: 0.899}
    c = compare("model1_lstm", "model1", a, b)
    text = c.sentence()
    assert text.startswith("model1_lstm beat model1 by 1.80 points (95% CI")
    assert f"{100 * c.seeds.low:.2f} to {100 * c.seeds.high:.2f}, 3 seeds" in text
    # the loser first gives the same claim, interval included, from the winner's side
    assert compare("model1", "model1_lstm", b, a).sentence() == text


def test_single_seed_is_labelled_and_never_a_win():
    text = compare("a", "b", {0: 0.95}, {0: 0.80}).sentence()
    assert text.startswith("single seed:") and "beat" not in text


def test_mcnemar_on_crafted_predictions():
    ca = np.array([1] * 50 + [1] * 8 + [0] * 2 + [0] * 40, bool)  # 8 right only by A, 2 only by B
    cb = np.array([1] * 50 + [0] * 8 + [1] * 2 + [0] * 40, bool)
    only_a, only_b, p = mcnemar_exact(ca, cb)
    assert (only_a, only_b) == (8, 2)
    # exact two-sided binomial: 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * 56 / 1024
    assert p == pytest.approx(2 * 56 / 1024)
    assert mcnemar_exact(ca, ca)[2] == 1.0


def test_paired_bootstrap_brackets_the_difference_and_is_seeded():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 4000)
    pa = np.where(rng.random(4000) < 0.93, y, (y + 1) % 10)
    pb = np.where(rng.random(4000) < 0.90, y, (y + 1) % 10)
    t = paired_test(y, pa, pb, seed=3)
    assert t.low < t.diff < t.high and t.low > 0
    # paired: a standard error from the per-image differences, as a hand check of the width
    d = (pa == y).astype(float) - (pb == y)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert (t.high - t.low) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert paired_bootstrap(pa == y, pb == y, seed=3) == (t.low, t.high)


def test_predictions_of_different_test_sets_are_refused():
    with pytest.raises(ValueError):
        paired_test(np.zeros(3), np.zeros(3), np.zeros(4))


def test_single_seed_sentence_uses_the_paired_seeds_own_difference():
    y = np.arange(1000) % 10
    pa = np.where(np.arange(1000) < 900, y, (y + 1) % 10)  # 90.0%
    pb = np.where(np.arange(1000) < 880, y, (y + 1) % 10)  # 88.0%
    # B has two more seeds; A only seed 0: the sentence speaks of the seed-0 pair, not the means
    text = compare("a", "b", {0: 0.90}, {0: 0.88, 1: 0.80, 2: 0.80}, predictions={0: (y, pa, pb)}).sentence()
    assert text.startswith("single seed: a scored +2.00 points against b (seed 0; test-set 95% CI")
