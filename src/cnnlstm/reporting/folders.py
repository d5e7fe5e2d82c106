"""Report sections of the folders that are not runs: an ``explore`` folder and a ``sweep`` folder."""

from __future__ import annotations

from pathlib import Path

from cnnlstm.reporting import trust
from cnnlstm.reporting.embedding import embed_blocks
from cnnlstm.reporting.page import Figure, Figures, Paragraph, Section, Table, format_cell, plain, slug

EXPLORE_FIGURES = (("class_distribution.png", "Examples per class, train and test"),
                   ("boxplot_means.png", "Per-image pixel mean by class (the plan's Fig. 2)"),
                   ("boxplot_variances.png", "Per-image pixel variance by class (the plan's Fig. 3)"),
                   ("sample_grid.png", "Random training images per class"),
                   ("mean_images.png", "Mean image of each class"))


def _box(summary: dict | None, digits: int = 3) -> str | None:
    if not summary or summary.get("median") is None:
        return None
    return f"{summary['median']:.{digits}f} [{summary['q1']:.{digits}f}, {summary['q3']:.{digits}f}]"


def explore_section(folder: Path, stats: dict) -> Section:
    """Dataset statistics, the exploratory figures and the raw-pixel t-SNE of an ``explore`` folder."""
    ds = stats.get("dataset") or {}
    shape = "x".join(str(s) for s in stats.get("image_shape", []))
    text = (f"Folder {folder}. Data: {ds.get('source', 'unknown source')} "
            f"({'checksums verified' if ds.get('verified') else 'not verified as Fashion-MNIST'}); "
            f"images {shape}; pixel values in [0, 1] units.")
    splits = [{"split": name, "n": s["n"], "mean": s["pixel_mean"], "std": s["pixel_std"]}
              for name, s in stats["splits"].items()]
    per_class = [{"label": c["label"], "name": c["name"], "n_train": c["n_train"], "n_test": c["n_test"],
                  "mean": _box(c["mean"]), "var": _box(c["variance"], 4)} for c in stats["per_class"]]
    blocks: list = [
        Paragraph(text),
        Table(splits, ("split", "n", ("mean", "pixel mean"), ("std", "pixel std"))),
        Table(per_class, ("label", ("name", "class"), ("n_train", "train"), ("n_test", "test"),
                          ("mean", "image mean: median [q1, q3]"), ("var", "image variance: median [q1, q3]")),
              "per class, over train and test"),
    ]
    figs = [Figure(folder / "figures" / n, cap) for n, cap in EXPLORE_FIGURES if (folder / "figures" / n).is_file()]
    if figs:
        blocks.append(Figures(figs))
    if (audit := trust.audit_section(stats, folder)) is not None:
        blocks.append(audit)
    if stats.get("embedding"):
        blocks.append(Section("t-SNE of the raw pixels", embed_blocks(
            stats["embedding"], folder / "figures" / "tsne_raw.png", "raw pixels"), slug(f"{folder.name}-tsne")))
    else:
        blocks.append(Paragraph("No t-SNE in this folder (explore ran with --tsne-samples 0)."))
    return Section(f"Dataset exploration ({folder.name})", blocks, slug(f"explore-{folder.name}"))


MAX_TRIALS_SHOWN = 30


def _sorted_trials(sweep: dict) -> list[dict]:
    sign = -1.0 if sweep.get("direction", "maximize") == "maximize" else 1.0
    done = [t for t in sweep.get("trials", []) if t.get("value") is not None]
    rest = [t for t in sweep.get("trials", []) if t.get("value") is None]
    return sorted(done, key=lambda t: (sign * t["value"], t.get("number", 0))) + rest


def sweep_section(folder: Path, sweep: dict) -> Section:
    """The best trial, parameter importances, the trials table and the sweep's figures."""
    trials, best = sweep.get("trials", []), sweep.get("best") or {}
    states = {}
    for t in trials:
        states[t.get("state", "?")] = states.get(t.get("state", "?"), 0) + 1
    text = (f"Folder {folder}. Optuna study {sweep.get('study', '?')!s}, direction "
            f"{sweep.get('direction', '?')}, {len(trials)} trials ("
            + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())) + ")"
            + (f"; best trial #{best.get('number')} with value {format_cell(best.get('value'))}." if best else "."))
    blocks: list = [Paragraph(text)]
    if best.get("params"):
        blocks.append(Table([{"param": k, "value": plain(v)} for k, v in best["params"].items()],
                            (("param", "parameter"), ("value", "best value")), "best parameters"))
    imp = sweep.get("importances") or {}
    if imp:
        blocks.append(Table([{"param": k, "importance": float(v)} for k, v in
                             sorted(imp.items(), key=lambda kv: -kv[1])],
                            (("param", "parameter"), ("importance", "importance")), "parameter importances"))
    shown = _sorted_trials(sweep)[:MAX_TRIALS_SHOWN]
    keys = sorted({k for t in shown for k in (t.get("params") or {})})
    rows = [{"number": t.get("number"), "value": t.get("value"), "state": t.get("state"),
             **{f"p:{k}": plain(t["params"][k]) for k in keys if k in (t.get("params") or {})}} for t in shown]
    cap = f"trials, best first ({len(shown)} of {len(trials)} shown)"
    blocks.append(Table(rows, [("number", "trial"), ("value", "value"), ("state", "state")]
                        + [(f"p:{k}", k) for k in keys], cap))
    figs = sorted((folder / "figures").glob("*.png")) if (folder / "figures").is_dir() else []
    if figs:
        blocks.append(Figures([Figure(p, p.stem.replace("_", " ")) for p in figs]))
    return Section(f"Sweep {sweep.get('study', folder.name)}", blocks, slug(f"sweep-{folder.name}"))


# =========================================================================== the whole report
