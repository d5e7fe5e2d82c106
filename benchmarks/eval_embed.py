"""Benchmark: evaluate, embed and explore on the real Fashion-MNIST.

Times, on the machine it runs on:

- ``evaluate``: :func:`cnnlstm.study.experiment.evaluate_run` of the flagship ``cnn_lstm`` on the 10,000
  test images (inference, metrics, predictions.npz and the six figures), median of ``--repeats``;
  the pure inference time (``eval_seconds`` in metrics.json) is printed beside it;
- ``embed``: :func:`cnnlstm.study.exploration.run_embed` of the flagship's ``forward_features`` of the
  10,000 test images (openTSNE, K0 = floor(ln(10,000)^2) = 84, plus the quality metrics);
- ``explore``: :func:`cnnlstm.study.exploration.run_explore` with the raw-pixel t-SNE of all 70,000
  images (K0 = 124), run once.

The flagship's weights are UNTRAINED (seeded initialisation): the timings do not depend on the
weights, but the accuracy and embedding quality printed are those of a random network.

Targets (2-core CPU): evaluate <= 5 s, embed <= 30 s, explore <= 3 min.
Run: ``python benchmarks/eval_embed.py [--repeats 3] [--embed-repeats 1] [--skip-explore] [--keep DIR]
[--threads N] [--jobs N]``. On a machine busy with other work, one thread each (``--threads 1
--jobs 1``) is faster than two threads waiting on each other; the CPU seconds printed beside the
wall time show how much of the wall time was work.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path


def timed(fn, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall seconds and process CPU seconds (all threads) of each repeat, and the last result."""
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu, result


def untrained_flagship_run(folder: Path, threads: int) -> None:
    """A run folder holding the flagship's config and its untrained (seeded) weights as best.pt."""
    import torch

    from cnnlstm.config import TrainConfig, config_to_dict
    from cnnlstm.fileio import write_json
    from cnnlstm.runs import save_checkpoint
    from cnnlstm.study.experiment import build_model

    cfg = TrainConfig(model="cnn_lstm", device="cpu", threads=threads, seed=0)
    write_json(folder / "config.json", config_to_dict(cfg))
    model = build_model(cfg, 10, 28, torch.device("cpu"))
    save_checkpoint(folder / "best.pt", {"model": model.state_dict(), "epoch": 0})


def describe(name: str, times: list[float], cpu: list[float], target: float) -> str:
    """One result line. CPU seconds (summed over threads) bound what an idle machine would need
    from above when several threads ran, and estimate it for single-threaded work."""
    med = statistics.median(times)
    status = "ok" if med <= target else "OVER TARGET"
    spread = f" (min {min(times):.2f}, max {max(times):.2f}, n={len(times)})" if len(times) > 1 else ""
    return (f"{name:<9} median {med:7.2f} s wall{spread}, {statistics.median(cpu):.2f} s CPU; "
            f"target <= {target:g} s: {status}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="evaluate repeats")
    ap.add_argument("--embed-repeats", type=int, default=1)
    ap.add_argument("--skip-explore", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--jobs", type=int, default=-1, help="openTSNE threads (-1 = all cores)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--keep", metavar="DIR", default=None,
                    help="write the run and explore folders here and keep them (default: a temp folder)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from cnnlstm.data import load_dataset
    from cnnlstm.study.experiment import evaluate_run
    from cnnlstm.study.exploration import run_embed, run_explore

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    ds = load_dataset(args.data_dir, download=False)
    print(f"data: {ds.source} (verified {ds.verified}); {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average before {load_before[0]:.2f}")
    lines = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        run = Path(tmp) / "flagship"
        untrained_flagship_run(run, args.threads)
        ev, cpu, metrics = timed(lambda: evaluate_run(run, ds, device="cpu"), args.repeats)
        lines.append(describe("evaluate", ev, cpu, 5) + f"; inference alone {metrics['eval_seconds']:.2f} s "
                     f"(untrained weights, accuracy {metrics['accuracy']:.3f})")
        em, cpu, rec = timed(lambda: run_embed(run, ds, seed=0, n_jobs=args.jobs), args.embed_repeats)
        lines.append(describe("embed", em, cpu, 30) + f"; t-SNE alone {rec['seconds']:.1f} s, n={rec['n']:,}, "
                     f"{rec['feature_dim']}-dim features, K0={rec['k0']}, n_jobs={rec['n_jobs']}")
        if not args.skip_explore:
            ex, cpu, stats = timed(lambda: run_explore(ds, Path(tmp) / "explore", seed=0, n_jobs=args.jobs), 1)
            e = stats["embedding"]
            lines.append(describe("explore", ex, cpu, 180) + f"; t-SNE alone {e['seconds']:.1f} s, n={e['n']:,}, "
                         f"K0={e['k0']}, 10-NN acc. pixels {e['quality']['features']['knn10']:.3f} / "
                         f"t-SNE {e['quality']['embedding']['knn10']:.3f}")
    print("\n".join(lines))
    after = os.getloadavg()
    note = "  (busy machine: load > 3, timings inflated)" if max(load_before[0], after[0]) > 3 else ""
    print(f"load average after {after[0]:.2f}{note}")


if __name__ == "__main__":
    main()
