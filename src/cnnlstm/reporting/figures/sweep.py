"""Figures of a hyper-parameter sweep: trials over time and parameter importances."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from cnnlstm.reporting.figures.canvas import _figure, _save


def plot_trials(trials: Sequence[Mapping], path) -> Path:
    """A sweep's objective per trial (complete: dots, pruned: crosses at their last value) and
    the best value so far.

    Parameters
    ----------
    trials : sequence of dict
        ``sweep.json`` trial records: ``number``, ``state`` and ``value`` (None when unknown).
    path : str or Path

    Returns
    -------
    Path
    """
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    pruned = [t for t in trials if t["state"] == "PRUNED" and t["value"] is not None]
    ax.scatter([t["number"] for t in done], [t["value"] for t in done], s=18, label="complete")
    if pruned:
        ax.scatter([t["number"] for t in pruned], [t["value"] for t in pruned], marker="x", s=18,
                   color="0.55", label="pruned (last epoch)")
    if done:
        xs, best, run = [], [], -math.inf
        for t in sorted(done, key=lambda t: t["number"]):
            run = max(run, t["value"])
            xs.append(t["number"])
            best.append(run)
        ax.step(xs, best, where="post", color="C3", label="best so far")
    else:
        ax.text(0.5, 0.5, "no complete trials yet", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="trial", ylabel="best validation accuracy", title="Sweep history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if done or pruned:
        ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def plot_importances(importances: Mapping[str, float], path) -> Path:
    """Horizontal bars of a sweep's parameter importances (a note when there are none).

    Parameters
    ----------
    importances : mapping of str to float
        Parameter -> importance, most important first (``sweep.json``'s ``importances``).
    path : str or Path

    Returns
    -------
    Path
    """
    fig = _figure(6.4, max(2.4, 0.4 * len(importances) + 1.2))
    ax = fig.add_subplot()
    if importances:
        names = list(importances)[::-1]  # most important on top
        ax.barh(names, [importances[n] for n in names], color="C0")
        ax.set(xlabel="importance (fANOVA, sums to 1)")
    else:
        ax.text(0.5, 0.5, "needs at least 2 complete trials with varying parameters", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title("Parameter importances")
    return _save(fig, path)
