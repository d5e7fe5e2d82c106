"""Benchmark: cnnlstm's training loop vs a plain tutorial loop, and achieved GFLOP/s vs peak.

The tutorial loop is the one most course material uses: a per-sample ``Dataset`` that converts
one uint8 image at a time, ``DataLoader(batch_size=64, shuffle=True)``, Adam. cnnlstm's loop slices
batches out of one normalised tensor (``cnnlstm.training.loop.train_steps``). Both train the same model
with the same optimizer on the same machine, interleaved A B A B so drift hits both alike; the
ratio of medians is the figure (target >= 3x for model1).

It also measures this machine's fp32 matmul peak (2048x2048, in this process) and the FLOP rate
cnnlstm's loop achieves (``torch.utils.flop_counter`` on one training step x steps / time).

Run: ``python benchmarks/train_loop.py [--model model1] [--images 20000] [--repeats 3] [--threads 2]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from cnnlstm.config import TrainConfig
from cnnlstm.data import FASHION_NORM, PIXEL_MEAN, PIXEL_STD, load_dataset, to_tensor
from cnnlstm.models import create_model
from cnnlstm.training.loop import TrainState, build_loss, epoch_permutation, train_steps
from cnnlstm.training.optim import build_optimizer, build_scheduler


class TutorialDataset(torch.utils.data.Dataset):
    """Per-sample conversion, as in the usual tutorial (torchvision ToTensor + Normalize)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i]).float().div(255).sub(PIXEL_MEAN).div(PIXEL_STD).unsqueeze(0)
        return x, int(self.labels[i])


def tutorial_epoch(model, images, labels, seed: int) -> float:
    loader = torch.utils.data.DataLoader(TutorialDataset(images, labels), batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    t0 = time.perf_counter()
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return len(labels) / (time.perf_counter() - t0)


def cnnlstm_epoch(model, x, y, batch_size: int, seed: int) -> float:
    cfg = TrainConfig(model="model1", optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant",
                      batch_size=batch_size, epochs=1)
    opt = build_optimizer(model.parameters(), cfg)
    sched = build_scheduler(opt, cfg, (len(y) + batch_size - 1) // batch_size)
    perm = epoch_permutation(len(y), seed, 0, x.device)
    t0 = time.perf_counter()
    train_steps(model, x, y, perm, opt=opt, sched=sched, loss_fn=build_loss(cfg, model), augment=None,
                gen=torch.Generator().manual_seed(seed), batch_size=batch_size, state=TrainState(), epoch=0)
    return len(y) / (time.perf_counter() - t0)


def input_pipeline_rate(images, labels, x, y, seed: int) -> tuple[float, float]:
    """Images/s of batching alone: the tutorial DataLoader vs slicing the on-device tensor."""
    loader = torch.utils.data.DataLoader(TutorialDataset(images, labels), batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    for _ in loader:
        pass
    tutorial = len(labels) / (time.perf_counter() - t0)
    perm = epoch_permutation(len(y), seed, 0, x.device)
    t0 = time.perf_counter()
    for i in range(0, len(y), 64):
        idx = perm[i:i + 64]
        x[idx], y[idx]
    return tutorial, len(y) / (time.perf_counter() - t0)


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / min(times) / 1e9


def train_flops_per_image(model_name: str) -> float:
    """Forward FLOPs per image (``cnnlstm models``: flop counter + analytic LSTM FLOPs) x 3.

    A training step costs about three forward passes (forward, and backward's two products).
    """
    from cnnlstm.models import model_summary

    return 3 * model_summary(model_name)["mflops"] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="model1")
    ap.add_argument("--images", type=int, default=20000, help="training images per timed pass")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="64,128,256", help="cnnlstm batch sizes to time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(download=False)
    images, labels = ds.train_images[:args.images], ds.train_labels[:args.images]
    x, y = to_tensor(images, norm=FASHION_NORM), torch.as_tensor(labels)
    batches = [int(b) for b in args.batches.split(",")]
    results = {"tutorial (batch 64)": [], **{f"cnnlstm (batch {b})": [] for b in batches}}
    loader_only = []
    for r in range(args.repeats):
        torch.manual_seed(r)
        results["tutorial (batch 64)"].append(tutorial_epoch(create_model(args.model), images, labels, r))
        for b in batches:
            results[f"cnnlstm (batch {b})"].append(cnnlstm_epoch(create_model(args.model), x, y, b, r))
        loader_only.append(input_pipeline_rate(images, labels, x, y, r))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"model {args.model}, {args.images:,} images per pass, {args.repeats} interleaved repeats, "
          f"{args.threads} threads")
    for k, v in med.items():
        print(f"  {k:22s} median {v:8.0f} images/s  (min {min(results[k]):.0f}, max {max(results[k]):.0f})")
    base = med["tutorial (batch 64)"]
    print("  speed-up vs tutorial: " + ", ".join(
        f"{med[f'cnnlstm (batch {b})'] / base:.2f}x at batch {b}" for b in batches) + " (target >= 3x)")
    tut_in = statistics.median(r[0] for r in loader_only)
    ours_in = statistics.median(r[1] for r in loader_only)
    print(f"  input pipeline alone (no model): tutorial DataLoader {tut_in:,.0f} images/s, "
          f"cnnlstm tensor slicing {ours_in:,.0f} images/s ({ours_in / tut_in:.0f}x)")
    peak = matmul_peak_gflops()
    flops = train_flops_per_image(args.model)
    best_b = max(batches, key=lambda b: med[f"cnnlstm (batch {b})"])
    achieved = flops * med[f"cnnlstm (batch {best_b})"] / 1e9
    print(f"  fp32 matmul peak (2048^2, this process): {peak:.0f} GFLOP/s")
    print(f"  achieved in cnnlstm's loop (batch {best_b}): {achieved:.1f} GFLOP/s = "
          f"{100 * achieved / peak:.1f}% of peak "
          f"({flops / 1e6:.2f} MFLOP per training image = 3 x forward)")


if __name__ == "__main__":
    main()
