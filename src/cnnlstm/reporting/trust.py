"""Report sections beyond accuracy: calibration, robustness to corruptions, explanations, dataset audit.

Each builder reads the records the commands wrote (``metrics.json``, ``robustness.json``,
``explain.json``, ``stats.json``) and returns page blocks; none of them computes a measurement.

- :func:`calibration_blocks`: ECE / MCE / Brier / NLL before and after temperature scaling, the
  deduplicated test accuracy and the reliability diagram of one run;
- :func:`robustness_blocks`: one run's accuracy per corruption and severity;
- :func:`robustness_section`: several runs side by side (clean, mean corrupted accuracy, mCE);
- :func:`explain_blocks`: Grad-CAM and LSTM step figures of one run;
- :func:`audit_section`: exact and near duplicates of an ``explore`` folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cnnlstm.fileio import read_json
from cnnlstm.reporting.page import Figure, Figures, Paragraph, Section, Table, slug

CALIBRATION_ROWS = (("ece", "ECE (expected calibration error)"), ("mce", "MCE (maximum calibration error)"),
                    ("brier", "Brier score"), ("nll", "negative log-likelihood"))


def _pct(value: float | None, digits: int = 2) -> str | None:
    return None if value is None else f"{100 * value:.{digits}f}"


def calibration_blocks(metrics: dict, figures_dir: Path) -> list:
    """Calibration table, deduplicated accuracy and reliability diagram of one run (``[]`` if absent).

    Parameters
    ----------
    metrics : dict
        A run's ``metrics.json``.
    figures_dir : Path
        The run's ``figures`` folder (for ``reliability.png``).
    """
    if metrics.get("ece") is None:
        return []
    t = metrics.get("temperature")
    rows = [{"metric": label, "raw": metrics.get(key),
             "scaled": metrics.get(f"{key}_temperature") if t else None} for key, label in CALIBRATION_ROWS]
    bins = metrics.get("calibration_bins", 15)
    text = (f"Confidence is the top softmax probability; ECE sorts the {metrics.get('n_test', 0):,} test "
            f"predictions into {bins} equal-width confidence bins and averages |accuracy - confidence| "
            "weighted by each bin's share; MCE is the largest bin gap; the Brier score is the mean squared "
            "distance between the probability vector and the one-hot label (0 to 2).")
    if t:
        text += (f" Temperature scaling divides the logits by T = {t:.3f}, fitted by minimising the NLL on the "
                 f"run's {metrics.get('n_val', 0):,} validation images (never the test set); it changes no "
                 "prediction, only the confidence.")
    else:
        text += " No validation split, so no temperature was fitted."
    blocks: list = [Paragraph(text),
                    Table(rows, (("metric", "metric"), ("raw", "as trained"),
                                 ("scaled", f"after temperature scaling (T = {t:.3f})" if t else "after scaling")),
                          "calibration on the test set")]
    if metrics.get("accuracy_dedup") is not None:
        blocks.append(Paragraph(
            f"Test accuracy {_pct(metrics['accuracy'])}% on all {metrics.get('n_test', 0):,} test images; "
            f"{_pct(metrics['accuracy_dedup'])}% on the {metrics['n_test_dedup']:,} that remain after removing "
            f"the {metrics.get('n_test_overlap', 0)} test images with an exact or near duplicate (pixel L2 "
            "distance <= 1.0 in [0, 1] units) in the training set."))
    fig = Path(figures_dir) / "reliability.png"
    if fig.is_file():
        blocks.append(Figures([Figure(fig, "Reliability diagram: accuracy against confidence per bin (bars), "
                                           "the gap to the diagonal hatched; below, the share of predictions "
                                           "per bin")], wide=True))
    return blocks


def robustness_blocks(run_dir: Path) -> list:
    """One run's ``robustness.json`` as a table (corruption x severity) and its figure (``[]`` if absent)."""
    path = Path(run_dir) / "robustness.json"
    if not path.is_file():
        return []
    rec = read_json(path)
    keys = [str(s) for s in rec["severities"]]
    has_na = any("n/a" in v for v in rec["accuracy"].values())
    ce = rec.get("ce") or {}
    rows = []
    for name, accs in rec["accuracy"].items():
        row = {"corruption": name, **{f"s{k}": _pct(accs.get(k), 1) for k in keys}}
        if has_na:
            row["na"] = _pct(accs.get("n/a"), 1)
        row["mean"] = _pct(rec["mean_accuracy"].get(name), 1)
        row["ce"] = ce.get(name)
        rows.append(row)
    columns = [("corruption", "corruption")] + [(f"s{k}", f"severity {k} (%)") for k in keys]
    if has_na:
        columns.append(("na", "no severity (%)"))
    columns.append(("mean", "mean (%)"))
    if ce:
        columns.append(("ce", f"CE vs {rec['baseline']['model']}"))
    which = "all" if rec["indices"] is None else "a seeded sample"
    text = (f"{rec['model']} on {rec['n_images']:,} test images ({which}, seed {rec['seed']}) corrupted as "
            "Fashion-MNIST-C (Weiss & Tonella 2022) does, regenerated here: clean accuracy "
            f"{_pct(rec['clean_accuracy'])}%, mean over corruptions {_pct(rec['mean_corrupted_accuracy'])}%.")
    if rec.get("mce") is not None:
        text += (f" Mean corruption error {rec['mce']:.3f} (relative {rec['relative_mce']:.3f}) against "
                 f"{rec['baseline']['model']} (ImageNet-C's normalisation: CE_c = sum over severities of this "
                 "model's error / the baseline's; below 1 is more robust).")
    blocks: list = [Paragraph(text), Table(rows, columns, "accuracy per corruption and severity")]
    fig = Path(run_dir) / "figures" / "robustness.png"
    if fig.is_file():
        blocks.append(Figures([Figure(fig, "Accuracy per corruption and severity; mean per corruption")], wide=True))
    return blocks


def robustness_section(records: Sequence[tuple[str, dict]], *, title: str = "Robustness to corruptions",
                       note: str = "") -> Section | None:
    """Several runs' robustness side by side: clean accuracy, mean corrupted accuracy, mCE.

    Parameters
    ----------
    records : sequence of (label, robustness record)
        E.g. ``[("model1", load_robustness(run)), ...]``; records with ``ce`` show their mCE and
        baseline.
    title : str
    note : str
        A sentence added to the explanation (e.g. which baseline and why).

    Returns
    -------
    Section or None
        None when ``records`` is empty.
    """
    if not records:
        return None
    rows = []
    for label, rec in records:
        rows.append({"model": label, "n": rec["n_images"], "clean": _pct(rec["clean_accuracy"]),
                     "corrupted": _pct(rec["mean_corrupted_accuracy"]),
                     "drop": _pct(rec["clean_accuracy"] - rec["mean_corrupted_accuracy"]),
                     "mce": rec.get("mce"), "rel": rec.get("relative_mce"),
                     "baseline": (rec.get("baseline") or {}).get("model")})
    names = list(dict.fromkeys(n for _, rec in records for n in rec["accuracy"]))
    per = [{"model": label, **{n: _pct(rec["mean_accuracy"].get(n), 1) for n in names}} for label, rec in records]
    text = ("Accuracy on the test images corrupted as Fashion-MNIST-C does (15 corruptions: noise, blur, "
            "geometry, intensity, flips and turns), each at severities 1-5 where a strength applies; the same "
            "seeded images for every model. mCE is ImageNet-C's mean corruption error: per corruption, the "
            "model's summed error over severities divided by the baseline's, averaged over corruptions (below 1: "
            "more robust than the baseline); the relative mCE first subtracts each model's clean error.")
    if note:
        text += " " + note
    return Section(title, [
        Paragraph(text),
        Table(rows, (("model", "model"), ("n", "test images"), ("clean", "clean accuracy (%)"),
                     ("corrupted", "mean corrupted accuracy (%)"), ("drop", "drop (pp)"), ("mce", "mCE"),
                     ("rel", "relative mCE"), ("baseline", "mCE baseline"))),
        Table(per, [("model", "model")] + [(n, n) for n in names], "mean accuracy (%) per corruption over severities"),
    ], slug(title))


def explain_blocks(run_dir: Path) -> list:
    """Grad-CAM / LSTM step figures and the step profile of one run (``[]`` without ``explain.json``)."""
    run_dir = Path(run_dir)
    path = run_dir / "explain.json"
    if not path.is_file():
        return []
    rec = read_json(path)
    steps = rec["steps"]
    text = (f"Grad-CAM ({rec['grad_cam']['method']}) on layer {rec['grad_cam']['layer']}, explaining "
            f"{rec['target']}. ")
    if "absent" in steps:
        text += steps["absent"] + "."
    else:
        text += (f"LSTM steps: {steps['method']}; the LSTM reads {steps['n_steps']} steps ({steps['seq_axis']} of a "
                 f"{steps['grid'][0]}x{steps['grid'][1]} map), drawn over the image rows/columns each step covers.")
    blocks: list = [Paragraph(text)]
    profile = rec.get("step_profile")
    if profile:
        rows = [{"class": "all explained images", **{f"t{i}": v for i, v in enumerate(profile["all"])}}]
        rows += [{"class": name, **{f"t{i}": v for i, v in enumerate(values)}}
                 for name, values in profile["by_class"].items()]
        columns = [("class", "class")] + [(f"t{i}", f"step {i + 1}") for i in range(len(profile["all"]))]
        blocks.append(Table(rows, columns, "mean share of |attribution| per LSTM step"))
    captions = {"figures/explain.png": "Test images per class: Grad-CAM (left) and LSTM step attribution (right)",
                "figures/explain_mistakes.png": f"The most confident mistakes on {rec['worst_class_name']}, the "
                                                "worst class"}
    figs = [Figure(run_dir / rel, captions.get(rel, rel)) for rel in rec.get("figures", [])
            if (run_dir / rel).is_file()]
    if figs:
        blocks.append(Figures(figs, wide=True))
    return blocks


def audit_section(stats: dict, explore_dir: Path) -> Section | None:
    """Exact and near duplicates found by ``explore`` (None when ``stats.json`` has no audit).

    ``stats`` is the ``stats.json`` content or its ``audit`` record alone.
    """
    audit = stats if "counts" in stats else stats.get("audit")
    if not audit:
        return None
    c = audit["counts"]
    rows = [{"where": "within train", "exact": c["exact_train"], "near": c["near_train"]},
            {"where": "within test", "exact": c["exact_test"], "near": c["near_test"]},
            {"where": "train / test", "exact": c["exact_train_test"], "near": c["near_train_test"]}]
    overlap = audit["test_overlapping_train"]
    text = (f"Exact duplicates: {audit['method']['exact']}. Near duplicates: {audit['method']['near']}. "
            f"{len(overlap)} test image(s) have a duplicate in the training set"
            + (f" (test indices {', '.join(map(str, overlap[:40]))}{' ...' if len(overlap) > 40 else ''})" if overlap
               else "")
            + f"; evaluate reports the accuracy without them. {c['label_conflicts']} duplicate pair(s) carry "
              "different labels.")
    blocks: list = [Paragraph(text), Table(rows, (("where", "pairs"), ("exact", "exact"), ("near", "near")),
                                           "duplicate pairs")]
    if audit["label_conflicts"]:
        blocks.append(Table(audit["label_conflicts"][:50], ("kind", "match", "i", "j", "labels"),
                            "duplicate pairs with different labels"))
    fig = Path(explore_dir) / "figures" / "duplicates.png"
    if fig.is_file():
        blocks.append(Figures([Figure(fig, "The closest duplicate pairs, train/test overlaps first")], wide=True))
    return Section("Dataset audit: duplicates", blocks, slug(f"{Path(explore_dir).name}-audit"))
