"""The regime study's results: each cell's matched comparison and occlusion curves, the families
they are adjusted in, the pooled primary endpoints, and the summary that claims only what survives."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from cnnlstm.config import config_to_dict
from cnnlstm.data import Dataset
from cnnlstm.fileio import read_json
from cnnlstm.measure.stats import Comparison, adjust, compare, mean_std
from cnnlstm.reporting.compare import MatchedPair, SeedRun, comparison_cells, match_pairs
from cnnlstm.reporting.records import trained_size
from cnnlstm.study.engine.jobs import Job, job_done, seed_runs
from cnnlstm.study.regimes.grid import ALL, OCCLUSION_FILE, Cell, RegimeGrid, grid_cells

CELL_WORDS = {"A better": "hybrid better", "B better": "control better", "equivalent": "equivalent",
              "inconclusive": "inconclusive", "no interval": "no interval"}


@dataclass
class RegimeResult:
    """One cell's matched comparison, and its occlusion curves where it has them."""

    cell: Cell
    pair: MatchedPair | None  # None: a side has no finished run
    params: tuple[int, int] = (0, 0)
    mflops: tuple[float, float] = (0.0, 0.0)
    epochs: int = 0
    accuracy: tuple = ((None, None), (None, None))  # (mean, sample std) of the hybrid, of the control
    best_last: tuple[int, int] = (0, 0)  # runs of the cell whose best validation epoch was the last, of how many
    scores: tuple[dict, dict] = ({}, {})  # {seed: test accuracy} of the hybrid, of the control
    # kind -> level -> {"hybrid": (mean, std), "control": ..., "comparison": Comparison, "n": int}
    occlusion: dict = field(default_factory=dict)

    def verdict(self) -> str:
        """The cell's verdict from the hybrid's side (:data:`CELL_WORDS`), or "not run"."""
        return "not run" if self.pair is None else CELL_WORDS[self.pair.comparison.kind]


def cell_jobs(jobs: list[Job], cell: Cell, model: str, kind: str = "train") -> list[Job]:
    """The jobs of ``model`` in ``cell``, every seed: those named as :meth:`Cell.run_name` names them."""
    return [j for j in jobs if j.kind == kind and j.cfg.model == model and j.name == cell.run_name(model, j.cfg.seed)]


def _best_was_last(runs: list[SeedRun]) -> tuple[int, int]:
    """How many of ``runs`` chose their last epoch as the best on validation (still learning), of how many."""
    metrics = [read_json(r.folder / "metrics.json") for r in runs]
    last = [m for m in metrics if m.get("best_epoch") is not None and m.get("epochs_trained")]
    return sum(m["best_epoch"] == m["epochs_trained"] for m in last), len(last)


def family_name(kind: str, hybrid: str, control: str) -> str:
    """The family a comparison belongs to: one per pair and kind (clean, erasing, translation, pooled)."""
    return f"{kind}: {hybrid} vs {control}"


def _adjust_families(results: list[RegimeResult]) -> None:
    """Holm within each family: a pair's clean cells; its erasing levels; its translation levels."""
    from cnnlstm.reporting.compare import adjust_pairs

    for hybrid, control in dict.fromkeys((r.cell.hybrid, r.cell.control) for r in results):
        mine = [r for r in results if (r.cell.hybrid, r.cell.control) == (hybrid, control) and r.pair is not None]
        for r, pair in zip(mine, adjust_pairs([r.pair for r in mine], family_name("clean", hybrid, control))):
            r.pair = pair
        for kind in ("erase", "shift"):
            rows = [row for r in mine for level, row in r.occlusion.get(kind, {}).items() if float(level) != 0]
            adjusted = adjust([row["comparison"] for row in rows],
                              family_name("erasing" if kind == "erase" else "translation", hybrid, control))
            for row, c in zip(rows, adjusted):
                row["comparison"] = c


def cell_results(root: Path, grid: RegimeGrid, jobs: list[Job], ds: Dataset) -> list[RegimeResult]:
    """Every cell's comparison (:func:`match_pairs`), sizes and costs, and occlusion curves, with the
    p-values adjusted within each family (:func:`family_name`)."""
    results = []
    for cell in grid_cells(grid):
        sides = {m: cell_jobs(jobs, cell, m) for m in (cell.hybrid, cell.control)}
        groups = {cell.key(m): seed_runs(root, side).get(m, []) for m, side in sides.items()}
        pairs = match_pairs(groups, [(cell.key(cell.hybrid), cell.key(cell.control))])
        sizes = [trained_size(m, config_to_dict(side[0].cfg), image_size=ds.image_size, channels=ds.channels,
                              num_classes=ds.num_classes) for m, side in sides.items()]
        last = [_best_was_last(runs) for runs in groups.values()]
        result = RegimeResult(cell, pairs[0] if pairs else None, (sizes[0][0], sizes[1][0]),
                              (sizes[0][1], sizes[1][1]), sides[cell.hybrid][0].cfg.epochs,
                              tuple(mean_std(run.accuracy for run in runs) for runs in groups.values()),
                              (last[0][0] + last[1][0], last[0][1] + last[1][1]),
                              tuple({r.seed: r.accuracy for r in runs} for runs in groups.values()))
        result.occlusion = occlusion_curves(root, jobs, cell)
        results.append(result)
    _adjust_families(results)
    return results


def pooled_endpoints(results: list[RegimeResult]) -> list[tuple[str, str, int, Comparison]]:
    """The primary endpoint of each pair and size: its widths pooled, every (width, seed) a pair of runs.

    Stated before the runs: one paired t over all width x seed pairs (9 at 3 widths and 3 seeds), Holm
    over the pairs and sizes, one family. A size pair (one width) pools nothing and is its own cell.
    """
    out = []
    for hybrid, control in dict.fromkeys((r.cell.hybrid, r.cell.control) for r in results):
        for size in dict.fromkeys(r.cell.size for r in results if r.cell.hybrid == hybrid):
            mine = [r for r in results if (r.cell.hybrid, r.cell.control, r.cell.size) == (hybrid, control, size)
                    and r.pair is not None]
            if not mine:
                continue
            scores = [{(r.cell.width_label, k): v for r in mine for k, v in r.scores[side].items()}
                      for side in (0, 1)]
            out.append((hybrid, control, size, compare(hybrid, control, *scores)))
    adjusted = adjust([c for *_, c in out], "primary: widths pooled, per pair and size")
    return [(h, c, size, a) for (h, c, size, _), a in zip(out, adjusted)]


def occlusion_curves(root: Path, jobs: list[Job], cell: Cell) -> dict:
    """``{kind: {level: {"hybrid": (mean, std), "control": (mean, std), "comparison": Comparison, "n": int}}}``
    (unadjusted: :func:`cell_results` adjusts each family)."""
    records = {}
    for side, model in (("hybrid", cell.hybrid), ("control", cell.control)):
        records[side] = {j.cfg.seed: read_json(j.folder(root) / OCCLUSION_FILE)
                         for j in cell_jobs(jobs, cell, model, "occlusion") if job_done(j, root)}
    if not records["hybrid"] or not records["control"]:
        return {}
    out: dict = {}
    any_record = next(iter(records["hybrid"].values()))
    for kind in ("erase", "shift"):
        out[kind] = {}
        for level in any_record[kind]:
            scores = {side: {seed: rec[kind][level] for seed, rec in recs.items()} for side, recs in records.items()}
            out[kind][level] = {"hybrid": mean_std(scores["hybrid"].values()),
                                "control": mean_std(scores["control"].values()),
                                "comparison": compare(cell.hybrid, cell.control, scores["hybrid"], scores["control"]),
                                "scores": scores, "n": len(set(scores["hybrid"]) & set(scores["control"]))}
    return out


def _occlusion_record(curves: dict) -> dict:
    """:func:`occlusion_curves` as JSON: ``{kind: {level: {hybrid: [mean, std], control: ..., delta: {...}}}}``."""
    return {kind: {level: {"hybrid": list(row["hybrid"]), "control": list(row["control"]),
                           "delta": {**asdict(row["comparison"].seeds), **_verdict_record(row["comparison"])}}
                   for level, row in levels.items()}
            for kind, levels in curves.items()}


def _verdict_record(c: Comparison) -> dict:
    """A comparison's verdict as regimes.json keeps it (p-values adjusted within its family)."""
    v = c.verdict
    return {"verdict": c.kind, "p_adjusted": v.pvalue, "tost_p": v.tost_p, "margin": v.margin, "mde": v.mde,
            "family": v.family}


def _perturbation(kind: str, level: str) -> str:
    return f"erasing {float(level):.0%} of the image" if kind == "erase" else f"translation by {level} px"


def _claims(results: list[RegimeResult], n_full: int) -> list[str]:
    """Every difference that survives Holm within its family, clean cells first, then perturbed levels."""
    lines = []
    for r in results:
        if r.pair is not None and r.pair.comparison.kind in ("A better", "B better"):
            named = replace(r.pair, a=r.cell.hybrid, b=r.cell.control, comparison=named_by_models(r.pair.comparison, r.cell))
            lines.append(f"{r.cell.size_label(n_full)} images, stem {r.cell.width_label}: {named.claim()}")
    for r in results:
        for kind, levels in r.occlusion.items():
            for level, row in levels.items():
                c = row["comparison"]
                if float(level) != 0 and c.kind in ("A better", "B better"):
                    lines.append(f"under test-time {_perturbation(kind, level)}, {r.cell.size_label(n_full)} images, "
                                 f"stem {r.cell.width_label}: {c.sentence()}.")
    return lines


def summary_lines(results: list[RegimeResult], n_full: int,
                  pooled: list[tuple[str, str, int, Comparison]] | None = None) -> list[str]:
    """The map's answer: the pooled primary endpoints, then only the claims that survive Holm within
    their family, the count of equivalent and inconclusive comparisons, and the schedule check."""
    done = [r for r in results if r.pair is not None and r.pair.comparison.seeds.low is not None]
    unpaired = len([r for r in results if r.pair is not None]) - len(done)
    no_interval = [f"{unpaired} cell(s) have one seed on a side (or no spread), so no interval"] if unpaired else []
    if not done:
        return ["No cell has an interval yet (finished runs of at least two seeds on both sides)."] + no_interval
    lines = [f"Primary endpoint, {h} vs {c} at {'all' if size == ALL else f'{size:,}'} images, widths pooled: "
             f"{cmp.sentence()}." for h, c, size, cmp in (pooled or [])]
    tested = [r.pair.comparison for r in done] + [row["comparison"] for r in done for levels in r.occlusion.values()
                                                   for level, row in levels.items() if float(level) != 0]
    kinds = [c.kind for c in tested if c.kind != "no interval"]
    claims = _claims(done, n_full)
    lines += claims
    lines.append(f"Of {len(kinds)} per-cell comparisons (clean cells and perturbed levels, Holm within each pair's "
                 f"clean, erasing and translation families), {len(claims)} show a difference, "
                 f"{kinds.count('equivalent')} are equivalent within ±{100 * tested[0].verdict.margin:.1f} points and "
                 f"{kinds.count('inconclusive')} are inconclusive at {min(r.pair.comparison.seeds.n for r in done)} "
                 "seeds.")
    last, runs = sum(r.best_last[0] for r in done), sum(r.best_last[1] for r in done)
    if runs:
        lines.append(f"In {last} of {runs} runs the best validation epoch was the last one: those runs were still "
                     "learning when the schedule ended, so a difference there may be one of learning speed.")
    return lines + no_interval


def _pct(mean_std_pair: tuple) -> str:
    mean, std = mean_std_pair
    return "" if mean is None else f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def map_panels(results: list[RegimeResult], grid: RegimeGrid, n_full: int) -> list[dict]:
    """The heat map's panels: one per pair, rows = sizes, columns = widths ("own" for a size pair)."""
    panels = []
    for hybrid, control in (*grid.wide_pairs, *grid.size_pairs):
        mine = [r for r in results if (r.cell.hybrid, r.cell.control) == (hybrid, control)]
        if not mine:
            continue
        rows = list(dict.fromkeys(r.cell.size_label(n_full) for r in mine))
        cols = list(dict.fromkeys(r.cell.width_label for r in mine))
        cells = {}
        for r in mine:
            if r.pair is not None:
                s = r.pair.comparison.seeds
                cells[(rows.index(r.cell.size_label(n_full)), cols.index(r.cell.width_label))] = {
                    "diff": 100 * s.diff, "low": None if s.low is None else 100 * s.low,
                    "high": None if s.high is None else 100 * s.high,
                    "claimed": r.pair.comparison.kind in ("A better", "B better")}
        panels.append({"title": f"{hybrid} − {control}", "rows": rows, "cols": cols, "cells": cells})
    return panels


def cell_rows(results: list[RegimeResult], n_full: int) -> list[dict]:
    """One table row per cell: sizes and costs of both models, their accuracies, Δ and the verdict."""
    rows = []
    for r in results:
        base = {"hybrid / control": f"{r.cell.hybrid} / {r.cell.control}", "training images": r.cell.size_label(n_full),
                "stem": r.cell.width_label, "params": f"{r.params[0]:,} / {r.params[1]:,}",
                "MFLOPs/image": f"{r.mflops[0]:.2f} / {r.mflops[1]:.2f}", "epochs": r.epochs}
        if r.pair is None:
            rows.append({**base, "verdict": "not run"})
            continue
        c = r.pair.comparison
        rows.append({**base, "test % (hybrid)": _pct(r.accuracy[0]), "test % (control)": _pct(r.accuracy[1]),
                     **comparison_cells(c), "verdict": r.verdict(),
                     "best epoch = last": f"{r.best_last[0]} of {r.best_last[1]}",
                     "recipe": "same" if not r.pair.differences else "DIFFERS: " + "; ".join(r.pair.differences)})
    return rows


def occlusion_rows(results: list[RegimeResult], n_full: int) -> list[dict]:
    """One row per occluded cell, kind and level: both accuracies and the paired Δ with its interval."""
    rows = []
    for r in results:
        for kind, levels in r.occlusion.items():
            for level, row in sorted(levels.items(), key=lambda kv: float(kv[0])):
                c = row["comparison"]
                rows.append({"pair": f"{r.cell.hybrid} / {r.cell.control}", "stem": r.cell.width_label,
                             "perturbation": f"{float(level):.0%} erased" if kind == "erase" else f"shift {level} px",
                             "test % (hybrid)": _pct(row["hybrid"]), "test % (control)": _pct(row["control"]),
                             **comparison_cells(c),
                             "verdict": "clean images" if float(level) == 0 else CELL_WORDS[c.kind]})
    return rows


def named_by_models(c: Comparison, cell: Cell) -> Comparison:
    """A cell's comparison named by its models (the report names the sides with the cell's key)."""
    return replace(c, a=cell.hybrid, b=cell.control)
