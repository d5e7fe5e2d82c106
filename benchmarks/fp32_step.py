"""Benchmark: the fast flagship's fp32 training step, images/s and fraction of peak, variants side by side.

Every variant trains the same images with the ``fast`` recipe's step (batch 256, AdamW, label
smoothing, random flips; ``amp=off``, so fp32 on every CPU) through the real training loop
(``cnnlstm.training.loop.train_steps``), in one process, interleaved over ``--repeats`` so the
machine's drift hits all of them alike. The first variant is today's eager step (the `fast`
preset's flagship); the others are levers a recipe may pull: kernels (channels_last, compile) and
the work per image (the stem before 2026-12-02, a narrower one, one LSTM direction, the all-strided
stem of ``benchmarks/lever_models.py``). Each is printed as images/s, its ratio to today's, and the
share of the fp32 matmul peak measured in the same process (3 x forward FLOPs per training image).

Run: ``python benchmarks/fp32_step.py [--images 8192] [--repeats 3] [--threads 2] [--variants a,b]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import lever_models  # noqa: E402,F401  (registers the all-strided variant cnn_lstm_s4)
from study_scaling import cpu_facts  # noqa: E402
from train_loop import matmul_peak_gflops  # noqa: E402

from cnnlstm.config import resolve_train_config  # noqa: E402
from cnnlstm.data import load_dataset, to_tensor  # noqa: E402
from cnnlstm.models import create_model, model_summary  # noqa: E402
from cnnlstm.training.loop import TrainState, build_augment, build_loss, epoch_permutation, train_steps  # noqa: E402
from cnnlstm.training.optim import build_optimizer, build_scheduler  # noqa: E402

#: name -> (model, extra model_args, channels_last, compile)
VARIANTS = {
    "today: cnn_lstm eager": ("cnn_lstm", {}, False, False),
    "cnn_lstm channels_last": ("cnn_lstm", {}, True, False),
    "cnn_lstm torch.compile": ("cnn_lstm", {}, False, True),
    "cnn_lstm unidirectional": ("cnn_lstm", {"bidirectional": False}, False, False),
    "pooled stem 24/48 (before)": ("cnn_lstm", {"channels": [24, 48], "first_stride": 1}, False, False),
    "pooled stem 16/32": ("cnn_lstm", {"channels": [16, 32], "first_stride": 1}, False, False),
    "stride-2 first conv 24/48": ("cnn_lstm", {"channels": [24, 48], "first_stride": 2}, False, False),
    "stride-2 convs no pool 24/48": ("cnn_lstm_s4", {"channels": [24, 48]}, False, False),
    "cnn_twin eager (control)": ("cnn_twin", {}, False, False),
}


def step_rate(model_name: str, model_args: dict, channels_last: bool, compiled: bool, x, y, seed: int) -> float:
    """Images/s of one pass of the fast recipe's training steps over ``x`` (after one warm-up batch)."""
    cfg = resolve_train_config(model_name, preset="fast", overrides={"amp": "off", "epochs": 1})
    torch.manual_seed(seed)
    model = create_model(model_name, **{**cfg.model_args, **model_args})
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    trained = torch.compile(model) if compiled else model
    opt = build_optimizer(model.parameters(), cfg)
    steps = (len(y) + cfg.batch_size - 1) // cfg.batch_size
    sched = build_scheduler(opt, cfg, steps)
    kwargs = dict(opt=opt, sched=sched, loss_fn=build_loss(cfg, model), augment=build_augment(cfg),
                  gen=torch.Generator().manual_seed(seed), batch_size=cfg.batch_size, epoch=0)
    warm = epoch_permutation(len(y), seed, 99, x.device)[:cfg.batch_size * 2]
    train_steps(trained, x, y, warm, state=TrainState(), **kwargs)  # warm-up (and compilation)
    perm = epoch_permutation(len(y), seed, 0, x.device)
    t0 = time.perf_counter()
    train_steps(trained, x, y, perm, state=TrainState(), **kwargs)
    return len(y) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=None, help="comma-separated subset of: " + "; ".join(VARIANTS))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [v.strip() for v in args.variants.split(",")] if args.variants else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant {unknown[0]!r}")
    ds = load_dataset(download=False)
    x = to_tensor(ds.train_images[:args.images], norm=ds.norm)
    y = torch.as_tensor(ds.train_labels[:args.images], dtype=torch.int64)
    rates: dict[str, list[float]] = {n: [] for n in names}
    peaks = []
    for r in range(args.repeats):
        peaks.append(matmul_peak_gflops())
        for n in names:
            rates[n].append(step_rate(*VARIANTS[n], x, y, seed=r))
            print(f"repeat {r + 1}: {n}: {rates[n][-1]:,.0f} images/s", flush=True)
    peak = statistics.median(peaks)
    base = statistics.median(rates[names[0]])
    rows = []
    for n in names:
        model, model_args, _, _ = VARIANTS[n]
        cfg = resolve_train_config(model, preset="fast")
        flops = 3 * model_summary(model, **{**cfg.model_args, **model_args})["mflops"] * 1e6
        med = statistics.median(rates[n])
        rows.append({"variant": n, "images_per_s": med, "range": [min(rates[n]), max(rates[n])],
                     "ratio": med / base, "gflops": flops * med / 1e9, "fraction_of_peak": flops * med / 1e9 / peak})
    result = {"date": time.strftime("%Y-%m-%d"), "machine": cpu_facts(), "threads": args.threads,
              "images": args.images, "repeats": args.repeats, "matmul_peak_gflops": peak, "rows": rows}
    print(f"\nfp32 matmul peak (2048^2, this process, median of {args.repeats}): {peak:.0f} GFLOP/s")
    print(f"{'variant':28s} {'images/s':>9s} {'x today':>8s} {'GFLOP/s':>8s} {'of peak':>8s}")
    for row in rows:
        print(f"{row['variant']:28s} {row['images_per_s']:9,.0f} {row['ratio']:8.2f} {row['gflops']:8.1f} "
              f"{100 * row['fraction_of_peak']:7.1f}%")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
