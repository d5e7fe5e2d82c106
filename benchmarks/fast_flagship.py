"""Benchmark: the flagship's `fast` recipe (target: >= 92.0% test, mean of 3 seeds, within 60 s of training).

For each seed it runs ``cnnlstm train cnn_lstm --preset fast`` as its own process (the way a user
runs it) into a scratch folder, then reads ``history.csv`` and ``metrics.json``: test accuracy,
training seconds (the training loop only, validation excluded), seconds per epoch, and the time to
the first epoch whose validation accuracy reaches 92%. With ``--control`` it trains the flagship's
no-LSTM twin (``cnn_twin``) under the same recipe after each flagship seed and prints the
difference with its 95% interval (``cnnlstm.measure.stats``).

Machines differ, so the same run also times a fixed reference workload: one epoch of 20,000 images
of Model I through the plain tutorial loop of ``benchmarks/train_loop.py`` (per-sample Dataset +
DataLoader, batch 64, Adam). Read a figure from another machine as a ratio to that reference.

``--set KEY=VALUE`` (repeatable) passes a config value to every run: ``--set amp=off`` measures
fp32 on a CPU with native bf16, and a recipe lever (``--set epochs=5``) is judged by its time to
92% *validation*, never by its test figure. The summary prints the median time to 92% validation
and the precision the runs trained in.

``--model NAME [--model-file FILE]`` times another model under the same recipe, e.g. the cheaper
stems of ``benchmarks/lever_models.py``.

Run: ``python benchmarks/fast_flagship.py [--seeds 3] [--threads 2] [--set amp=off] [--control] [--keep DIR]
[--model NAME --model-file FILE]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_loop import tutorial_epoch  # noqa: E402  (the reference workload, shared with train_loop.py)

from cnnlstm.data import load_dataset  # noqa: E402
from cnnlstm.device import cpu_has_native_bf16  # noqa: E402
from cnnlstm.fileio import read_history
from cnnlstm.measure.stats import compare, mean_std  # noqa: E402
from cnnlstm.models import create_model  # noqa: E402
from cnnlstm.runs import read_json  # noqa: E402

TARGET_ACC, TARGET_S, VAL_MARK = 0.92, 60.0, 0.92


def reference_seconds(threads: int, images: int = 20000) -> float:
    """Seconds of one tutorial-loop epoch of ``images`` Model I images (the machine's yardstick)."""
    torch.set_num_threads(threads)
    ds = load_dataset()
    torch.manual_seed(0)
    model = create_model("model1")
    rate = tutorial_epoch(model, ds.train_images[:images], ds.train_labels[:images], seed=0)
    return images / rate


def train(model: str, seed: int, threads: int, out: Path, sets: list[str], model_file: Path | None = None) -> dict:
    """One run of the fast recipe as a separate process; its figures from the run folder."""
    cmd = [sys.executable, "-m", "cnnlstm", "train", model, "--preset", "fast", "--seed", str(seed),
           "--threads", str(threads), "--out", str(out), "--quiet"]
    if model_file is not None:
        cmd += ["--model-file", str(model_file)]
    for item in sets:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    history, metrics = read_history(out / "history.csv"), read_json(out / "metrics.json")
    elapsed, first = 0.0, None
    for row in history:
        elapsed += row["seconds"]
        if first is None and row["val_acc"] >= VAL_MARK:
            first = (row["epoch"], elapsed)
    amp = read_json(out / "config.json").get("amp", "?")
    return {"model": model, "seed": seed, "amp": amp, "test_acc": metrics["accuracy"],
            "val_acc": max(row["val_acc"] for row in history), "train_s": metrics["train_seconds"],
            "epochs": len(history), "epoch_s": [round(r["seconds"], 2) for r in history],
            "first_epoch_val_92": first, "process_wall_s": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--control", action="store_true", help="also train the no-LSTM twin per seed")
    p.add_argument("--model", default="cnn_lstm", help="the model to time (default the flagship, cnn_lstm)")
    p.add_argument("--model-file", type=Path, default=None,
                   help="a .py file registering --model, e.g. benchmarks/lever_models.py")
    p.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a config value for every run (repeatable), e.g. amp=off or epochs=5")
    args = p.parse_args()

    ref_before = reference_seconds(args.threads)
    root = args.keep or Path(tempfile.mkdtemp(prefix="fast-flagship-"))
    results = []
    for seed in range(args.seeds):
        for model in (args.model, "cnn_twin") if args.control else (args.model,):
            r = train(model, seed, args.threads, root / f"{model}-s{seed}", args.sets,
                      args.model_file if model == args.model else None)
            results.append(r)
            print(json.dumps(r), flush=True)
    ref_after = reference_seconds(args.threads)

    flag = [r for r in results if r["model"] == args.model]
    acc_m, acc_s = mean_std(r["test_acc"] for r in flag)
    secs = [r["train_s"] for r in flag]
    per_epoch = statistics.median(s for r in flag for s in r["epoch_s"])
    print(f"\nreference workload (Model I, tutorial loop, 20,000 images): {ref_before:.1f} s before, "
          f"{ref_after:.1f} s after")
    print(f"{args.model} --preset fast, {len(flag)} seeds: test {100 * acc_m:.2f} ± {100 * (acc_s or 0):.2f}% "
          f"(target >= {100 * TARGET_ACC:.1f}%: {'met' if acc_m >= TARGET_ACC else 'NOT met'}); training "
          f"{statistics.median(secs):.1f} s median ({min(secs):.1f}-{max(secs):.1f}; target <= {TARGET_S:.0f} s: "
          f"{'met' if max(secs) <= TARGET_S else 'NOT met'}); {per_epoch:.1f} s per epoch (median); "
          f"= {statistics.median(secs) / ref_before:.2f}x the reference workload")
    # Precision as trained: amp=bf16 runs in fp32 on a CPU without native bf16 (cnnlstm.device).
    precision = "bf16" if any(r["amp"] == "bf16" for r in flag) and cpu_has_native_bf16() else "fp32"
    firsts = [r["first_epoch_val_92"] for r in flag]
    reached = [f[1] for f in firsts if f is not None]
    val_m, val_s = mean_std(r["val_acc"] for r in flag)
    print(f"time to 92% validation ({precision}; --set {' '.join(args.sets) or 'none'}): "
          + (f"median {statistics.median(reached):.1f} s over {len(reached)} of {len(flag)} seeds"
             if reached else f"not reached by any of {len(flag)} seeds")
          + f"; best validation {100 * val_m:.2f} ± {100 * (val_s or 0):.2f}%")
    for r in flag:
        first = r["first_epoch_val_92"]
        print(f"  seed {r['seed']}: {100 * r['test_acc']:.2f}%, {r['train_s']:.1f} s, epochs {r['epoch_s']}, "
              f"first epoch >= 92% val: {'none' if first is None else f'{first[0]} at {first[1]:.1f} s'}")
    if args.control:
        twin = {r["seed"]: r["test_acc"] for r in results if r["model"] == "cnn_twin"}
        print(compare(args.model, "cnn_twin", {r["seed"]: r["test_acc"] for r in flag}, twin).sentence())


if __name__ == "__main__":
    main()
