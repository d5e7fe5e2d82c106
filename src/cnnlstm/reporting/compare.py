"""Two groups of runs compared as the reports print them: seed interval, McNemar, bootstrap, recipe.

Both ``cnnlstm report`` and the study report call :func:`compare_groups`; the statistics themselves
live in :mod:`cnnlstm.measure.stats`. A group is a list of :class:`SeedRun` (one per seed), so callers
with other run records convert once, here the comparison logic stays in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlstm.config import RUNTIME_KEYS, config_differences
from cnnlstm.measure.stats import MARGIN, Comparison, adjust, compare, format_mean_std
from cnnlstm.reporting.page import Figure

log = logging.getLogger(__name__)

#: Config keys a matched pair may differ in: the models themselves, the seed, and where they ran.
PAIR_KEYS = frozenset({"model", "model_args", "model_file", "seed"}) | RUNTIME_KEYS


@dataclass(frozen=True)
class SeedRun:
    """One finished run, as a comparison needs it."""

    seed: int
    accuracy: float
    folder: Path
    config: dict


def recipe_differences(a: dict, b: dict) -> list[str]:
    """The training settings (epochs, optimizer, augmentation ...) two configs do not share."""
    return config_differences(a, b, PAIR_KEYS)


def _predictions(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labels, preds)`` from a run's ``predictions.npz``, or None when it has none."""
    path = folder / "predictions.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return np.asarray(npz["labels"]), np.asarray(npz["preds"])
    except (OSError, KeyError, ValueError) as err:
        log.warning("cannot read %s (%s): no test-set comparison for this run", path, err)
        return None


def compare_groups(a: str, runs_a: Sequence[SeedRun], b: str, runs_b: Sequence[SeedRun], *,
                   seed: int = 0, n_resamples: int = 2000, margin: float = MARGIN) -> Comparison:
    """Compare two models' runs: seed k paired with seed k, and the same test images per pair.

    Returns
    -------
    Comparison
        Its ``seeds`` interval over seeds, and for every seed both sides have (and whose
        ``predictions.npz`` hold the same labels) McNemar's exact test and a paired bootstrap.
    """
    by_seed_a = {r.seed: r for r in runs_a}
    by_seed_b = {r.seed: r for r in runs_b}
    predictions = {}
    for k in sorted(set(by_seed_a) & set(by_seed_b)):
        pa, pb = _predictions(by_seed_a[k].folder), _predictions(by_seed_b[k].folder)
        if pa is None or pb is None or len(pa[0]) != len(pb[0]) or not np.array_equal(pa[0], pb[0]):
            continue  # not the same test images: no paired test for this seed
        predictions[k] = (pa[0], pa[1], pb[1])
    return compare(a, b, {k: r.accuracy for k, r in by_seed_a.items()},
                   {k: r.accuracy for k, r in by_seed_b.items()}, predictions=predictions, seed=seed,
                   n_resamples=n_resamples, margin=margin)


def comparison_cells(c: Comparison) -> dict[str, str]:
    """The table cells of a comparison over seeds: the difference, its interval, n, the verdict
    against the margin, the (adjusted) p-value and the effect detectable at this n."""
    s, v = c.seeds, c.verdict
    ci = f"{100 * s.low:+.2f} to {100 * s.high:+.2f}" if s.low is not None else (
        "— (1 seed)" if s.n < 2 else "— (no spread)")
    return {"Δ (points)": f"{100 * s.diff:+.2f}", "95% CI over seeds": ci,
            "n": f"{s.n}{' paired' if s.paired else ''}",
            "verdict": c.kind if c.kind != "equivalent" else f"equivalent within ±{100 * v.margin:.2f}",
            "p" + (f" ({v.method})" if v.method else ""): "" if v.pvalue is None else f"{v.pvalue:.2g}",
            "MDE (points)": "" if v.mde is None else f"{100 * v.mde:.2f}"}


def seed_pair_rows(c: Comparison) -> list[dict[str, str]]:
    """One row per seed pair: its own difference, the discordant images, McNemar, the bootstrap."""
    return [{"A": c.a, "B": c.b, "seed": str(k), "Δ on this seed": f"{100 * t.diff:+.2f}",
             "right only by A / only by B": f"{t.only_a} / {t.only_b}", "McNemar p": f"{t.mcnemar_p:.2g}",
             "test-set 95% CI": f"{100 * t.low:+.2f} to {100 * t.high:+.2f}"}
            for k, t in c.test_sets.items()]


SEED_PAIR_NOTE = ("Per seed pair, on the same test images: McNemar's exact test on the images only one of the "
                  "two got right, and a paired bootstrap interval of the accuracy difference. These measure "
                  "test-set sampling noise for one pair of runs, not seed-to-seed variation.")


@dataclass(frozen=True)
class MatchedPair:
    """Model A against model B over their seeds, and what their recipes do not share."""

    a: str
    b: str
    comparison: Comparison
    differences: list[str]

    def claim(self) -> str:
        """The comparison's sentence, marked when the two sides were not trained alike."""
        text = self.comparison.sentence()
        if self.differences:
            text += f" — not a matched comparison ({'; '.join(self.differences)})"
        return text + "."

    def forest_row(self) -> dict:
        """The pair as :func:`cnnlstm.reporting.figures.plot_forest` draws it (points)."""
        s = self.comparison.seeds
        return {"label": f"{self.a} vs {self.b}", "diff": 100 * s.diff, "n": s.n,
                "low": None if s.low is None else 100 * s.low, "high": None if s.high is None else 100 * s.high}


def match_pairs(groups: Mapping[str, Sequence[SeedRun]], pairs: Sequence[tuple[str, str]], *,
                family: str = "", margin: float = MARGIN) -> list[MatchedPair]:
    """:func:`compare_groups` for each ``(a, b)`` whose two sides both have runs, with their recipe check.

    The one function behind every matched comparison the project prints: ``cnnlstm compare``'s
    table and the study's "What the LSTM adds". With ``family`` named, the pairs are one family of
    hypotheses and their p-values are adjusted within it (Holm, :func:`cnnlstm.measure.stats.adjust`);
    a caller that adjusts a larger family itself leaves it "".
    """
    found = [(a, b) for a, b in pairs if groups.get(a) and groups.get(b)]
    comparisons = [compare_groups(a, groups[a], b, groups[b], margin=margin) for a, b in found]
    if family:
        comparisons = adjust(comparisons, family)
    return [MatchedPair(a, b, c, recipe_differences(groups[a][0].config, groups[b][0].config))
            for (a, b), c in zip(found, comparisons)]


def adjust_pairs(pairs: Sequence[MatchedPair], family: str) -> list[MatchedPair]:
    """``pairs`` with their comparisons adjusted as one family (Holm)."""
    from dataclasses import replace

    adjusted = adjust([p.comparison for p in pairs], family)
    return [replace(p, comparison=c) for p, c in zip(pairs, adjusted)]


def fmt_pct(mean: float, std: float | None, n: int) -> str:
    """``"mean ± std"`` in percent; the mean alone for one seed (whose std is None)."""
    return format_mean_std(mean, std if n > 1 else None, scale=100, digits=2)


def forest_figure(pairs: Sequence[MatchedPair], path: Path) -> Figure:
    """The forest plot of ``pairs`` (Δ and its interval over seeds, a zero line) as a report block."""
    from cnnlstm.reporting import figures as plots

    plots.plot_forest([p.forest_row() for p in pairs], path)
    return Figure(path, "Δ test accuracy of each pair with its 95% t-interval over paired seeds; an interval "
                        "that crosses the dashed zero line claims no difference (the table gives each verdict)")
