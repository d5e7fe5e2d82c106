"""The plan's study's sections beyond the matched comparisons: the flagship's figures, calibration,
robustness, explanations, the duplicate audit, the t-SNE comparison, the exploration and where the
time went."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

import numpy as np

from cnnlstm.data import Dataset
from cnnlstm.errors import RunError
from cnnlstm.fileio import read_json
from cnnlstm.measure.stats import mean_std
from cnnlstm.reporting import figures as plots
from cnnlstm.reporting.page import Figure, Figures, Paragraph, Section, Table
from cnnlstm.reporting.raw import COMPARISONS_FILE, read_csv
from cnnlstm.reporting.records import dataset_title
from cnnlstm.study.engine.joblog import JOB_LOG, read_job_log
from cnnlstm.study.engine.jobs import Job
from cnnlstm.study.engine.session import CLUSTER_FILE
from cnnlstm.study.paper.plan import (
    FLAGSHIP,
)

log = logging.getLogger(__name__)


def embedding_labels(info: dict, ds: Dataset) -> np.ndarray:
    """The class of every embedded point, from ``embed.json``'s index space and indices."""
    if info.get("index_space") == "test":
        pool = ds.test_labels
    else:  # the raw-pixel t-SNE indexes train then test
        pool = np.concatenate([ds.train_labels, ds.test_labels])
    idx = info.get("indices")
    return pool[np.asarray(idx, dtype=np.int64)] if idx is not None else pool[:info["n"]]


def tsne_figure(root: Path, jobs: list[Job], ds: Dataset, out: Path) -> tuple[Path | None, list[dict]]:
    """Raw pixels beside the embedded models' features, with their embedding metrics."""
    sources = [("raw pixels", root / "explore")]
    sources += [(f"{j.label} features", j.folder(root)) for j in jobs if j.kind == "embed"]
    panels, rows = [], []
    for name, folder in sources:
        if not ((folder / "embed.json").exists() and (folder / "embedding.npy").exists()):
            continue
        info = read_json(folder / "embed.json")
        panels.append((np.load(folder / "embedding.npy"), embedding_labels(info, ds), name, info.get("quality")))
        rows.append(_quality_row(name, info))
    if not panels:
        return None, rows
    return plots.plot_embeddings_side_by_side(panels, ds.classes, out), rows


def _quality_row(name: str, info: dict) -> dict:
    q = info.get("quality", {})
    emb, feat = q.get("embedding", {}), q.get("features", {})
    f = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    return {"input": name, "n": info.get("n", ""), "K0": info.get("k0", ""),
            "10-NN acc (original space)": f(feat.get("knn10")), "1-NN acc (t-SNE)": f(emb.get("knn1")),
            "10-NN acc (t-SNE)": f(emb.get("knn10")), "trustworthiness": f(emb.get("trustworthiness")),
            "Spearman (distances)": f(emb.get("spearman"))}


def job_time_rows(log_rows: list[dict]) -> list[dict]:
    """Per job kind, in the order a study runs them: jobs done, their total, median and longest time, failures.

    Times are each job's own run time where it ran, so on a cluster they add up to more than the
    study's wall time.
    """
    kinds: dict[str, list[dict]] = {}
    for row in log_rows:
        kinds.setdefault(row["kind"], []).append(row)
    out = []
    for kind, rows in kinds.items():
        done = [r for r in rows if r["status"] == "done"]
        secs = [r["seconds"] for r in done]
        longest = max(done, key=lambda r: r["seconds"]) if done else None
        out.append({"kind": kind, "done": len(done), "failed": len(rows) - len(done),
                    "total": f"{sum(secs) / 60:.1f} min", "median": f"{statistics.median(secs):.1f} s" if secs else "",
                    "longest": f"{longest['job']} ({longest['seconds']:.0f} s)" if longest else ""})
    order = ["explore", "train", "embed", "robustness", "explain", "occlusion"]  # as a study runs them
    return sorted(out, key=lambda r: (order.index(r["kind"]) if r["kind"] in order else len(order), r["kind"]))


def time_section(root: Path) -> Section | None:
    """Where the study's time went, by job kind, from ``jobs.csv`` (absent before any job ended), and
    where the jobs ran: the workers by name, and the rule that chose them (``cluster.json``)."""
    rows = read_job_log(root)
    if not rows:
        return None
    where = sorted({r["where"] for r in rows if r["where"]})
    rule = read_json(root / CLUSTER_FILE)["rule"] if (root / CLUSTER_FILE).is_file() else ""
    return Section("Where the time went", [
        Paragraph(f"Each job's own run time, measured where it ran ({len(where)} process(es) or worker(s): "
                  f"{', '.join(where)}{'; ' + rule if rule else ''}), from `{JOB_LOG}` in the study folder; a "
                  "resumed job counts only its resumed part, and on a cluster the times add up to more than "
                  "the wall time."),
        Table(job_time_rows(rows), [("kind", "job kind"), ("done", "jobs done"), ("failed", "failed"),
                                    ("total", "total time"), ("median", "median time"),
                                    ("longest", "longest job (time)")])])


def flagship_sections(models: dict) -> list[Section]:
    """The flagship's confusion matrix and worst-class ROC (seed 0's run)."""
    agg = models.get(FLAGSHIP)
    if not agg:
        return []
    run = agg["runs"][0]
    figs = run["folder"] / "figures"
    worst = run["metrics"]["worst_class"]
    name = run["metrics"]["per_class"][worst]["name"]
    items = [Figure(figs / f, c) for f, c in (
        ("confusion_matrix.png", "confusion matrix (counts; rows true, columns predicted)"),
        ("roc_worst_class.png", f"ROC of the worst class, {name} (the plan's Fig. 6)"),
        ("history.png", "training curves")) if (figs / f).exists()]
    per_class = [{"label": c["label"], "class": c["name"], "precision": f"{c['precision']:.3f}",
                  "recall": f"{c['recall']:.3f}", "F1": f"{c['f1']:.3f}",
                  "_class": "highlight" if c["label"] == worst else ""} for c in run["metrics"]["per_class"]]
    return [Section(f"The flagship {FLAGSHIP} ({run['folder'].name})", [
        Table(per_class, ["label", "class", "precision", "recall", "F1"]), Figures(items)])]


# --------------------------------------------------------------------------- beyond accuracy


def _f(value, digits: int = 4, scale: float = 1.0) -> str:
    return "—" if value is None else f"{scale * value:.{digits}f}"


def calibration_section(models: dict[str, dict]) -> Section | None:
    """ECE/MCE/Brier per model (mean over seeds), before and after temperature scaling."""
    rows = []
    for model, agg in sorted(models.items(), key=lambda kv: -kv[1]["acc_mean"]):
        ms = [r["metrics"] for r in agg["runs"] if r["metrics"].get("ece") is not None]
        if not ms:
            continue
        mean = lambda k, ms=ms: mean_std(m.get(k) for m in ms)[0]  # noqa: E731
        rows.append({"model": model, "seeds": len(ms), "ECE (15 bins)": _f(mean("ece")),
                     "MCE": _f(mean("mce")), "Brier": _f(mean("brier")),
                     "temperature (fitted on validation)": _f(mean("temperature"), 3),
                     "ECE after scaling": _f(mean("ece_temperature"))})
    if not rows:
        return None
    blocks = [Paragraph("Are the probabilities honest? Expected calibration error over 15 equal-width "
                        "confidence bins, the largest bin gap (MCE) and the Brier score on the test set, then "
                        "ECE after temperature scaling with one temperature fitted on the validation split "
                        "(never the test set). Mean over the seeds shown."), Table(rows, list(rows[0]))]
    run = models.get(FLAGSHIP, {}).get("runs", [None])[0]
    if run is not None:
        figs = sorted((run["folder"] / "figures").glob("reliability*.png"))
        if figs:
            blocks.append(Figures([Figure(p, f"{FLAGSHIP}: {p.stem.replace('_', ' ')}") for p in figs]))
    return Section("Calibration", blocks)


def robustness_records(root: Path, jobs: list[Job]) -> list[tuple[str, dict]]:
    """``(model, robustness.json)`` of every robustness job the study finished, in job order."""
    out = []
    for job in jobs:
        path = job.folder(root) / "robustness.json"
        if job.kind == "robustness" and path.exists():
            out.append((job.label, read_json(path)))
    return out


def robustness_section(records: list[tuple[str, dict]], root: Path, jobs: list[Job]) -> Section | None:
    """Accuracy under the Fashion-MNIST-C corruptions, and the mean corruption error against model1."""
    if not records:
        return None
    first = records[0][1]
    rows = [{"model": model, "clean %": _f(r["clean_accuracy"], 2, 100),
             "mean corrupted %": _f(r["mean_corrupted_accuracy"], 2, 100),
             "mCE vs model1": _f(r.get("mce"), 3), "relative mCE": _f(r.get("relative_mce"), 3),
             "worst corruption": min(r["mean_accuracy"], key=r["mean_accuracy"].get) if r.get("mean_accuracy") else ""}
            for model, r in records]
    sev = ", ".join(str(s) for s in first.get("severities", []))
    blocks = [Paragraph(f"Seed 0 of each model on {first['n_images']:,} test images, corrupted with the 15 "
                        f"corruptions of Fashion-MNIST-C (Weiss & Tonella 2022), generated here from a seed, at "
                        f"severity {sev}. mCE is the ImageNet-C mean corruption error: each corruption's error "
                        "summed over severities, divided by model1's, averaged over corruptions (below 1 = more "
                        "robust than model1); relative mCE does the same with the clean error subtracted. One "
                        "seed per model: differences here are single-seed observations, not findings."),
              Table(rows, list(rows[0]))]
    by_model = {j.label: j.folder(root) for j in jobs if j.kind == "robustness"}
    figs = [Figure(by_model[m] / "figures" / "robustness.png", f"{m}: accuracy per corruption and severity")
            for m in (FLAGSHIP, "cnn_twin") if m in by_model and (by_model[m] / "figures" / "robustness.png").exists()]
    if figs:
        blocks.append(Figures(figs))
    return Section("Robustness to corruptions", blocks)


def explain_section(root: Path, jobs: list[Job]) -> Section | None:
    """The flagship's Grad-CAM and LSTM-step attribution figures."""
    job = next((j for j in jobs if j.kind == "explain"), None)
    if job is None:
        return None
    figs = job.folder(root) / "figures"
    items = [Figure(figs / name, caption) for name, caption in (
        ("explain.png", "Grad-CAM on the last conv layer, and which LSTM steps (rows) the decision rests on"),
        ("explain_mistakes.png", "the worst class's most confident mistakes")) if (figs / name).exists()]
    if not items:
        return None
    return Section(f"Where the flagship looks ({job.name})", [Paragraph(
        "For a few test images per class: the Grad-CAM heat map of the predicted class on the last "
        "convolution, and an integrated-gradients attribution over the LSTM's input steps (each step is one "
        "row of the feature map), drawn back onto the image."), Figures(items)])


def audit_section(root: Path) -> Section | None:
    """Duplicates within and across the splits, from the exploration's ``stats.json``."""
    path = root / "explore" / "stats.json"
    if not path.exists():
        return None
    audit = read_json(path).get("audit")
    if not audit:
        return None
    try:
        from cnnlstm.reporting.trust import audit_section as trust_audit_section
    except ImportError:
        return None
    return trust_audit_section(audit, root / "explore")


def explore_sections(root: Path, ds: Dataset) -> list[Section]:
    """The plan's exploration figures (class balance, box plots, raw t-SNE), headed by the dataset's name."""
    figs = root / "explore" / "figures"
    if not figs.is_dir():
        return []
    # the duplicate pairs are the audit section's figure; shown once, there
    items = [Figure(p, p.stem.replace("_", " ")) for p in sorted(figs.glob("*.png")) if p.stem != "duplicates"]
    heading = f"Exploring {dataset_title(ds.name)}" + (" (the plan's Fig. 2-4)" if ds.name == "fashion-mnist" else "")
    return [Section(heading, [Figures(items)])] if items else []


#: The positive control's command (docs/positive-control.md): recurrence inside the conv stack
#: against its parameter-matched feed-forward control, through the same harness.
POSITIVE_CONTROL_COMMAND = "cnnlstm compare spoerer_bl spoerer_bk --data debris:10 --seeds auto"


def _points(value: str | float | None) -> str:
    """A difference in points as ``+1.23``; ``-`` where there is none (a CSV's empty cell, or None)."""
    return f"{float(value):+.2f}" if value not in ("", None) else "-"


def _verdict_row(r: dict, interval: bool = False) -> dict:
    """A ``comparisons.csv`` row (read back, or as :meth:`~cnnlstm.measure.stats.Comparison.row` gives it)
    as a table row: the pair, n, Δ (and its 95% interval), the verdict and the MDE."""
    ci = {"95% CI": f"{_points(r['low'])} to {_points(r['high'])}" if r["low"] not in ("", None) else "-"}
    return {"A vs B": f"{r['a']} vs {r['b']}", "n": r["n"], "Δ (points)": _points(r["diff"]),
            **(ci if interval else {}), "verdict": r["verdict"], "MDE (points)": _points(r["mde"]).lstrip("+")}


def positive_control_rows(folder: Path) -> list[dict]:
    """The comparisons of an earlier ``cnnlstm compare`` folder, each with the data it ran on.

    Raises
    ------
    RunError
        ``folder`` holds no ``comparisons.csv`` (it is not a finished study folder).
    """
    path = Path(folder) / COMPARISONS_FILE
    if not path.is_file():
        raise RunError(f"{folder}: no {COMPARISONS_FILE}; give the folder of a finished `cnnlstm compare` "
                       f"(e.g. {POSITIVE_CONTROL_COMMAND} --out DIR)")
    data = next((read_json(p).get("name", "?") for p in sorted(Path(folder).glob("runs/*/dataset.json"))), "?")
    return [{"data": data, **_verdict_row(r, interval=True)}
            for r in read_csv(path) if r.get("metric", "accuracy") in ("", "accuracy")]


def positive_control_section(folder: Path | None, answer_rows: list[dict]) -> Section:
    """"Could this study have seen a benefit?": the smallest effect each of this study's
    hybrid-vs-control comparisons could detect, beside a positive control's result (read from
    ``folder``, an earlier ``cnnlstm compare``), or the command that measures one.

    ``answer_rows`` are this study's comparisons as ``comparisons.csv`` rows
    (:meth:`cnnlstm.measure.stats.Comparison.row`).
    """
    ours = [_verdict_row(r) for r in answer_rows]
    blocks = [Paragraph("A negative answer means something only if the same harness could have seen a positive "
                        "one. MDE is the effect each comparison could detect with 80% power at its n, from its "
                        "paired spread.")]
    if ours:
        blocks.append(Table(ours, list(ours[0])))
    if folder is None:
        blocks.append(Paragraph(f"No positive control was read for this report. Measure one with "
                                f"`{POSITIVE_CONTROL_COMMAND} --out DIR` and give its folder with "
                                "`--positive-control DIR` (docs/positive-control.md)."))
    else:
        rows = positive_control_rows(folder)
        blocks += [Paragraph(f"The positive control, read from {folder}: recurrence where the literature reports "
                             "that it helps, through the same recipes, seeds and statistics."),
                   Table(rows, list(rows[0])) if rows else Paragraph(f"{folder} has no accuracy comparison.")]
    return Section("Could this study have seen a benefit?", blocks)
