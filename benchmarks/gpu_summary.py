"""Collect the figures of ``benchmarks/gpu_check.sh`` into one Markdown summary (and a JSON file).

Reads only what the check wrote into its scratch folder (``steps.tsv``, ``env.json``,
``junit-cuda.xml``, ``bench.json``, ``recipe/``, ``paper/``, ``logs/``) and uses the standard library
alone, so it still runs when the project's own install failed on the GPU machine.

    python benchmarks/gpu_summary.py --work /tmp/gpu-check --out gpu-out/summary.md
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

FASHION_TRAIN = 60000  # images in Fashion-MNIST's training file, before the validation split
THRESHOLDS = (0.92, 0.945)
TARGET_ACC, TARGET_SECONDS = 0.95, 120.0  # the GPU recipe's aim: mean of 3 seeds, per-seed training


def read_json(path: Path) -> dict | None:
    """The parsed file, or None when it is missing or unreadable (a step may have been cut short)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_tsv(path: Path) -> list[dict]:
    """Rows of a tab-separated file with a header line ([] when missing)."""
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except OSError:
        return []


def read_history(path: Path) -> list[dict]:
    """``history.csv`` as a list of float-valued rows ([] when missing)."""
    try:
        with path.open(newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    except (OSError, ValueError):
        return []


def read_junit(path: Path) -> dict | None:
    """Counts of a pytest JUnit XML file: tests, passed, failed, errors, skipped, seconds, failures."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    counts = {"tests": 0, "failed": 0, "errors": 0, "skipped": 0, "seconds": 0.0, "failures": []}
    for case in root.iter("testcase"):
        counts["tests"] += 1
        counts["seconds"] += float(case.get("time") or 0.0)
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            counts["failed"] += 1
            counts["failures"].append(name)
        elif case.find("error") is not None:
            counts["errors"] += 1
            counts["failures"].append(name)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
    counts["passed"] = counts["tests"] - counts["failed"] - counts["errors"] - counts["skipped"]
    return counts


def seconds_to(history: list[dict], key: str, threshold: float) -> float | None:
    """Cumulative training seconds (validation excluded) at the first epoch whose ``key`` >= threshold."""
    total = 0.0
    for row in history:
        total += row.get("seconds", 0.0)
        if row.get(key, -1.0) >= threshold:
            return total
    return None


def recipe_seed(run_dir: Path, row: dict) -> dict:
    """One recipe seed's figures from its run folder and its line of ``seeds.tsv``."""
    cfg = read_json(run_dir / "config.json") or {}
    metrics = read_json(run_dir / "metrics.json") or {}
    history = read_history(run_dir / "history.csv")
    epoch_seconds = [r["seconds"] for r in history if "seconds" in r]
    n_train = FASHION_TRAIN - cfg.get("val_size", 5000)
    if cfg.get("limit_train"):
        n_train = min(n_train, cfg["limit_train"])
    # The median epoch, not the first: the first includes cuDNN autotuning and warm-up.
    images_per_s = n_train / statistics.median(epoch_seconds) if epoch_seconds else None
    out = {"seed": row.get("seed"), "train_rc": row.get("train_rc"), "eval_rc": row.get("eval_rc"),
           "flags": row.get("flags") or "", "train_wall_s": _num(row.get("train_wall_s")),
           "eval_wall_s": _num(row.get("eval_wall_s")), "epochs": len(history),
           "epochs_planned": cfg.get("epochs"), "batch_size": cfg.get("batch_size"), "amp": cfg.get("amp"),
           "test_acc": metrics.get("accuracy"), "n_test": metrics.get("n_test"),
           "best_epoch": metrics.get("best_epoch"), "train_seconds": sum(epoch_seconds) if history else None,
           "images_per_s": images_per_s}
    for t in THRESHOLDS:
        out[f"val_{t}"] = seconds_to(history, "val_acc", t)
    return out


def _num(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None where undefined)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def read_paper(study: Path, log: Path) -> dict | None:
    """How far ``cnnlstm reproduce`` got: jobs finished of those it planned, and its own wall time."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        text = ""
    if not study.exists() and not text:
        return None
    # The study logs "[i/N] <job>" as each job starts; N grows once it plans the embeddings.
    progress = [(int(i), int(n)) for i, n in re.findall(r"\[(\d+)/(\d+)\]", text)]
    planned = max((n for _, n in progress), default=None)
    started = max((i for i, _ in progress), default=0)
    done = {
        "explore": int((study / "explore" / "stats.json").exists()),
        "train": len(list(study.glob("runs/*/metrics.json"))),
        "ablation": len(list(study.glob("ablations/*/metrics.json"))),
        "embed": len(list(study.glob("runs/*/embed.json"))),
    }
    finished = re.search(r"study: (\d+) jobs run, (\d+) already done, ([\d.]+) min", text)
    return {"planned_jobs": planned, "jobs_started": started, "done": done,
            "completed": bool(finished) and (study / "report.md").exists(),
            "study_minutes": float(finished.group(3)) if finished else None}


def collect(work: Path) -> dict:
    """Everything the summary shows, as one JSON-ready dict."""
    seeds = [recipe_seed(work / "recipe" / f"cnn_lstm-gpu-s{row['seed']}", row)
             for row in read_tsv(work / "recipe" / "seeds.tsv")]
    accs = [s["test_acc"] for s in seeds if s["test_acc"] is not None]
    times = [s["train_seconds"] for s in seeds if s["train_seconds"] is not None and s["test_acc"] is not None]
    return {"steps": read_tsv(work / "steps.tsv"), "env": read_json(work / "env.json"),
            "tests": read_junit(work / "junit-cuda.xml"), "bench": read_json(work / "bench.json"),
            "recipe": {"seeds": seeds, "test_acc": mean_std(accs), "train_seconds": mean_std(times)},
            "paper": read_paper(work / "paper", work / "logs" / "paper.log")}


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def sec(x) -> str:
    return "-" if x is None else f"{x:.1f} s"


def hit(reached: dict | None, t: float) -> str:
    """A time-to-accuracy cell of benchmarks/gpu.py's JSON: "12.3 s (epoch 4)" or "not reached"."""
    h = (reached or {}).get(str(t))
    return f"{h['train_seconds']:.1f} s (ep {h['epoch']})" if h else "not reached"


def render(data: dict, budget: int, dry: bool) -> str:
    """The Markdown summary."""
    lines = ["# GPU check: summary", ""]
    if dry:
        lines += ["**DRY RUN on the CPU with tiny sizes: every number below is meaningless; it only shows",
                  "that each step ran.**", ""]
    env = data["env"] or {}
    lines += ["## Machine", "",
              f"- card: {env.get('device', 'none (no CUDA)')}; compute capability {env.get('capability', '-')}; "
              f"{env.get('sms', '-')} SMs; {env.get('memory_gib', '-')} GiB",
              f"- driver {env.get('driver') or '-'}; CUDA (torch build) {env.get('cuda') or '-'}; "
              f"cuDNN {env.get('cudnn') or '-'}; torch {env.get('torch', '-')}; Python {env.get('python', '-')}", ""]
    lines += ["## Steps", "", f"Time budget {budget} s.", "", "| step | status | exit code | seconds | limit |",
              "|---|---|---|---|---|"]
    lines += [f"| {s['step']} | {s['status']} | {s['rc']} | {s['seconds']} | {s['limit_s']} |" for s in data["steps"]]
    lines += [""]

    lines += ["## Tests (`pytest -m cuda tests/test_gpu.py tests/data/test_augment.py`)", ""]
    t = data["tests"]
    if t:
        lines += [f"{t['tests']} collected: **{t['passed']} passed, {t['failed']} failed, {t['errors']} errors, "
                  f"{t['skipped']} skipped** ({t['seconds']:.1f} s in tests)."]
        lines += [f"- failed: `{name}`" for name in t["failures"]]
    else:
        lines += ["No JUnit XML: the step did not run or did not finish."]
    lines += [""]

    lines += ["## Benchmark (`benchmarks/gpu.py`)", ""]
    b = data["bench"]
    if b:
        lines += [f"Device: {b.get('device')}; torch {b.get('torch')}; cuDNN {b.get('cudnn')}.", ""]
        if b.get("throughput"):
            lines += ["| training, cnn_lstm, fast preset (epoch 2) | images/s |", "|---|---|"]
            for name, v in b["throughput"].items():
                lines += [f"| {name} | {v:,.0f} |" if isinstance(v, (int, float)) else f"| {name} | {v} |"]
            lines += [""]
        if b.get("time_to_accuracy"):
            lines += ["| preset | epochs | batch | amp | final test acc | training s | 92% test | 94.5% test "
                      "| 92% val | 94.5% val |", "|---|---|---|---|---|---|---|---|---|---|"]
            for r in b["time_to_accuracy"]:
                final = r["per_epoch"][-1]["test_acc"] if r.get("per_epoch") else None
                lines += [f"| {r['preset']} | {r['epochs']} | {r['batch_size']} | {r['amp']} | {pct(final)} | "
                          f"{sec(r['train_seconds'])} | {hit(r.get('reached'), 0.92)} | "
                          f"{hit(r.get('reached'), 0.945)} | "
                          f"{hit(r.get('reached_val'), 0.92)} | {hit(r.get('reached_val'), 0.945)} |"]
            lines += [""]
    else:
        lines += ["No benchmark JSON: the step did not run or failed before its first part.", ""]

    rec = data["recipe"]
    lines += ["## GPU recipe (`cnnlstm train cnn_lstm --preset gpu --seed S`, then `cnnlstm evaluate`)", ""]
    if rec["seeds"]:
        lines += ["| seed | test acc | n test | epochs | best epoch | training s | images/s | s to 92% val "
                  "| s to 94.5% val | train wall s | evaluate wall s | exit codes | flags |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in rec["seeds"]:
            ips = "-" if s["images_per_s"] is None else f"{s['images_per_s']:,.0f}"
            lines += [f"| {s['seed']} | {pct(s['test_acc'])} | {s['n_test'] or '-'} | {s['epochs']}/"
                      f"{s['epochs_planned'] or '-'} | {s['best_epoch'] or '-'} | {sec(s['train_seconds'])} | {ips} | "
                      f"{sec(s['val_0.92'])} | {sec(s['val_0.945'])} | {sec(s['train_wall_s'])} | "
                      f"{sec(s['eval_wall_s'])} | {s['train_rc']}/{s['eval_rc']} | {s['flags'] or '-'} |"]
        (acc, acc_sd), (tm, _) = rec["test_acc"], rec["train_seconds"]
        n = sum(s["test_acc"] is not None for s in rec["seeds"])
        if acc is not None:
            sd = f" ± {100 * acc_sd:.2f}" if acc_sd is not None else ""
            lines += ["", f"Mean over {n} seed(s): **{100 * acc:.2f}{sd}% test accuracy**, "
                          f"{tm:.1f} s of training per seed (validation excluded)."]
            if not dry:
                met = n >= 3 and acc >= TARGET_ACC and all(
                    s["train_seconds"] is not None and s["train_seconds"] <= TARGET_SECONDS
                    for s in rec["seeds"] if s["test_acc"] is not None)
                lines += [f"Target (>= {100 * TARGET_ACC:.1f}% mean of 3 seeds, <= {TARGET_SECONDS:.0f} s of "
                          f"training per seed): **{'met' if met else 'not met'}**."]
    else:
        lines += ["The step did not run."]
    lines += [""]

    p = data["paper"]
    lines += ["## Paper study (`cnnlstm reproduce --preset paper`)", ""]
    if p:
        runs = [float(s["seconds"]) for s in data["steps"] if s["step"] == "paper" and s["status"] != "skipped"]
        state = "**completed**" if p["completed"] else \
            "**not completed** (cut by the time budget or failed; `GPU_CHECK_STEPS=paper` continues it)"
        lines += [f"{state}; wall time {sum(runs):.0f} s over {len(runs)} command(s) (the last one's own clock: "
                  f"{'-' if p['study_minutes'] is None else format(p['study_minutes'], '.1f') + ' min'}). "
                  f"Jobs started: {p['jobs_started']} of {p['planned_jobs'] or '?'} planned so far; finished: "
                  f"explore {p['done']['explore']}, training {p['done']['train']}, ablations "
                  f"{p['done']['ablation']}, embeddings {p['done']['embed']}."]
    else:
        lines += ["The step did not run."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, type=Path, help="the check's scratch folder")
    ap.add_argument("--out", required=True, type=Path, help="the Markdown file to write")
    ap.add_argument("--json", type=Path, help="also write the collected figures as JSON")
    ap.add_argument("--budget", type=int, default=0, help="the check's time budget in seconds")
    ap.add_argument("--dry-run", type=int, default=0, choices=(0, 1), help="1 = figures of a CPU dry run")
    args = ap.parse_args(argv)
    data = collect(args.work)
    args.out.write_text(render(data, args.budget, bool(args.dry_run)))
    if args.json:
        args.json.write_text(json.dumps({"dry_run": bool(args.dry_run), **data}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
