"""``--seeds auto``: add paired seeds in batches until every primary comparison is precise enough.

The rule (:func:`cnnlstm.measure.stats.precise_enough`) looks only at the widths of the primary
comparisons' 95% intervals, never at their sign or p-values, so stopping early does not bias the
verdicts; a study states the n it reached and why it stopped. Finished seeds are never run again:
each batch is the same study with more seeds, resumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from cnnlstm.errors import ConfigError
from cnnlstm.measure.stats import MARGIN, Comparison, precise_enough

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedRule:
    """How ``--seeds auto`` grows a study: from ``start`` seeds, ``step`` at a time, at most ``max_seeds``."""

    start: int = 3
    max_seeds: int = 10
    step: int = 2
    margin: float = MARGIN

    def check(self) -> SeedRule:
        if not 2 <= self.start <= self.max_seeds:
            raise ConfigError(f"--max-seeds must be >= {max(2, self.start)} (seeds auto starts at {self.start}), "
                              f"got {self.max_seeds}")
        if self.step < 1:
            raise ConfigError(f"the seed step must be >= 1, got {self.step}")
        return self


def run_until_precise(run_at: Callable[[int], tuple[dict, list[Comparison]]], rule: SeedRule) -> dict:
    """Run the study at ``rule.start`` seeds, then ``step`` more at a time, until precise or at the cap.

    Parameters
    ----------
    run_at : callable
        ``run_at(n)`` runs (resumes) the study at seeds 0..n-1 and returns its summary and its
        primary comparisons.
    rule : SeedRule

    Returns
    -------
    dict
        The last summary, with ``seeds`` (the n reached) and ``stopped`` (why, in words).
    """
    rule.check()
    n = rule.start
    while True:
        summary, primary = run_at(n)
        widest = max(((c.seeds.high - c.seeds.low) if c.seeds.low is not None else float("inf") for c in primary),
                     default=0.0)
        if precise_enough(primary, rule.margin):
            why = (f"every primary 95% interval is at most {100 * rule.margin:.2f} points wide (widest "
                   f"{100 * widest:.2f}) at {n} seeds")
            break
        if n >= rule.max_seeds:
            why = (f"the cap of {rule.max_seeds} seeds was reached with the widest primary interval "
                   + (f"{100 * widest:.2f} points wide" if widest != float("inf") else "not yet measurable")
                   + f", wider than the {100 * rule.margin:.2f} that decides it")
            break
        log.info("seeds auto: the widest primary interval at %d seeds is %s points; adding %d seed(s)", n,
                 f"{100 * widest:.2f}" if widest != float("inf") else "not measurable", min(rule.step, rule.max_seeds - n))
        n = min(n + rule.step, rule.max_seeds)
    log.info("seeds auto: stopped at %d seeds: %s", n, why)
    return {**summary, "seeds": n, "stopped": why}
