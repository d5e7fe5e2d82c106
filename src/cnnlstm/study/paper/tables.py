"""The plan's study's tables: runs aggregated over seeds, Tables I and II beside the published numbers,
each hybrid beside its control (one family, Holm), the ablations (another), and the user's models."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

from cnnlstm.config import config_to_dict
from cnnlstm.data import Dataset
from cnnlstm.measure.stats import Comparison, adjust, mean_std, one_sample_interval
from cnnlstm.reporting.compare import (
    MatchedPair,
    SeedRun,
    compare_groups,
    comparison_cells,
    fmt_pct,
    forest_figure,
    match_pairs,
)
from cnnlstm.reporting.page import Paragraph, Section, Table
from cnnlstm.reporting.records import fewest_train_images, trained_size
from cnnlstm.reporting.references import REFERENCES, Reference, recipe_status
from cnnlstm.study.engine.jobs import Job
from cnnlstm.study.paper.plan import (
    ABLATIONS,
    CONTROL_PAIRS,
    FLAGSHIP,
    FLAGSHIP_FAMILY,
    USER_GROUP,
    StudyPreset,
)

log = logging.getLogger(__name__)

PUBLISHED: dict[str, Reference] = {r.key: r for r in REFERENCES}

# The plan's Table I rows: (published row, the model that measures it here).
TABLE_ONE = (("human", None), ("ji_cnn_lstm", "ji_cnn_lstm"), ("tf_cnn", "tf_cnn"), ("cnn_svm", "cnn_svm"))
TABLE_TWO = (("model1", "model1"), ("model2", "model2"))


def aggregate(runs: list[dict], group_key) -> dict[str, dict]:
    """Group finished runs by ``group_key(run)``: accuracy over seeds, F1, epochs, time, the runs."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    out = {}
    for key, members in groups.items():
        acc = [r["metrics"]["accuracy"] for r in members]
        m, s = mean_std(acc)
        out[key] = {"n": len(members), "acc_mean": m, "acc_std": s,
                    "f1_mean": mean_std(r["metrics"]["f1_macro"] for r in members)[0],
                    "seconds": statistics.fmean(r["metrics"].get("train_seconds", 0.0) for r in members),
                    "epochs": max(r["cfg"].epochs for r in members), "runs": members,
                    "train_images": fewest_train_images((config_to_dict(r["cfg"]), r["metrics"]) for r in members),
                    "seed_runs": [SeedRun(r["cfg"].seed, r["metrics"]["accuracy"], r["folder"],
                                          config_to_dict(r["cfg"])) for r in members]}
    return out


# --------------------------------------------------------------------------- Tables I and II


def measured_row(ref: Reference, agg: dict | None) -> dict:
    """One row of Table I or II: published beside measured, with the difference where it means something."""
    row = {"model": ref.name, "published": f"{ref.accuracy:.2f}", "source": ref.source,
           "measured (test %)": "—" if ref.model is None else "not run in this preset",
           "seeds": "", "epochs": "", "schedule": "", "Δ vs published": "", "95% CI of Δ": "",
           "train time (s)": ""}
    if ref.model is None or agg is None:
        return row
    status, comparable = recipe_status(ref, epochs=agg["epochs"], train_images=agg["train_images"])
    row.update({"measured (test %)": fmt_pct(agg["acc_mean"], agg["acc_std"], agg["n"]), "seeds": agg["n"],
                "epochs": agg["epochs"], "schedule": status, "train time (s)": f"{agg['seconds']:.0f}"})
    if comparable:
        row["Δ vs published"] = f"{100 * agg['acc_mean'] - ref.accuracy:+.2f}"
        ci = one_sample_interval([r.accuracy * 100 for r in agg["seed_runs"]], ref.accuracy)
        row["95% CI of Δ"] = f"{ci[0]:+.2f} to {ci[1]:+.2f}" if ci else "— (1 seed)"
    return row


def published_tables(models: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    """Rows of Table I (reference methods) and Table II (the plan's baselines)."""
    one = [measured_row(PUBLISHED[key], models.get(model) if model else None) for key, model in TABLE_ONE]
    two = [measured_row(PUBLISHED[key], models.get(model)) for key, model in TABLE_TWO]
    return one, two


# --------------------------------------------------------------------------- what the LSTM adds


#: The study's families of hypotheses, each adjusted within itself (Holm).
LSTM_FAMILY = "hybrid vs control"
ABLATION_FAMILY = "ablations vs all_on"


def control_comparisons(models: dict[str, dict]) -> list[MatchedPair]:
    """Every hybrid against its control, for the pairs the study trained (:func:`match_pairs`): one
    family, :data:`LSTM_FAMILY`, adjusted together."""
    return match_pairs({name: agg["seed_runs"] for name, agg in models.items()}, CONTROL_PAIRS, family=LSTM_FAMILY)


def control_rows(models: dict[str, dict], comparisons: list[MatchedPair], ds: Dataset) -> list[dict]:
    """The table of "What the LSTM adds": each hybrid beside its control, sized as trained on ``ds``."""
    shape = {"image_size": ds.image_size, "channels": ds.channels, "num_classes": ds.num_classes}
    rows = []
    for pair in comparisons:
        h, c = models[pair.a], models[pair.b]
        ph, fh = trained_size(pair.a, h["seed_runs"][0].config, **shape)
        pc, fc = trained_size(pair.b, c["seed_runs"][0].config, **shape)
        rows.append({"hybrid": pair.a, "control": pair.b, "params": f"{ph:,} / {pc:,}",
                     "MFLOPs/image": f"{fh:.2f} / {fc:.2f}", "epochs": f"{h['epochs']} / {c['epochs']}",
                     "train s": f"{h['seconds']:.0f} / {c['seconds']:.0f}",
                     "test % (hybrid)": fmt_pct(h["acc_mean"], h["acc_std"], h["n"]),
                     "test % (control)": fmt_pct(c["acc_mean"], c["acc_std"], c["n"]),
                     **comparison_cells(pair.comparison),
                     "recipe": "same" if not pair.differences else "DIFFERS: " + "; ".join(pair.differences)})
    return rows


# --------------------------------------------------------------------------- ablations


def ablation_comparisons(ablations: dict[str, dict]) -> dict[str, Comparison]:
    """Each ablation against the flagship under the same schedule (the ``all_on`` row)."""
    ref = ablations.get("all_on")
    if not ref:
        return {}
    names = [name for name in ablations if name != "all_on"]
    raw = [compare_groups(name, ablations[name]["seed_runs"], "all_on", ref["seed_runs"]) for name in names]
    return dict(zip(names, adjust(raw, ABLATION_FAMILY)))


def ablation_rows(ablations: dict[str, dict], comparisons: dict[str, Comparison]) -> list[dict]:
    rows = []
    for name, (label, _) in ABLATIONS.items():
        agg = ablations.get(name)
        if not agg:
            continue
        cells = comparison_cells(comparisons[name]) if name in comparisons else {}
        rows.append({"ablation": name, "change": label,
                     "test %": fmt_pct(agg["acc_mean"], agg["acc_std"], agg["n"]),
                     "Δ vs all on (points)": cells.get("Δ (points)", ""),
                     "95% CI over seeds": cells.get("95% CI over seeds", ""),
                     "verdict": cells.get("verdict", ""), "seeds": agg["n"], "epochs": agg["epochs"], "train time (s)": f"{agg['seconds']:.0f}"})
    return rows


def recipe_label(model: str, preset: StudyPreset, yours: frozenset[str] = frozenset()) -> str:
    """Which training preset a model of this study used (a user's models take the flagship's)."""
    return preset.flagship_preset if model in FLAGSHIP_FAMILY or model in yours else preset.model_preset


#: control_rows' columns as the "Your models" section names them.
YOURS_COLUMNS = {"hybrid": "your model", "control": "against", "test % (hybrid)": "test % (yours)",
                 "test % (control)": "test % (against)"}


def user_models_section(root: Path, models: dict, jobs: list[Job], ds: Dataset) -> Section | None:
    """A user's models (``--model-file``) against the flagship and its twin, under one recipe."""
    yours = [m for m in dict.fromkeys(j.cfg.model for j in jobs if j.group == USER_GROUP) if m in models]
    pairs = match_pairs({name: agg["seed_runs"] for name, agg in models.items()},
                        [(m, ref) for m in yours for ref in (FLAGSHIP, "cnn_twin") if ref in models])
    if not pairs:
        return None
    rows = [{YOURS_COLUMNS.get(k, k): v for k, v in row.items()} for row in control_rows(models, pairs, ds)]
    return Section("Your models", [
        Paragraph("Each model of your file trained with the flagship's training preset and seeds, beside the "
                  "flagship and its no-LSTM twin. Columns with a slash give yours / the other. "
                  "Δ = yours − the other."),
        Table(rows, list(rows[0])), forest_figure(pairs, root / "figures" / "forest_yours.png")])


REF_COLUMNS = ["model", "published", "measured (test %)", "seeds", "epochs", "schedule", "Δ vs published",
               "95% CI of Δ", "train time (s)", "source"]
