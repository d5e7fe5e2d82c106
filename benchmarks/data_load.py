"""Benchmark: load all 70,000 Fashion-MNIST images from the .gz files and from the array cache.

Targets (2-core machine): from .gz <= 1.5 s, from the cache <= 0.2 s. Prints the median of
several repeats of each; run with ``python benchmarks/data_load.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from cnnlstm.data import sources as data


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data-dir", default=str(data.DEBIAN_DIR))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XDG_CACHE_HOME"] = cache  # a private cache: nothing of the user's is reused
        cold = timed(lambda: data.load_dataset(args.data_dir, use_cache=False), args.repeats)
        data.load_dataset(args.data_dir)  # fill the cache
        warm = timed(lambda: data.load_dataset(args.data_dir), args.repeats)
    ds = data.load_dataset(args.data_dir)
    n = len(ds.train_images) + len(ds.test_images)
    print(f"images: {n:,} from {args.data_dir}")
    print(f"from .gz (decompress + SHA-256 + parse): median {statistics.median(cold):.3f} s "
          f"(min {min(cold):.3f}, max {max(cold):.3f}; target <= 1.5 s)")
    print(f"from cache (.npy + SHA-256 check):       median {statistics.median(warm):.3f} s "
          f"(min {min(warm):.3f}, max {max(warm):.3f}; target <= 0.2 s)")


if __name__ == "__main__":
    main()
